/**
 * The PEP module's tables (XEP-0163 on XEP-0060): the nodes of each account's PEP
 * service and the items published on them. Added to the query layer's `Database` by
 * declaration merging. Its migration is the historic `0006_profiles`, which also created
 * the vCard table: the vcard module declares the same name for its own table, and the
 * two run as one migration.
 */
import type { Generated } from 'kysely';
import type { SchemaPart } from '../../storage/migrations.js';

/** A node of an account's PEP service (XEP-0163). */
export interface PepNodeTable {
  host: string;
  username: string;
  node: string;
  /** JSON of the node configuration (access model, max items, ...). */
  config: string;
  created_at: number;
}

/** An item published on a PEP node; `id` orders items (the newest has the highest). */
export interface PepItemTable {
  id: Generated<number>;
  host: string;
  username: string;
  node: string;
  item_id: string;
  /** The payload element as XML. */
  payload: string;
  created_at: number;
}

declare module '../../storage/schema.js' {
  interface Database {
    pep_node: PepNodeTable;
    pep_item: PepItemTable;
  }
}

/** The PEP tables and migration. */
export const pepSchema: SchemaPart = {
  owner: 'pep',
  migrations: (k) => ({
    '0006_profiles': {
      async up(db) {
        await k
          .table(db, 'pep_node')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('node', k.key, (c) => c.notNull())
          .addColumn('config', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('pep_node_pk', ['host', 'username', 'node'])
          .execute();
        await k
          .autoId(db, 'pep_item')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('node', k.key, (c) => c.notNull())
          .addColumn('item_id', k.key, (c) => c.notNull())
          .addColumn('payload', k.longText, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await k.index(db, 'pep_item_key', 'pep_item', ['host', 'username', 'node', 'item_id'], true);
        await k.index(db, 'pep_item_order', 'pep_item', ['host', 'username', 'node', 'id']);
      },
    },
  }),
  userTables: [
    { table: 'pep_node', key: 'node' },
    { table: 'pep_item', key: 'id', dropId: true },
  ],
};
