/** PrivacyStore on the SQL query layer (SQLite and MySQL alike). */
import type { Storage } from '../../storage/storage.js';
import type { PrivacyItem, PrivacyList, PrivacyStore, UserPrivacy } from './store.js';

/**
 * The module's store over the storage handle: what its setup (or the core, from the
 * module's declaration) calls to get one.
 *
 * @example
 * const store = createPrivacyStore(storage);
 */
export function createPrivacyStore(storage: Storage): PrivacyStore {
  return new SqlPrivacyStore(storage);
}

export class SqlPrivacyStore implements PrivacyStore {
  constructor(private readonly storage: Storage) {}

  load(host: string, username: string): Promise<UserPrivacy> {
    return this.storage.forUser(host, username, 'load privacy lists', async (db) => {
      const rows = await db
        .selectFrom('privacy_lists')
        .select(['name', 'items', 'is_default'])
        .where('host', '=', host)
        .where('username', '=', username)
        .orderBy('name')
        .execute();
      let defaultName: string | null = null;
      const lists: PrivacyList[] = [];
      for (const r of rows) {
        lists.push({ name: r.name, items: JSON.parse(r.items) as PrivacyItem[] });
        if (Number(r.is_default) === 1) defaultName = r.name;
      }
      return { lists, defaultName };
    });
  }

  putList(host: string, username: string, list: PrivacyList): Promise<void> {
    return this.storage.forUser(host, username, 'store privacy list', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const items = JSON.stringify(list.items);
          const r = await tx
            .updateTable('privacy_lists')
            .set({ items })
            .where('host', '=', host)
            .where('username', '=', username)
            .where('name', '=', list.name)
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) === 0) {
            await tx.insertInto('privacy_lists').values({ host, username, name: list.name, items, is_default: 0 }).execute();
          }
        }),
    );
  }

  removeList(host: string, username: string, name: string): Promise<boolean> {
    return this.storage.forUser(host, username, 'remove privacy list', async (db) => {
      const r = await db
        .deleteFrom('privacy_lists')
        .where('host', '=', host)
        .where('username', '=', username)
        .where('name', '=', name)
        .executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    }, { idempotent: false });
  }

  setDefault(host: string, username: string, name: string | null): Promise<boolean> {
    return this.storage.forUser(host, username, 'set default privacy list', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          if (name !== null) {
            const exists = await tx
              .selectFrom('privacy_lists')
              .select('name')
              .where('host', '=', host)
              .where('username', '=', username)
              .where('name', '=', name)
              .executeTakeFirst();
            if (!exists) return false;
          }
          await tx.updateTable('privacy_lists').set({ is_default: 0 }).where('host', '=', host).where('username', '=', username).where('is_default', '=', 1).execute();
          if (name !== null) {
            await tx.updateTable('privacy_lists').set({ is_default: 1 }).where('host', '=', host).where('username', '=', username).where('name', '=', name).execute();
          }
          return true;
        }),
    );
  }

  putDefaultList(host: string, username: string, list: PrivacyList): Promise<void> {
    return this.storage.forUser(host, username, 'store default privacy list', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          await tx.updateTable('privacy_lists').set({ is_default: 0 }).where('host', '=', host).where('username', '=', username).where('is_default', '=', 1).execute();
          const items = JSON.stringify(list.items);
          const r = await tx
            .updateTable('privacy_lists')
            .set({ items, is_default: 1 })
            .where('host', '=', host)
            .where('username', '=', username)
            .where('name', '=', list.name)
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) === 0) {
            await tx.insertInto('privacy_lists').values({ host, username, name: list.name, items, is_default: 1 }).execute();
          }
        }),
    );
  }
}
