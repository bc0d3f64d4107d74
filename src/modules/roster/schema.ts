/**
 * The roster module's tables (RFC 6121 §2): one row per contact of an account, and the
 * roster version (RFC 6121 §2.6). Added to the query layer's `Database` by declaration
 * merging; the migrations keep the names they had before modules owned their tables.
 */
import type { SchemaPart } from '../../storage/migrations.js';

export interface RosterTable {
  host: string;
  username: string;
  contact: string;
  name: string | null;
  /** none | to | from | both (RFC 6121 §2.1.2.5) */
  subscription: string;
  /** 1 when the user asked to subscribe to the contact (pending out). */
  ask_out: number;
  /** 1 when the contact asked to subscribe to the user (pending in). */
  ask_in: number;
  /** The pending inbound subscribe request, re-delivered at login (RFC 6121 §3.1.3). */
  ask_in_stanza: string | null;
  /** 1 when the user pre-approved the contact's subscription (RFC 6121 §3.4). */
  approved: number;
  /** 1 when the item is in the user's roster (not only a stored inbound request). */
  in_roster: number;
  /** JSON array of group names. */
  groups: string;
}

export interface RosterVersionTable {
  host: string;
  username: string;
  version: number;
}

declare module '../../storage/schema.js' {
  interface Database {
    roster: RosterTable;
    roster_version: RosterVersionTable;
  }
}

/** The roster's tables and migrations. */
export const rosterSchema: SchemaPart = {
  owner: 'roster',
  migrations: (k) => ({
    '0002_roster': {
      async up(db) {
        await k
          .table(db, 'roster')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('contact', k.key, (c) => c.notNull())
          .addColumn('name', 'text')
          .addColumn('subscription', 'varchar(8)', (c) => c.notNull().defaultTo('none'))
          .addColumn('ask_out', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('ask_in', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('ask_in_stanza', 'text')
          .addColumn('approved', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('in_roster', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('groups', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('roster_pk', ['host', 'username', 'contact'])
          .execute();
        await k
          .table(db, 'roster_version')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('version', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('roster_version_pk', ['host', 'username'])
          .execute();
      },
    },
  }),
  userTables: [
    { table: 'roster', key: 'contact' },
    { table: 'roster_version', key: 'username' },
  ],
};
