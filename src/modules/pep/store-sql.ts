/** PepStore on the SQL query layer (SQLite and MySQL alike). */
import { sql, type Transaction } from 'kysely';
import type { Database } from '../../storage/schema.js';
import type { Storage } from '../../storage/storage.js';
import { configFromJson, configToJson, type NodeConfig } from './node-config.js';
import type { PepQuota, PepStore, StoredItem } from './store.js';

/**
 * The module's store over the storage handle: what its setup (or the core, from the
 * module's declaration) calls to get one.
 *
 * @example
 * const store = createPepStore(storage, defaults);
 */
export function createPepStore(storage: Storage, defaults: NodeConfig): PepStore {
  return new SqlPepStore(storage, defaults);
}

export class SqlPepStore implements PepStore {
  /** `defaults` fills in what a stored configuration lacks. */
  constructor(
    private readonly storage: Storage,
    private readonly defaults: NodeConfig,
  ) {}

  getNode(host: string, username: string, node: string): Promise<NodeConfig | null> {
    return this.storage.forUser(host, username, 'read pep node', async (db) => {
      const r = await db
        .selectFrom('pep_node')
        .select('config')
        .where('host', '=', host)
        .where('username', '=', username)
        .where('node', '=', node)
        .executeTakeFirst();
      return r ? configFromJson(r.config, this.defaults) : null;
    });
  }

  listNodes(host: string, username: string): Promise<Array<{ node: string; config: NodeConfig }>> {
    return this.storage.forUser(host, username, 'list pep nodes', async (db) => {
      const rows = await db
        .selectFrom('pep_node')
        .select(['node', 'config'])
        .where('host', '=', host)
        .where('username', '=', username)
        .orderBy('node')
        .execute();
      return rows.map((r) => ({ node: r.node, config: configFromJson(r.config, this.defaults) }));
    });
  }

  createNode(host: string, username: string, node: string, config: NodeConfig, maxNodes: number): Promise<'created' | 'exists' | 'full'> {
    return this.storage.forUser(host, username, 'create pep node', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const existing = await tx
            .selectFrom('pep_node')
            .select('node')
            .where('host', '=', host)
            .where('username', '=', username)
            .where('node', '=', node)
            .executeTakeFirst();
          if (existing) return 'exists' as const;
          const n = await tx
            .selectFrom('pep_node')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('host', '=', host)
            .where('username', '=', username)
            .executeTakeFirst();
          if (Number(n?.n ?? 0) >= maxNodes) return 'full' as const;
          await tx.insertInto('pep_node').values({ host, username, node, config: configToJson(config), created_at: Date.now() }).execute();
          return 'created' as const;
        }),
      { idempotent: false },
    );
  }

  configureNode(host: string, username: string, node: string, config: NodeConfig): Promise<boolean> {
    return this.storage.forUser(host, username, 'configure pep node', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const existing = await tx
            .selectFrom('pep_node')
            .select('node')
            .where('host', '=', host)
            .where('username', '=', username)
            .where('node', '=', node)
            .executeTakeFirst();
          if (!existing) return false;
          await tx
            .updateTable('pep_node')
            .set({ config: configToJson(config) })
            .where('host', '=', host)
            .where('username', '=', username)
            .where('node', '=', node)
            .execute();
          if (config.persistItems) await trim(tx, host, username, node, config.maxItems);
          else await tx.deleteFrom('pep_item').where('host', '=', host).where('username', '=', username).where('node', '=', node).execute();
          return true;
        }),
    );
  }

  deleteNode(host: string, username: string, node: string): Promise<boolean> {
    return this.storage.forUser(host, username, 'delete pep node', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          await tx.deleteFrom('pep_item').where('host', '=', host).where('username', '=', username).where('node', '=', node).execute();
          const r = await tx.deleteFrom('pep_node').where('host', '=', host).where('username', '=', username).where('node', '=', node).executeTakeFirst();
          return Number(r.numDeletedRows) > 0;
        }),
      { idempotent: false },
    );
  }

  publish(host: string, username: string, node: string, item: { id: string; payload: string }, maxItems: number, quota?: PepQuota): Promise<boolean> {
    return this.storage.forUser(host, username, 'publish pep item', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          if (quota && !(await fits(tx, host, username, node, item, maxItems, quota))) return false;
          // A republished id becomes the newest item (XEP-0060 §7.1.2: it replaces the old one).
          await tx
            .deleteFrom('pep_item')
            .where('host', '=', host)
            .where('username', '=', username)
            .where('node', '=', node)
            .where('item_id', '=', item.id)
            .execute();
          await tx.insertInto('pep_item').values({ host, username, node, item_id: item.id, payload: item.payload, created_at: Date.now() }).execute();
          await trim(tx, host, username, node, maxItems);
          return true;
        }),
    );
  }

  items(host: string, username: string, node: string, opts: { max?: number; ids?: string[] } = {}): Promise<StoredItem[]> {
    return this.storage.forUser(host, username, 'read pep items', async (db) => {
      if (opts.ids !== undefined && opts.ids.length === 0) return [];
      let q = db
        .selectFrom('pep_item')
        .select(['item_id', 'payload', 'created_at', 'id'])
        .where('host', '=', host)
        .where('username', '=', username)
        .where('node', '=', node);
      if (opts.ids !== undefined) q = q.where('item_id', 'in', opts.ids);
      q = q.orderBy('id', 'desc');
      if (opts.max !== undefined) q = q.limit(opts.max);
      const rows = await q.execute();
      return rows.reverse().map((r) => ({ id: r.item_id, payload: r.payload, createdAt: Number(r.created_at) }));
    });
  }

  lastItems(host: string, username: string, nodes: string[]): Promise<Map<string, StoredItem>> {
    return this.storage.forUser(host, username, 'read last pep items', async (db) => {
      const out = new Map<string, StoredItem>();
      if (nodes.length === 0) return out;
      const rows = await db
        .selectFrom('pep_item')
        .select(['node', 'item_id', 'payload', 'created_at'])
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('pep_item')
            .select((e) => e.fn.max('id').as('id'))
            .where('host', '=', host)
            .where('username', '=', username)
            .where('node', 'in', nodes)
            .groupBy('node'),
        )
        .execute();
      for (const r of rows) out.set(r.node, { id: r.item_id, payload: r.payload, createdAt: Number(r.created_at) });
      return out;
    });
  }

  retract(host: string, username: string, node: string, itemId: string): Promise<boolean> {
    return this.storage.forUser(host, username, 'retract pep item', async (db) => {
      const r = await db
        .deleteFrom('pep_item')
        .where('host', '=', host)
        .where('username', '=', username)
        .where('node', '=', node)
        .where('item_id', '=', itemId)
        .executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    }, { idempotent: false });
  }

  purge(host: string, username: string, node: string): Promise<void> {
    return this.storage.forUser(host, username, 'purge pep node', async (db) => {
      await db.deleteFrom('pep_item').where('host', '=', host).where('username', '=', username).where('node', '=', node).execute();
    });
  }

  removeUser(host: string, username: string): Promise<void> {
    return this.storage.forUser(host, username, 'remove pep data', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          await tx.deleteFrom('pep_item').where('host', '=', host).where('username', '=', username).execute();
          await tx.deleteFrom('pep_node').where('host', '=', host).where('username', '=', username).execute();
        }),
    );
  }
}

