/**
 * Schema migrations, written once for every SQL dialect. Each runs once (Kysely records
 * them in `kysely_migration`, under a lock so two nodes starting together do not race),
 * and each is safe to run again (`ifNotExists`), so a half-applied run can be repeated.
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { StorageError } from '../xmpp/errors.js';

export type Dialect = 'sqlite' | 'mysql';

/** Column type for identifiers that are part of an index (utf8mb4-safe length on MySQL). */
const KEY = 'varchar(191)';

function migrations(dialect: Dialect): Record<string, Migration> {
  const autoId = (db: Kysely<any>, table: string) =>
    dialect === 'mysql'
      ? db.schema.createTable(table).ifNotExists().addColumn('id', 'bigint', (c) => c.autoIncrement().primaryKey())
      : db.schema.createTable(table).ifNotExists().addColumn('id', 'integer', (c) => c.autoIncrement().primaryKey());
  const longText = dialect === 'mysql' ? sql`mediumtext` : sql`text`;
  return {
    '0001_users': {
      async up(db) {
        await db.schema
          .createTable('users')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('scram_sha1', 'text', (c) => c.notNull())
          .addColumn('scram_sha256', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('users_pk', ['host', 'username'])
          .execute();
      },
    },
    '0002_roster': {
      async up(db) {
        await db.schema
          .createTable('roster')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('contact', KEY, (c) => c.notNull())
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
        await db.schema
          .createTable('roster_version')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('version', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('roster_version_pk', ['host', 'username'])
          .execute();
      },
    },
    '0003_offline': {
      async up(db) {
        await autoId(db, 'offline')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('stanza', longText, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('offline_user').ifNotExists().on('offline').columns(['host', 'username', 'id']).execute();
      },
    },
    '0004_privacy': {
      async up(db) {
        // XEP-0016 privacy lists (the XEP-0191 blocklist is the default list's jid+deny items).
        await db.schema
          .createTable('privacy_lists')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('name', KEY, (c) => c.notNull())
          .addColumn('items', longText, (c) => c.notNull())
          .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('privacy_lists_pk', ['host', 'username', 'name'])
          .execute();
      },
    },
    '0005_archive': {
      async up(db) {
        // XEP-0313 user archives. `id` is the archive id: time-ordered (milliseconds × 1024
        // plus a sequence), unique in its archive, chosen by the server before the write.
        await db.schema
          .createTable('archive')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('id', 'bigint', (c) => c.notNull())
          .addColumn('with_jid', KEY, (c) => c.notNull())
          .addColumn('with_resource', KEY, (c) => c.notNull().defaultTo(''))
          .addColumn('direction', 'varchar(3)', (c) => c.notNull())
          .addColumn('stanza', longText, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('archive_pk', ['host', 'username', 'id'])
          // SQLite: rows live in the primary key's B-tree (one tree fewer to write per row).
          .$call((t) => (dialect === 'sqlite' ? t.modifyEnd(sql`without rowid`) : t))
          .execute();
        await db.schema.createIndex('archive_with').ifNotExists().on('archive').columns(['host', 'username', 'with_jid', 'id']).execute();
        await db.schema.createIndex('archive_time').ifNotExists().on('archive').columns(['created_at']).execute();
        await db.schema
          .createTable('archive_prefs')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('default_mode', 'varchar(8)', (c) => c.notNull())
          .addColumn('always_jids', 'text', (c) => c.notNull())
          .addColumn('never_jids', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('archive_prefs_pk', ['host', 'username'])
          .execute();
      },
    },
    '0006_profiles': {
      async up(db) {
        await db.schema
          .createTable('vcard')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('vcard', longText, (c) => c.notNull())
          .addColumn('photo_hash', 'varchar(40)', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('vcard_pk', ['host', 'username'])
          .execute();
        await db.schema
          .createTable('pep_node')
          .ifNotExists()
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('node', KEY, (c) => c.notNull())
          .addColumn('config', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('pep_node_pk', ['host', 'username', 'node'])
          .execute();
        await autoId(db, 'pep_item')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('node', KEY, (c) => c.notNull())
          .addColumn('item_id', KEY, (c) => c.notNull())
          .addColumn('payload', longText, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('pep_item_key').ifNotExists().unique().on('pep_item').columns(['host', 'username', 'node', 'item_id']).execute();
        await db.schema.createIndex('pep_item_order').ifNotExists().on('pep_item').columns(['host', 'username', 'node', 'id']).execute();
      },
    },
  };
}

/** Brings a database to the latest schema. Safe to call on every start, and twice. */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  const all = migrations(dialect);
  const provider: MigrationProvider = { getMigrations: async () => all };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw new StorageError(`migration failed: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
