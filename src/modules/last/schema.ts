/**
 * The last-activity module's table (XEP-0012): one row per account, written when its
 * last resource goes offline. Added to the query layer's `Database` by declaration
 * merging; the migration keeps the name it had before modules owned their tables.
 */
import type { SchemaPart } from '../../storage/migrations.js';

/** When an account's last resource went offline, and what it said then (XEP-0012). */
export interface LastActivityTable {
  host: string;
  username: string;
  /** ms since the epoch of the last unavailable presence (or end of an available session). */
  seen_at: number;
  /** The status text of that unavailable presence ('' when none). */
  status: string;
}

declare module '../../storage/schema.js' {
  interface Database {
    last_activity: LastActivityTable;
  }
}

/** The last-activity table and migration. */
export const lastSchema: SchemaPart = {
  owner: 'last',
  migrations: (k) => ({
    '0010_last_activity': {
      async up(db) {
        await k
          .table(db, 'last_activity')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('seen_at', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('last_activity_pk', ['host', 'username'])
          .execute();
      },
    },
  }),
  userTables: [{ table: 'last_activity', key: 'username' }],
};
