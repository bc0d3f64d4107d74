/** LastActivityStore on the SQL query layer (SQLite and MySQL alike). */
import { insertedUnlessDuplicate, type Storage } from '../../storage/storage.js';
import type { LastActivityStore, LastSeen } from './store.js';

/**
 * The module's store over the storage handle: what its setup (or the core, from the
 * module's declaration) calls to get one.
 *
 * @example
 * const store = createLastActivityStore(storage);
 */
export function createLastActivityStore(storage: Storage): LastActivityStore {
  return new SqlLastActivityStore(storage);
}

export class SqlLastActivityStore implements LastActivityStore {
  constructor(private readonly storage: Storage) {}

  get(host: string, username: string): Promise<LastSeen | null> {
    return this.storage.forUser(host, username, 'read last activity', async (db) => {
      const r = await db.selectFrom('last_activity').select(['seen_at', 'status']).where('host', '=', host).where('username', '=', username).executeTakeFirst();
      return r ? { at: Number(r.seen_at), status: r.status } : null;
    });
  }

  set(host: string, username: string, seen: LastSeen): Promise<void> {
    // Single statements, no read-then-write transaction: many sessions ending at once on
    // several nodes (one SQLite file, WAL) would otherwise fail with SQLITE_BUSY_SNAPSHOT.
    return this.storage.forUser(host, username, 'store last activity', async (db) => {
      const update = () =>
        db
          .updateTable('last_activity')
          .set({ seen_at: seen.at, status: seen.status })
          .where('host', '=', host)
          .where('username', '=', username)
          // Only over an older row, or one as old without a status: writes may finish out of order.
          .where((eb) => eb.or([eb('seen_at', '<', seen.at), eb.and([eb('seen_at', '=', seen.at), seen.status === '' ? eb('status', '=', '') : eb.lit(true)])]))
          .executeTakeFirst();
      if (Number((await update()).numUpdatedRows) > 0) return;
      if (await insertedUnlessDuplicate(db.insertInto('last_activity').values({ host, username, seen_at: seen.at, status: seen.status }).executeTakeFirst())) return;
      await update(); // a row came meanwhile (or was already as new): take its place if it is older
    });
  }
}

