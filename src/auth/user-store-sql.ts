/** UserStore on the SQL query layer (SQLite and MySQL alike). */
import type { ScramCredentials, ScramHash } from '../xmpp/sasl/scram.js';
import { insertedUnlessDuplicate, type Storage } from '../storage/storage.js';
import { deleteUserRows } from '../storage/mover.js';
import type { AccountCredentials, UserStore } from './user-store.js';
import type { UserFlagState } from '../storage/schema.js';

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
    return this.storage.forUser(
      host,
      username,
      'create user',
      (db) => insertedUnlessDuplicate(db.insertInto('users').values({ host, username, ...row(creds), created_at: Date.now() }).executeTakeFirst()),
      { creates: true, idempotent: false },
    );
  }

  async createMany(host: string, users: Array<{ username: string; creds: AccountCredentials }>): Promise<number> {
    // One transaction of batched inserts per shard.
    const byName = new Map(users.map((u) => [u.username, u]));
    const counts = await this.storage.forUsers(
      host,
      [...byName.keys()],
      'create users',
      (db, names) => {
        const group = names.map((n) => byName.get(n)!);
        return db.transaction().execute(async (tx) => {
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
        });
      },
      { creates: true, idempotent: false },
    );
    return counts.reduce((x, y) => x + y, 0);
  }

  delete(host: string, username: string): Promise<boolean> {
    return this.storage.forUser(host, username, 'delete user', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const res = await tx.deleteFrom('users').where('host', '=', host).where('username', '=', username).executeTakeFirst();
          // The account's data goes with it: every per-user table (the list moves use too).
          await deleteUserRows(tx, host, username, this.storage.userTables);
          return Number(res.numDeletedRows) > 0;
        }),
      { idempotent: false },
    );
  }

  setCredentials(host: string, username: string, creds: AccountCredentials): Promise<boolean> {
    return this.storage.forUser(host, username, 'set credentials', async (db) => {
      const res = await db
        .updateTable('users')
        .set(row(creds))
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) > 0;
    });
  }

  getCredentials(host: string, username: string, hash: ScramHash): Promise<ScramCredentials | null> {
    return this.storage.forUser(host, username, 'get credentials', async (db) => {
      const r = await db
        .selectFrom('users')
        .select(hash === 'SHA-1' ? 'scram_sha1 as c' : 'scram_sha256 as c')
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return r ? decodeCredentials(r.c) : null;
    });
  }

  exists(host: string, username: string): Promise<boolean> {
    return this.storage.forUser(host, username, 'find user', async (db) => {
      const r = await db
        .selectFrom('users')
        .select('username')
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return r !== undefined;
    });
  }

  ensure(host: string, username: string): Promise<boolean> {
    return this.storage.forUser(
      host,
      username,
      'provision user',
      async (db) => {
        const found = await db.selectFrom('users').select('username').where('host', '=', host).where('username', '=', username).executeTakeFirst();
        if (found) return false;
        return insertedUnlessDuplicate(db.insertInto('users').values({ host, username, scram_sha1: NO_CREDENTIALS, scram_sha256: NO_CREDENTIALS, created_at: Date.now() }).executeTakeFirst());
      },
      { creates: true },
    );
  }

  getFlag(host: string, username: string): Promise<{ state: UserFlagState; reason: string | null } | null> {
    return this.storage.forUser(host, username, 'read account flag', async (db) => {
      const r = await db.selectFrom('user_flags').select(['state', 'reason']).where('host', '=', host).where('username', '=', username).executeTakeFirst();
      return r ? { state: r.state, reason: r.reason } : null;
    });
  }

  setFlag(host: string, username: string, flag: { state: UserFlagState; reason: string | null } | null): Promise<void> {
    return this.storage.forUser(host, username, 'set account flag', async (db) => {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('user_flags').where('host', '=', host).where('username', '=', username).execute();
        if (flag) await tx.insertInto('user_flags').values({ host, username, state: flag.state, reason: flag.reason, updated_at: Date.now() }).execute();
      });
    });
  }

  /** Crosses every shard (fan-out): each returns its ordered page, the pages are merged. */
  async list(host: string, opts?: { after?: string; limit?: number }): Promise<string[]> {
    const limit = opts?.limit ?? 1000;
    const pages = await this.storage.forEachShard('list users', (db) => {
      let q = db.selectFrom('users').select('username').where('host', '=', host);
      if (opts?.after !== undefined) q = q.where('username', '>', opts.after);
      return q.orderBy('username').limit(limit).execute();
    });
    return pages
      .flat()
      .map((r) => r.username)
      .sort()
      .slice(0, limit);
  }

  /** Crosses every shard (fan-out). */
  async count(host: string): Promise<number> {
    const counts = await this.storage.forEachShard('count users', async (db) => {
      const r = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('host', '=', host).executeTakeFirst();
      return Number(r?.n ?? 0);
    });
    return counts.reduce((x, y) => x + y, 0);
  }
}

/** Stored in the credential columns of an account made by `ensure`: decodes to null. */
const NO_CREDENTIALS = '';

function row(creds: AccountCredentials): { scram_sha1: string; scram_sha256: string } {
  return { scram_sha1: encodeCredentials(creds.sha1), scram_sha256: encodeCredentials(creds.sha256) };
}
