/**
 * The archive module's tables (XEP-0313): the user archives, one row per message per
 * archive (sender's and recipient's), and the archiving preferences (§6). Added to the
 * query layer's `Database` by declaration merging; the migration keeps the name it had
 * before modules owned their tables.
 */
import { sql } from 'kysely';
import type { SchemaPart } from '../../storage/migrations.js';

/** XEP-0313 user archive: one row per message per archive (sender's and recipient's). */
export interface ArchiveTable {
  host: string;
  username: string;
  /** Archive id: milliseconds × 1024 + sequence (time-ordered, unique per archive). */
  id: number;
  /** The other party, bare. */
  with_jid: string;
  /** The other party's resource, '' when the message named none. */
  with_resource: string;
  /** 'in' (received) or 'out' (sent). */
  direction: string;
  /** The message as XML (in jabber:client). */
  stanza: string;
  /** Milliseconds since the epoch (from the id). */
  created_at: number;
}

/** XEP-0313 §6 archiving preferences. */
export interface ArchivePrefsTable {
  host: string;
  username: string;
  /** always | never | roster */
  default_mode: string;
  /** JSON array of JIDs always archived. */
  always_jids: string;
  /** JSON array of JIDs never archived. */
  never_jids: string;
}

declare module '../../storage/schema.js' {
  interface Database {
    archive: ArchiveTable;
    archive_prefs: ArchivePrefsTable;
  }
}

/** The archive's tables and migration. */
export const mamSchema: SchemaPart = {
  owner: 'mam',
  migrations: (k) => ({
    '0005_archive': {
      async up(db) {
        // XEP-0313 user archives. `id` is the archive id: time-ordered (milliseconds × 1024
        // plus a sequence), unique in its archive, chosen by the server before the write.
        await k
          .table(db, 'archive')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('id', 'bigint', (c) => c.notNull())
          .addColumn('with_jid', k.key, (c) => c.notNull())
          .addColumn('with_resource', k.key, (c) => c.notNull().defaultTo(''))
          .addColumn('direction', 'varchar(3)', (c) => c.notNull())
          .addColumn('stanza', k.longText, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('archive_pk', ['host', 'username', 'id'])
          // SQLite: rows live in the primary key's B-tree (one tree fewer to write per row).
          .$call((t) => (k.dialect === 'sqlite' ? t.modifyEnd(sql`without rowid`) : t))
          .execute();
        await k.index(db, 'archive_with', 'archive', ['host', 'username', 'with_jid', 'id']);
        await k.index(db, 'archive_time', 'archive', ['created_at']);
        await k
          .table(db, 'archive_prefs')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('default_mode', 'varchar(8)', (c) => c.notNull())
          .addColumn('always_jids', 'text', (c) => c.notNull())
          .addColumn('never_jids', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('archive_prefs_pk', ['host', 'username'])
          .execute();
      },
    },
  }),
  // The archive is the one table that grows large: a move copies it live, then syncs it.
  userTables: [
    { table: 'archive', key: 'id', bulk: true },
    { table: 'archive_prefs', key: 'username' },
  ],
};