/** Keeps the newest `max` items of a node. */
async function trim(tx: Transaction<Database>, host: string, username: string, node: string, max: number): Promise<void> {
  const keep = await tx
    .selectFrom('pep_item')
    .select('id')
    .where('host', '=', host)
    .where('username', '=', username)
    .where('node', '=', node)
    .orderBy('id', 'desc')
    .offset(max)
    .limit(1)
    .executeTakeFirst();
  if (!keep) return;
  await tx
    .deleteFrom('pep_item')
    .where('host', '=', host)
    .where('username', '=', username)
    .where('node', '=', node)
    .where('id', '<=', keep.id)
    .execute();
}

/** Bytes of a stored payload (octet_length: bytes on SQLite and MySQL alike). */
const payloadBytes = sql<number | string>`octet_length(payload)`;

/**
 * Does the account stay within `quota` once `item` is published: its items and their
 * bytes now, less the item it replaces (same id) and the oldest ones the node's max
 * items then drops, plus the new one?
 */
async function fits(tx: Transaction<Database>, host: string, username: string, node: string, item: { id: string; payload: string }, maxItems: number, quota: PepQuota): Promise<boolean> {
  const total = await tx
    .selectFrom('pep_item')
    .select([sql<number | string>`count(*)`.as('n'), sql<number | string | null>`sum(octet_length(payload))`.as('b')])
    .where('host', '=', host)
    .where('username', '=', username)
    .executeTakeFirst();
  let items = Number(total?.n ?? 0) + 1;
  let bytes = Number(total?.b ?? 0) + Buffer.byteLength(item.payload);
  const same = await tx
    .selectFrom('pep_item')
    .select(payloadBytes.as('b'))
    .where('host', '=', host)
    .where('username', '=', username)
    .where('node', '=', node)
    .where('item_id', '=', item.id)
    .executeTakeFirst();
  if (same) {
    items--;
    bytes -= Number(same.b);
  }
  const others = await tx
    .selectFrom('pep_item')
    .select(sql<number | string>`count(*)`.as('n'))
    .where('host', '=', host)
    .where('username', '=', username)
    .where('node', '=', node)
    .where('item_id', '!=', item.id)
    .executeTakeFirst();
  const dropped = Number(others?.n ?? 0) + 1 - maxItems;
  if (dropped > 0) {
    const oldest = await tx
      .selectFrom('pep_item')
      .select(payloadBytes.as('b'))
      .where('host', '=', host)
      .where('username', '=', username)
      .where('node', '=', node)
      .where('item_id', '!=', item.id)
      .orderBy('id', 'asc')
      .limit(dropped)
      .execute();
    items -= oldest.length;
    for (const o of oldest) bytes -= Number(o.b);
  }
  return items <= quota.items && bytes <= quota.bytes;
}
