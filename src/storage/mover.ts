/**
 * Copying and removing one user's rows, table by table: what `parley shards move` does
 * between two shards (`ShardedStorage.moveUser`). The archive, the one table that grows
 * large, is copied in two steps: most of it before the user's writes are frozen
 * (`copyArchive`), and under the freeze only what changed since (`syncArchive`).
 * Every table keyed by (host, username) is listed here; a unit test checks that the
 * list covers the schema, so a new store cannot be forgotten by moves.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely<any>: the mover walks tables by name (USER_TABLES), which the typed query builder cannot express */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

export interface UserTable {
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
  { table: 'user_flags', key: 'username' },
  { table: 'last_activity', key: 'username' },
];

/** Rows per page read from the source and per INSERT on the target. */
const PAGE = 500;

/**
 * Copies a user's rows of `tables` from `src` into `dst` in one transaction on `dst`,
 * replacing any rows the user already has there (a copy left by an interrupted move).
 * Returns rows copied.
 */
export async function copyUser(src: Kysely<Database>, dst: Kysely<Database>, host: string, username: string, tables: readonly UserTable[] = USER_TABLES): Promise<number> {
  return dst.transaction().execute(async (tx) => {
    await deleteUserRows(tx, host, username, tables);
    let total = 0;
    for (const t of tables) {
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

/** Every per-user table but the archive (copied whole under the freeze). */
export const SMALL_TABLES: readonly UserTable[] = USER_TABLES.filter((t) => t.table !== 'archive');

const ARCHIVE_PAGE = 2000;

/**
 * Copies a user's archive rows with id above `after` (all with null), page by page, each
 * page its own statement: nobody reads the target's copy before the directory points
 * there. Returns the rows copied and the highest id seen (null when none).
 */
export async function copyArchive(src: Kysely<Database>, dst: Kysely<Database>, host: string, username: string, after: number | null): Promise<{ rows: number; lastId: number | null }> {
  let rows = 0;
  let last = after;
  for (;;) {
    let q = src.selectFrom('archive').selectAll().where('host', '=', host).where('username', '=', username);
    if (last !== null) q = q.where('id', '>', last);
    const page = await q.orderBy('id').limit(ARCHIVE_PAGE).execute();
    if (page.length === 0) break;
    await dst.insertInto('archive').values(page).execute();
    rows += page.length;
    last = Number(page[page.length - 1]!.id);
    if (page.length < ARCHIVE_PAGE) break;
  }
  return { rows, lastId: last };
}

/**
 * Under the freeze: makes the target's archive equal to the source's, given that rows up
 * to `upTo` were copied before. Rows deleted meanwhile (expiry, an undone message) or
 * committed late with a lower id are found by comparing counts (and then ids); rows
 * above `upTo` are copied. Returns the rows copied or deleted.
 */
export async function syncArchive(src: Kysely<Database>, dst: Kysely<Database>, host: string, username: string, upTo: number | null): Promise<number> {
  if (upTo === null) {
    await dst.deleteFrom('archive').where('host', '=', host).where('username', '=', username).execute();
    return (await copyArchive(src, dst, host, username, null)).rows;
  }
  // Count and a checksum of the ids: a late row and a deleted one must not cancel out.
  const digest = async (db: Kysely<Database>) => {
    const r = await sql<{ n: number | string; s: number | string | null }>`SELECT COUNT(*) AS n, SUM(id % 1000003) AS s FROM archive
      WHERE host = ${host} AND username = ${username} AND id <= ${upTo}`.execute(db);
    return `${Number(r.rows[0]?.n ?? 0)}/${Number(r.rows[0]?.s ?? 0)}`;
  };
  let changed = 0;
  if ((await digest(src)) !== (await digest(dst))) {
    const ids = async (db: Kysely<Database>) =>
      new Set((await db.selectFrom('archive').select('id').where('host', '=', host).where('username', '=', username).where('id', '<=', upTo).execute()).map((r) => Number(r.id)));
    const [have, want] = [await ids(dst), await ids(src)];
    const extra = [...have].filter((id) => !want.has(id));
    const missing = [...want].filter((id) => !have.has(id));
    for (let i = 0; i < extra.length; i += PAGE) {
      await dst.deleteFrom('archive').where('host', '=', host).where('username', '=', username).where('id', 'in', extra.slice(i, i + PAGE)).execute();
    }
    for (let i = 0; i < missing.length; i += PAGE) {
      const rows = await src.selectFrom('archive').selectAll().where('host', '=', host).where('username', '=', username).where('id', 'in', missing.slice(i, i + PAGE)).execute();
      if (rows.length > 0) await dst.insertInto('archive').values(rows).execute();
    }
    changed += extra.length + missing.length;
  }
  return changed + (await copyArchive(src, dst, host, username, upTo)).rows;
}

/** Deletes every row of a user (or of some tables). */
export async function deleteUserRows(db: Kysely<Database> | Transaction<Database>, host: string, username: string, tables: readonly UserTable[] = USER_TABLES): Promise<number> {
  let n = 0;
  for (const t of tables) {
    const r = await (db as Kysely<any>).deleteFrom(t.table).where('host', '=', host).where('username', '=', username).executeTakeFirst();
    n += Number(r.numDeletedRows ?? 0n);
  }
  return n;
}

/**
 * Deletes a moved user's rows from the shard they left, the archive in batches (no long
 * lock on a big archive), the rest in one transaction.
 */
export async function dropMovedUser(db: Kysely<Database>, host: string, username: string): Promise<number> {
  let n = 0;
  for (;;) {
    const ids = (await db.selectFrom('archive').select('id').where('host', '=', host).where('username', '=', username).limit(ARCHIVE_PAGE).execute()).map((r) => r.id);
    if (ids.length === 0) break;
    const r = await db.deleteFrom('archive').where('host', '=', host).where('username', '=', username).where('id', 'in', ids).executeTakeFirst();
    n += Number(r.numDeletedRows ?? 0n);
  }
  return n + (await db.transaction().execute((tx) => deleteUserRows(tx, host, username, SMALL_TABLES)));
}

/** Rows a user has, per table (tests and the move report). */
export async function countUserRows(db: Kysely<Database>, host: string, username: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of USER_TABLES) {
    const r: { n?: unknown } | undefined = await (db as Kysely<any>)
      .selectFrom(t.table)
      .select((eb) => eb.fn.countAll().as('n'))
      .where('host', '=', host)
      .where('username', '=', username)
      .executeTakeFirst();
    out[t.table] = Number(r?.n ?? 0);
  }
  return out;
}
