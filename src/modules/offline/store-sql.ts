/** OfflineStore on the SQL query layer (SQLite and MySQL alike). */
import type { Storage } from '../../storage/storage.js';
import type { OfflineMessage, OfflineStore } from './store.js';

export class SqlOfflineStore implements OfflineStore {
  constructor(private readonly storage: Storage) {}

  push(host: string, username: string, stanza: string, max: number): Promise<'stored' | 'full'> {
    return this.storage.forUser(host, username, 'store offline message', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const r = await tx
            .selectFrom('offline')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('host', '=', host)
            .where('username', '=', username)
            .executeTakeFirst();
          if (Number(r?.n ?? 0) >= max) return 'full' as const;
          await tx.insertInto('offline').values({ host, username, stanza, created_at: Date.now() }).execute();
          return 'stored' as const;
        }),
      { idempotent: false },
    );
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
