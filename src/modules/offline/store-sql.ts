/** OfflineStore on the SQL query layer (SQLite and MySQL alike). */
import { sql } from 'kysely';
import type { Storage } from '../../storage/storage.js';
import type { OfflineMessage, OfflineStore } from './store.js';

/**
 * The module's store over the storage handle: what its setup (or the core, from the
 * module's declaration) calls to get one.
 *
 * @example
 * const store = createOfflineStore(storage);
 */
export function createOfflineStore(storage: Storage): OfflineStore {
  return new SqlOfflineStore(storage);
}

export class SqlOfflineStore implements OfflineStore {
  constructor(private readonly storage: Storage) {}

  push(host: string, username: string, stanza: string, max: number, key: string): Promise<'stored' | 'full'> {
    // One statement (one round trip on MySQL instead of several): insert unless the queue
    // is full or the message is there already. Two pushes racing for the last place (or
    // with one key) may both get it; the router writes one user's offline messages one at
    // a time, so that takes two nodes writing for the same user. Idempotent by its key:
    // retried after an ambiguous failure (the shard may have committed it).
    return this.storage.forUser(host, username, 'store offline message', async (db) => {
      const r = await sql`INSERT INTO offline (host, username, stanza, created_at, msg_key)
        SELECT ${host}, ${username}, ${stanza}, ${Date.now()}, ${key}
        FROM (SELECT COUNT(*) AS n FROM offline WHERE host = ${host} AND username = ${username}) AS queued
        WHERE queued.n < ${max}
          AND NOT EXISTS (SELECT 1 FROM offline WHERE host = ${host} AND username = ${username} AND msg_key = ${key})`.execute(db);
      if (Number(r.numAffectedRows ?? 0n) > 0) return 'stored' as const;
      const there = await db.selectFrom('offline').select('id').where('host', '=', host).where('username', '=', username).where('msg_key', '=', key).limit(1).execute();
      return there.length > 0 ? ('stored' as const) : ('full' as const);
    });
  }

  fetch(host: string, username: string, limit: number): Promise<OfflineMessage[]> {
    return this.storage.forUser(host, username, 'read offline messages', async (db) => {
      const rows = await db
        .selectFrom('offline')
        .select(['id', 'stanza', 'created_at'])
        .where('host', '=', host)
        .where('username', '=', username)
        .orderBy('id')
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: Number(r.id), stanza: r.stanza, createdAt: Number(r.created_at) }));
    });
  }

  remove(host: string, username: string, ids: number[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.storage.forUser(host, username, 'remove offline messages', async (db) => {
      await db
        .deleteFrom('offline')
        .where('host', '=', host)
        .where('username', '=', username)
        .where('id', 'in', ids)
        .execute();
    });
  }

  fetchByIds(host: string, username: string, ids: number[]): Promise<OfflineMessage[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.storage.forUser(host, username, 'read offline messages', async (db) => {
      const rows = await db
        .selectFrom('offline')
        .select(['id', 'stanza', 'created_at'])
        .where('host', '=', host)
        .where('username', '=', username)
        .where('id', 'in', ids)
        .orderBy('id')
        .execute();
      return rows.map((r) => ({ id: Number(r.id), stanza: r.stanza, createdAt: Number(r.created_at) }));
    });
  }

  clear(host: string, username: string): Promise<void> {
    return this.storage.forUser(host, username, 'remove offline messages', async (db) => {
      await db.deleteFrom('offline').where('host', '=', host).where('username', '=', username).execute();
    });
  }

  count(host: string, username: string): Promise<number> {
    return this.storage.forUser(host, username, 'count offline messages', async (db) => {
      const r = await db
        .selectFrom('offline')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return Number(r?.n ?? 0);
    });
  }
}
