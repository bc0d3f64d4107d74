/** LastActivityStore on the SQL query layer (SQLite and MySQL alike). */
import type { Storage } from '../../storage/storage.js';
import type { LastActivityStore, LastSeen } from './store.js';

export class SqlLastActivityStore implements LastActivityStore {
  constructor(private readonly storage: Storage) {}

  get(host: string, username: string): Promise<LastSeen | null> {
    return this.storage.forUser(host, username, 'read last activity', async (db) => {
      const r = await db.selectFrom('last_activity').select(['seen_at', 'status']).where('host', '=', host).where('username', '=', username).executeTakeFirst();
      return r ? { at: Number(r.seen_at), status: r.status } : null;
    });
  }

  set(host: string, username: string, seen: LastSeen): Promise<void> {
    return this.storage.forUser(host, username, 'store last activity', (db) =>
      db.transaction().execute(async (tx) => {
        // Read first: MySQL counts an update that changes nothing as no row.
        const found = await tx.selectFrom('last_activity').select(['seen_at', 'status']).where('host', '=', host).where('username', '=', username).executeTakeFirst();
        if (found && isNewer(found, seen)) return;
        if (found) await tx.updateTable('last_activity').set({ seen_at: seen.at, status: seen.status }).where('host', '=', host).where('username', '=', username).execute();
        else await tx.insertInto('last_activity').values({ host, username, seen_at: seen.at, status: seen.status }).execute();
      }),
    );
  }
}

/** The stored row is later than `seen` (or as late, with a status where `seen` has none): keep it. */
function isNewer(row: { seen_at: number; status: string }, seen: LastSeen): boolean {
  const at = Number(row.seen_at);
  return at > seen.at || (at === seen.at && row.status !== '' && seen.status === '');
}
