/**
 * Copying and removing one user's rows, table by table: what `parley shards move` does
 * between two shards (`ShardAdmin.moveUser`). A bulk table (the archive: large, append
 * mostly, keyed by a number the server chose) is copied in two steps: most of it before
 * the user's writes are frozen (`copyBulk`), and under the freeze only what changed
 * since (`syncBulk`). The per-user tables are not listed here: each owner declares its
 * own (`SchemaPart.userTables`, storage's and every module's schema), and a test checks
 * that the declared list covers every table keyed by (host, username).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely<any>: the mover walks tables by name (UserTable), which the typed query builder cannot express */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

/** A table keyed by (host, username), as its owner declares it for moves. */
export interface UserTable {
  table: keyof Database;
  /** A column unique within one user's rows, for paging in order. */
  key: string;
  /** An auto-increment id the target assigns anew (order kept by inserting in `key` order). */
  dropId?: boolean;
  /**
   * Large and append-mostly (the archive): copied page by page before the user is
   * frozen, then brought up to date under the freeze. `key` is a number the server chose
   * (never `dropId`); rows may be deleted or committed late with a lower key.
   */
  bulk?: boolean;
}

/** Rows per page read from the source and per INSERT on the target. */
const PAGE = 500;

/**
 * Copies a user's rows of `tables` from `src` into `dst` in one transaction on `dst`,
 * replacing any rows the user already has there (a copy left by an interrupted move).
 * Returns rows copied.
 */
export async function copyUser(src: Kysely<Database>, dst: Kysely<Database>, host: string, username: string, tables: readonly UserTable[]): Promise<number> {
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

const BULK_PAGE = 2000;

/**
 * Copies a user's rows of a bulk table with key above `after` (all with null), page by
 * page, each page its own statement: nobody reads the target's copy before the directory
 * points there. Returns the rows copied and the highest key seen (null when none).
 */
export async function copyBulk(src: Kysely<Database>, dst: Kysely<Database>, t: UserTable, host: string, username: string, after: number | null): Promise<{ rows: number; lastId: number | null }> {
  const from = src as Kysely<any>;
  let rows = 0;
  let last = after;
  for (;;) {
    let q = from.selectFrom(t.table).selectAll().where('host', '=', host).where('username', '=', username);
    if (last !== null) q = q.where(t.key, '>', last);
    const page: Array<Record<string, unknown>> = await q.orderBy(t.key).limit(BULK_PAGE).execute();
    if (page.length === 0) break;
    await (dst as Kysely<any>).insertInto(t.table).values(page).execute();
    rows += page.length;
    last = Number(page[page.length - 1]![t.key]);
    if (page.length < BULK_PAGE) break;
  }
  return { rows, lastId: last };
}

/**
 * Under the freeze: makes the target's rows of a bulk table equal to the source's, given
 * that rows up to `upTo` were copied before. Rows deleted meanwhile (expiry, an undone
 * message) or committed late with a lower key are found by comparing counts (and then
 * keys); rows above `upTo` are copied. Returns the rows copied or deleted.
 */
export async function syncBulk(src: Kysely<Database>, dst: Kysely<Database>, t: UserTable, host: string, username: string, upTo: number | null): Promise<number> {
  const mine = (db: Kysely<Database>) => (db as Kysely<any>).selectFrom(t.table).where('host', '=', host).where('username', '=', username);
  if (upTo === null) {
    await (dst as Kysely<any>).deleteFrom(t.table).where('host', '=', host).where('username', '=', username).execute();
    return (await copyBulk(src, dst, t, host, username, null)).rows;
  }
  // Count and a checksum of the keys: a late row and a deleted one must not cancel out.
  const digest = async (db: Kysely<Database>) => {
    const r = await sql<{ n: number | string; s: number | string | null }>`SELECT COUNT(*) AS n, SUM(${sql.ref(t.key)} % 1000003) AS s FROM ${sql.table(t.table)}
      WHERE host = ${host} AND username = ${username} AND ${sql.ref(t.key)} <= ${upTo}`.execute(db);
    return `${Number(r.rows[0]?.n ?? 0)}/${Number(r.rows[0]?.s ?? 0)}`;
  };
  let changed = 0;
  if ((await digest(src)) !== (await digest(dst))) {
    const keys = async (db: Kysely<Database>) => {
      const rows: Array<Record<string, unknown>> = await mine(db).select(t.key).where(t.key, '<=', upTo).execute();
      return new Set(rows.map((r) => Number(r[t.key])));
    };
    const [have, want] = [await keys(dst), await keys(src)];
    const extra = [...have].filter((k) => !want.has(k));
    const missing = [...want].filter((k) => !have.has(k));
    for (let i = 0; i < extra.length; i += PAGE) {
      await (dst as Kysely<any>).deleteFrom(t.table).where('host', '=', host).where('username', '=', username).where(t.key, 'in', extra.slice(i, i + PAGE)).execute();
    }
    for (let i = 0; i < missing.length; i += PAGE) {
      const rows: Array<Record<string, unknown>> = await mine(src).selectAll().where(t.key, 'in', missing.slice(i, i + PAGE)).execute();
      if (rows.length > 0) await (dst as Kysely<any>).insertInto(t.table).values(rows).execute();
    }
    changed += extra.length + missing.length;
  }
  return changed + (await copyBulk(src, dst, t, host, username, upTo)).rows;
}

/** Deletes every row of a user in `tables`. */
export async function deleteUserRows(db: Kysely<Database> | Transaction<Database>, host: string, username: string, tables: readonly UserTable[]): Promise<number> {
  let n = 0;
  for (const t of tables) {
    const r = await (db as Kysely<any>).deleteFrom(t.table).where('host', '=', host).where('username', '=', username).executeTakeFirst();
    n += Number(r.numDeletedRows ?? 0n);
  }
  return n;
}

/**
 * Deletes a moved user's rows from the shard they left: the bulk tables in batches (no
 * long lock on a big archive), the rest in one transaction.
 */
export async function dropMovedUser(db: Kysely<Database>, host: string, username: string, tables: readonly UserTable[]): Promise<number> {
  const any = db as Kysely<any>;
  let n = 0;
  for (const t of tables.filter((x) => x.bulk)) {
    for (;;) {
      const rows: Array<Record<string, unknown>> = await any.selectFrom(t.table).select(t.key).where('host', '=', host).where('username', '=', username).limit(BULK_PAGE).execute();
      if (rows.length === 0) break;
      const keys = rows.map((r) => r[t.key]);
      const r = await any.deleteFrom(t.table).where('host', '=', host).where('username', '=', username).where(t.key, 'in', keys).executeTakeFirst();
      n += Number(r.numDeletedRows ?? 0n);
    }
  }
  const small = tables.filter((x) => !x.bulk);
  return n + (await db.transaction().execute((tx) => deleteUserRows(tx, host, username, small)));
}

/** Rows a user has, per table of `tables` (tests and the move report). */
export async function countUserRows(db: Kysely<Database>, host: string, username: string, tables: readonly UserTable[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) {
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
