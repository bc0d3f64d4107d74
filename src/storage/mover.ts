/**
 * Copying and removing one user's rows, table by table: what `parley shards move` does
 * between two shards while the user's writes are frozen (`ShardedStorage.moveUser`).
 * Every table keyed by (host, username) is listed here; a unit test checks that the
 * list covers the schema, so a new store cannot be forgotten by moves.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

interface UserTable {
  table: keyof Database;
  /** A column unique within one user's rows, for paging in order. */
  key: string;
  /** An auto-increment id the target assigns anew (order kept by inserting in `key` order). */
  dropId?: boolean;
}

/** Every per-user table. `shard_directory` is not one: it is the placement itself. */
export const USER_TABLES: readonly UserTable[] = [
  { table: 'users', key: 'username' },
  { table: 'roster', key: 'contact' },
  { table: 'roster_version', key: 'username' },
  { table: 'offline', key: 'id', dropId: true },
  { table: 'privacy_lists', key: 'name' },
  { table: 'archive', key: 'id' },
  { table: 'archive_prefs', key: 'username' },
  { table: 'vcard', key: 'username' },
  { table: 'pep_node', key: 'node' },
  { table: 'pep_item', key: 'id', dropId: true },
];

/** Rows per page read from the source and per INSERT on the target. */
const PAGE = 500;

/**
 * Copies a user's rows from `src` into `dst` in one transaction on `dst`, replacing any
 * rows the user already has there (a copy left by an interrupted move). Returns rows copied.
 */
export async function copyUser(src: Kysely<Database>, dst: Kysely<Database>, host: string, username: string): Promise<number> {
  return dst.transaction().execute(async (tx) => {
    await deleteUserRows(tx, host, username);
    let total = 0;
    for (const t of USER_TABLES) {
      let after: unknown = undefined;
      for (;;) {
        const db = src as Kysely<any>;
        let q = db.selectFrom(t.table).selectAll().where('host', '=', host).where('username', '=', username);
        if (after !== undefined) q = q.where(t.key, '>', after);
        const rows: Array<Record<string, unknown>> = await q.orderBy(t.key).limit(PAGE).execute();
        if (rows.length === 0) break;
        after = rows[rows.length - 1]![t.key];
        const values = t.dropId ? rows.map(({ id: _id, ...rest }) => rest) : rows;
        await (tx as Transaction<any>).insertInto(t.table).values(values).execute();
        total += rows.length;
        if (rows.length < PAGE) break;
      }
    }
    return total;
  });
}

/** Deletes every row of a user. */
export async function deleteUserRows(db: Kysely<Database> | Transaction<Database>, host: string, username: string): Promise<number> {
  let n = 0;
  for (const t of USER_TABLES) {
    const r = await (db as Kysely<any>).deleteFrom(t.table).where('host', '=', host).where('username', '=', username).executeTakeFirst();
    n += Number(r.numDeletedRows ?? 0n);
  }
  return n;
}

/** Rows a user has, per table (tests and the move report). */
export async function countUserRows(db: Kysely<Database>, host: string, username: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of USER_TABLES) {
    const r: { n?: unknown } | undefined = await (db as Kysely<any>)
      .selectFrom(t.table)
      .select((eb: any) => eb.fn.countAll().as('n'))
      .where('host', '=', host)
      .where('username', '=', username)
      .executeTakeFirst();
    out[t.table] = Number(r?.n ?? 0);
  }
  return out;
}
