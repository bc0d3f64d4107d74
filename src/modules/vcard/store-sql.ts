/** VcardStore on the SQL query layer (SQLite and MySQL alike). */
import type { Storage } from '../../storage/storage.js';
import type { StoredVcard, VcardStore } from './store.js';

/**
 * The module's store over the storage handle: what its setup (or the core, from the
 * module's declaration) calls to get one.
 *
 * @example
 * const store = createVcardStore(storage);
 */
export function createVcardStore(storage: Storage): VcardStore {
  return new SqlVcardStore(storage);
}

export class SqlVcardStore implements VcardStore {
  constructor(private readonly storage: Storage) {}

  get(host: string, username: string): Promise<StoredVcard | null> {
    return this.storage.forUser(host, username, 'read vcard', async (db) => {
      const r = await db
        .selectFrom('vcard')
        .select(['vcard', 'photo_hash'])
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return r ? { xml: r.vcard, photoHash: r.photo_hash } : null;
    });
  }

  photoHash(host: string, username: string): Promise<string | null> {
    return this.storage.forUser(host, username, 'read vcard photo hash', async (db) => {
      const r = await db
        .selectFrom('vcard')
        .select('photo_hash')
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return r ? r.photo_hash : null;
    });
  }

  set(host: string, username: string, vcard: StoredVcard): Promise<void> {
    return this.storage.forUser(host, username, 'store vcard', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const values = { vcard: vcard.xml, photo_hash: vcard.photoHash, updated_at: Date.now() };
          // Read first: MySQL counts an update that changes nothing as no row.
          const found = await tx.selectFrom('vcard').select('host').where('host', '=', host).where('username', '=', username).executeTakeFirst();
          if (found) await tx.updateTable('vcard').set(values).where('host', '=', host).where('username', '=', username).execute();
          else await tx.insertInto('vcard').values({ host, username, ...values }).execute();
        }),
    );
  }

  remove(host: string, username: string): Promise<void> {
    return this.storage.forUser(host, username, 'remove vcard', async (db) => {
      await db.deleteFrom('vcard').where('host', '=', host).where('username', '=', username).execute();
    });
  }
}
