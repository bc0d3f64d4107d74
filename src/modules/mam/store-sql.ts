/** ArchiveStore on the SQL query layer (SQLite and MySQL alike), sharded by user. */
import type { Kysely, SelectQueryBuilder } from 'kysely';
import type { Storage } from '../../storage/storage.js';
import type { Database } from '../../storage/schema.js';
import type { ArchiveTable } from './schema.js';
import type { ArchiveDefault, ArchiveDirection, ArchiveEntry, ArchiveFilter, ArchivePage, ArchivePrefs, ArchiveStore } from './store.js';

const COLUMNS = ['id', 'with_jid', 'with_resource', 'direction', 'stanza', 'created_at'] as const;
type Row = Pick<ArchiveTable, (typeof COLUMNS)[number]>;

/** Rows per INSERT statement (8 parameters each: well under SQLite's and MySQL's limits). */
const INSERT_CHUNK = 400;
/** Rows deleted per statement by the retention sweep, so no lock is held for long. */
const SWEEP_BATCH = 5000;

/**
 * The module's store over the storage handle: what its setup (or the core, from the
 * module's declaration) calls to get one.
 *
 * @example
 * const store = createArchiveStore(storage);
 */
export function createArchiveStore(storage: Storage): ArchiveStore {
  return new SqlArchiveStore(storage);
}

export class SqlArchiveStore implements ArchiveStore {
  constructor(private readonly storage: Storage) {}

  append(host: string, username: string, entries: ArchiveEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return this.storage.forUser(host, username, 'archive message', async (db) => {
      await db
        .insertInto('archive')
        .values(
          entries.map((e) => ({
            host,
            username,
            id: e.id,
            with_jid: e.with,
            with_resource: e.withResource,
            direction: e.direction,
            stanza: e.stanza,
            created_at: e.createdAt,
          })),
        )
        .execute();
    }, { idempotent: false });
  }

  async appendMany(rows: Array<{ host: string; username: string; entry: ArchiveEntry }>): Promise<void> {
    if (rows.length === 0) return;
    // One transaction per shard (and host) for the whole batch.
    const byHost = new Map<string, Map<string, ArchiveTable[]>>();
    for (const { host, username, entry: e } of rows) {
      let users = byHost.get(host);
      if (!users) byHost.set(host, (users = new Map<string, ArchiveTable[]>()));
      let list = users.get(username);
      if (!list) users.set(username, (list = []));
      list.push({ host, username, id: e.id, with_jid: e.with, with_resource: e.withResource, direction: e.direction, stanza: e.stanza, created_at: e.createdAt });
    }
    await Promise.all(
      [...byHost].map(([host, users]) =>
        this.storage.forUsers(
          host,
          [...users.keys()],
          'archive messages',
          (db, names) => {
            const list = names.flatMap((n) => users.get(n)!);
            // One INSERT is atomic by itself: no BEGIN/COMMIT round trips for a small batch.
            if (list.length <= INSERT_CHUNK) return db.insertInto('archive').values(list).execute().then(() => undefined);
            return db.transaction().execute(async (tx) => {
              for (let i = 0; i < list.length; i += INSERT_CHUNK) await tx.insertInto('archive').values(list.slice(i, i + INSERT_CHUNK)).execute();
            });
          },
          // The ids are chosen before the write: a repeated insert fails on the key instead of doubling.
          { idempotent: false },
        ),
      ),
    );
  }

  partitionOf(host: string, username: string): string {
    return this.storage.placeOf(host, username);
  }

