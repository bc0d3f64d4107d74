/** UserStore on the SQL query layer (SQLite and MySQL alike). */
import type { ScramCredentials, ScramHash } from '../xmpp/sasl/scram.js';
import { storageOp, type Storage } from '../storage/storage.js';
import type { AccountCredentials, UserStore } from './user-store.js';

/** "iterations$salt$storedKey$serverKey" with base64 parts. */
export function encodeCredentials(c: ScramCredentials): string {
  return `${c.iterations}$${c.salt.toString('base64')}$${c.storedKey.toString('base64')}$${c.serverKey.toString('base64')}`;
}

export function decodeCredentials(s: string): ScramCredentials | null {
  const parts = s.split('$');
  if (parts.length !== 4) return null;
  const iterations = Number(parts[0]);
  if (!Number.isInteger(iterations) || iterations < 1) return null;
  return {
    iterations,
    salt: Buffer.from(parts[1]!, 'base64'),
    storedKey: Buffer.from(parts[2]!, 'base64'),
    serverKey: Buffer.from(parts[3]!, 'base64'),
  };
}

export class SqlUserStore implements UserStore {
  constructor(private readonly storage: Storage) {}

  create(host: string, username: string, creds: AccountCredentials): Promise<boolean> {
    return storageOp('create user', async () => {
      const db = this.storage.forUser(host, username);
      const res = await db
        .insertInto('users')
        .values({ host, username, ...row(creds), created_at: Date.now() })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst()
        .catch(async (e) => {
          // MySQL has no ON CONFLICT; a duplicate key means the account exists.
          if ((e as { code?: string }).code === 'ER_DUP_ENTRY') return { numInsertedOrUpdatedRows: 0n };
          throw e;
        });
      return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
    });
  }

  async createMany(host: string, users: Array<{ username: string; creds: AccountCredentials }>): Promise<number> {
    let created = 0;
    // Group by database so each shard gets its own transaction of batched inserts.
    const groups = new Map<object, Array<{ username: string; creds: AccountCredentials }>>();
    for (const u of users) {
      const db = this.storage.forUser(host, u.username);
      let g = groups.get(db);
      if (!g) groups.set(db, (g = []));
      g.push(u);
    }
    for (const group of groups.values()) {
      const db = this.storage.forUser(host, group[0]!.username);
      created += await storageOp('create users', () =>
        db.transaction().execute(async (tx) => {
          let n = 0;
          for (let i = 0; i < group.length; i += 200) {
            const batch = group.slice(i, i + 200);
            const existing = new Set(
              (
                await tx
                  .selectFrom('users')
                  .select('username')
                  .where('host', '=', host)
                  .where(
                    'username',
                    'in',
                    batch.map((u) => u.username),
                  )
                  .execute()
              ).map((r) => r.username),
            );
            const fresh = batch.filter((u) => !existing.has(u.username));
            if (fresh.length === 0) continue;
            const now = Date.now();
            await tx
              .insertInto('users')
              .values(fresh.map((u) => ({ host, username: u.username, ...row(u.creds), created_at: now })))
              .execute();
            n += fresh.length;
          }
          return n;
        }),
      );
    }
    return created;
  }

  delete(host: string, username: string): Promise<boolean> {
    return storageOp('delete user', () =>
      this.storage
        .forUser(host, username)
        .transaction()
        .execute(async (tx) => {
          const res = await tx.deleteFrom('users').where('host', '=', host).where('username', '=', username).executeTakeFirst();
          // The account's data goes with it.
          await tx.deleteFrom('roster').where('host', '=', host).where('username', '=', username).execute();
          await tx.deleteFrom('roster_version').where('host', '=', host).where('username', '=', username).execute();
          await tx.deleteFrom('offline').where('host', '=', host).where('username', '=', username).execute();
          await tx.deleteFrom('privacy_lists').where('host', '=', host).where('username', '=', username).execute();
          return Number(res.numDeletedRows) > 0;
        }),
    );
  }

  setCredentials(host: string, username: string, creds: AccountCredentials): Promise<boolean> {
    return storageOp('set credentials', async () => {
      const res = await this.storage
        .forUser(host, username)
        .updateTable('users')
        .set(row(creds))
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) > 0;
    });
  }

  getCredentials(host: string, username: string, hash: ScramHash): Promise<ScramCredentials | null> {
    return storageOp('get credentials', async () => {
      const r = await this.storage
        .forUser(host, username)
        .selectFrom('users')
        .select(hash === 'SHA-1' ? 'scram_sha1 as c' : 'scram_sha256 as c')
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return r ? decodeCredentials(r.c) : null;
    });
  }

  exists(host: string, username: string): Promise<boolean> {
    return storageOp('find user', async () => {
      const r = await this.storage
        .forUser(host, username)
        .selectFrom('users')
        .select('username')
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return r !== undefined;
    });
  }

  list(host: string, opts?: { after?: string; limit?: number }): Promise<string[]> {
    const limit = opts?.limit ?? 1000;
    return storageOp('list users', async () => {
      // Crosses every database: merge their ordered pages.
      const pages = await Promise.all(
        this.storage.all().map((db) => {
          let q = db.selectFrom('users').select('username').where('host', '=', host);
          if (opts?.after !== undefined) q = q.where('username', '>', opts.after);
          return q.orderBy('username').limit(limit).execute();
        }),
      );
      return pages
        .flat()
        .map((r) => r.username)
        .sort()
        .slice(0, limit);
    });
  }

  count(host: string): Promise<number> {
    return storageOp('count users', async () => {
      let total = 0;
      for (const db of this.storage.all()) {
        const r = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('host', '=', host).executeTakeFirst();
        total += Number(r?.n ?? 0);
      }
      return total;
    });
  }
}

function row(creds: AccountCredentials): { scram_sha1: string; scram_sha256: string } {
  return { scram_sha1: encodeCredentials(creds.sha1), scram_sha256: encodeCredentials(creds.sha256) };
}
