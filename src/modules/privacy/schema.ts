/**
 * The privacy module's table: XEP-0016 privacy lists, one row per list (the XEP-0191
 * blocklist is the default list's jid+deny items). Added to the query layer's `Database`
 * by declaration merging; the migration keeps the name it had before modules owned their
 * tables.
 */
import type { SchemaPart } from '../../storage/migrations.js';

/** XEP-0016 privacy lists, one row per list. */
export interface PrivacyListsTable {
  host: string;
  username: string;
  name: string;
  /** JSON array of items (type, value, action, order, kinds). */
  items: string;
  /** 1 for the user's default list (at most one). */
  is_default: number;
}

declare module '../../storage/schema.js' {
  interface Database {
    privacy_lists: PrivacyListsTable;
  }
}

/** The privacy lists' table and migration. */
export const privacySchema: SchemaPart = {
  owner: 'privacy',
  migrations: (k) => ({
    '0004_privacy': {
      async up(db) {
        await k
          .table(db, 'privacy_lists')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('name', k.key, (c) => c.notNull())
          .addColumn('items', k.longText, (c) => c.notNull())
          .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('privacy_lists_pk', ['host', 'username', 'name'])
          .execute();
      },
    },
  }),
  userTables: [{ table: 'privacy_lists', key: 'name' }],
};