  remove(host: string, username: string, ids: number[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.storage.forUser(host, username, 'remove archived messages', async (db) => {
      await db.deleteFrom('archive').where('host', '=', host).where('username', '=', username).where('id', 'in', ids).execute();
    });
  }

  has(host: string, username: string, id: number): Promise<boolean> {
    return this.storage.forUser(host, username, 'read archive', async (db) => {
      const r = await db
        .selectFrom('archive')
        .select('id')
        .where('host', '=', host)
        .where('username', '=', username)
        .where('id', '=', id)
        .executeTakeFirst();
      return r !== undefined;
    });
  }

  page(host: string, username: string, filter: ArchiveFilter, opts: { limit: number; from: 'start' | 'end'; offset?: number }): Promise<ArchivePage> {
    return this.storage.forUser(host, username, 'query archive', async (db) => {
      if (filter.ids?.length === 0) return { items: [], more: false };
      let q = this.#filtered(db, host, username, filter).select(COLUMNS);
      q = opts.from === 'start' ? q.orderBy('id', 'asc') : q.orderBy('id', 'desc');
      q = q.limit(opts.limit + 1);
      if (opts.offset) q = q.offset(opts.offset);
      const rows = await q.execute();
      const more = rows.length > opts.limit;
      if (more) rows.length = opts.limit;
      if (opts.from === 'end') rows.reverse();
      return { items: rows.map(toEntry), more };
    });
  }

  count(host: string, username: string, filter: ArchiveFilter): Promise<number> {
    return this.storage.forUser(host, username, 'count archive', async (db) => {
      if (filter.ids?.length === 0) return 0;
      const r = await this.#filtered(db, host, username, filter)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirst();
      return Number(r?.n ?? 0);
    });
  }

  bounds(host: string, username: string): Promise<{ first: ArchiveEntry; last: ArchiveEntry } | null> {
    return this.storage.forUser(host, username, 'read archive', async (db) => {
      const base = db.selectFrom('archive').select(COLUMNS).where('host', '=', host).where('username', '=', username).limit(1);
      const first = await base.orderBy('id', 'asc').executeTakeFirst();
      if (!first) return null;
      const last = (await base.orderBy('id', 'desc').executeTakeFirst()) ?? first;
      return { first: toEntry(first), last: toEntry(last) };
    });
  }

  /** Crosses every shard (fan-out): each shard sweeps its own rows. */
  async removeOlderThan(before: number): Promise<number> {
    const totals = await this.storage.forEachShard('sweep archive', async (db) => {
      let total = 0;
      {
        for (;;) {
          // Batches keyed by the primary key work the same on SQLite and MySQL.
          const rows = await db.selectFrom('archive').select(['host', 'username', 'id']).where('created_at', '<', before).limit(SWEEP_BATCH).execute();
          if (rows.length === 0) break;
          const byUser = new Map<string, { host: string; username: string; ids: number[] }>();
          for (const r of rows) {
            const k = `${r.host}\u0000${r.username}`;
            let g = byUser.get(k);
            if (!g) byUser.set(k, (g = { host: r.host, username: r.username, ids: [] }));
            g.ids.push(Number(r.id));
          }
          for (const g of byUser.values()) {
            const res = await db.deleteFrom('archive').where('host', '=', g.host).where('username', '=', g.username).where('id', 'in', g.ids).executeTakeFirst();
            total += Number(res.numDeletedRows);
          }
          if (rows.length < SWEEP_BATCH) break;
        }
      }
      return total;
    });
    return totals.reduce((x, y) => x + y, 0);
  }

  removeUser(host: string, username: string): Promise<void> {
    return this.storage.forUser(host, username, 'remove archive', async (db) => {
      await db.deleteFrom('archive').where('host', '=', host).where('username', '=', username).execute();
      await db.deleteFrom('archive_prefs').where('host', '=', host).where('username', '=', username).execute();
    });
  }

  getPrefs(host: string, username: string): Promise<ArchivePrefs | null> {
    return this.storage.forUser(host, username, 'read archive preferences', async (db) => {
      const r = await db
        .selectFrom('archive_prefs')
        .select(['default_mode', 'always_jids', 'never_jids'])
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      if (!r) return null;
      return { default: r.default_mode as ArchiveDefault, always: JSON.parse(r.always_jids) as string[], never: JSON.parse(r.never_jids) as string[] };
    });
  }

  setPrefs(host: string, username: string, prefs: ArchivePrefs): Promise<void> {
    return this.storage.forUser(host, username, 'store archive preferences', async (db) => {
      const row = { default_mode: prefs.default, always_jids: JSON.stringify(prefs.always), never_jids: JSON.stringify(prefs.never) };
      await db
        .transaction()
        .execute(async (tx) => {
          const r = await tx.updateTable('archive_prefs').set(row).where('host', '=', host).where('username', '=', username).executeTakeFirst();
          if (Number(r.numUpdatedRows) === 0) await tx.insertInto('archive_prefs').values({ host, username, ...row }).execute();
        });
    });
  }

  #filtered(db: Kysely<Database>, host: string, username: string, f: ArchiveFilter): SelectQueryBuilder<Database, 'archive', object> {
    let q = db.selectFrom('archive').where('host', '=', host).where('username', '=', username);
    if (f.with) {
      q = q.where('with_jid', '=', f.with.bare);
      if (f.with.resource !== undefined) q = q.where('with_resource', '=', f.with.resource);
    }
    if (f.afterId !== undefined) q = q.where('id', '>', f.afterId);
    if (f.beforeId !== undefined) q = q.where('id', '<', f.beforeId);
    if (f.ids) q = q.where('id', 'in', f.ids);
    return q;
  }
}

function toEntry(r: Row): ArchiveEntry {
  const id = Number(r.id);
  return {
    id,
    with: r.with_jid,
    withResource: r.with_resource,
    direction: r.direction as ArchiveDirection,
    stanza: r.stanza,
    createdAt: Number(r.created_at),
  };
}
