/**
 * Schema migrations, written once for every SQL dialect. Each runs once (Kysely records
 * them in `kysely_migration`, under a lock so two nodes starting together do not race),
 * and each is safe to run again (`ifNotExists`), so a half-applied run can be repeated.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely<any>: a migration runs against the schema as it was then, not today's Database type (the Kysely docs' own pattern) */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { StorageError } from '../support/errors.js';

export type Dialect = 'sqlite' | 'mysql';

/** Column type for identifiers that are part of an index (utf8mb4-safe length on MySQL). */
const KEY = 'varchar(191)';

function migrations(dialect: Dialect): Record<string, Migration> {
  // MySQL tables are utf8mb4 with binary collation whatever the database's default:
  // identifiers compare exactly as PRECIS left them ("müller" and "muller" are two users).
  const table = (db: Kysely<any>, name: string) => {
    const t = db.schema.createTable(name).ifNotExists();
    return dialect === 'mysql' ? t.modifyEnd(sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`) : t;
  };
  // CREATE INDEX IF NOT EXISTS is MariaDB and SQLite only: on MySQL ask the catalogue first.
  const index = async (db: Kysely<any>, name: string, on: string, columns: string[], unique = false) => {
    if (dialect === 'mysql') {
      const found = await sql`SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ${on} AND index_name = ${name} LIMIT 1`.execute(db);
      if (found.rows.length > 0) return;
      let b = db.schema.createIndex(name).on(on).columns(columns);
      if (unique) b = b.unique();
      await b.execute();
      return;
    }
    let b = db.schema.createIndex(name).ifNotExists().on(on).columns(columns);
    if (unique) b = b.unique();
    await b.execute();
  };
  const autoId = (db: Kysely<any>, name: string) =>
    dialect === 'mysql'
      ? table(db, name).addColumn('id', 'bigint', (c) => c.autoIncrement().primaryKey())
      : table(db, name).addColumn('id', 'integer', (c) => c.autoIncrement().primaryKey());
  const longText = dialect === 'mysql' ? sql`mediumtext` : sql`text`;
  return {
    '0001_users': {
      async up(db) {
        await table(db, 'users')
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
        await table(db, 'roster')
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
        await table(db, 'roster_version')
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
        await index(db, 'offline_user', 'offline', ['host', 'username', 'id']);
      },
    },
    '0004_privacy': {
      async up(db) {
        // XEP-0016 privacy lists (the XEP-0191 blocklist is the default list's jid+deny items).
        await table(db, 'privacy_lists')
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
        await table(db, 'archive')
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
        await index(db, 'archive_with', 'archive', ['host', 'username', 'with_jid', 'id']);
        await index(db, 'archive_time', 'archive', ['created_at']);
        await table(db, 'archive_prefs')
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
        await table(db, 'vcard')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('vcard', longText, (c) => c.notNull())
          .addColumn('photo_hash', 'varchar(40)', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('vcard_pk', ['host', 'username'])
          .execute();
        await table(db, 'pep_node')
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
        await index(db, 'pep_item_key', 'pep_item', ['host', 'username', 'node', 'item_id'], true);
        await index(db, 'pep_item_order', 'pep_item', ['host', 'username', 'node', 'id']);
      },
    },
    '0007_shard_directory': {
      async up(db) {
        // Per-user placement overrides of the MySQL shard map (kept on the directory shard;
        // the table exists everywhere so any shard can become the directory).
        await table(db, 'shard_directory')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('shard', 'varchar(64)', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('shard_directory_pk', ['host', 'username'])
          .execute();
      },
    },
    '0008_portal': {
      async up(db) {
        // Accounts the portal banned or deleted (data kept): such a user cannot log in.
        await table(db, 'user_flags')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('state', 'varchar(16)', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('user_flags_pk', ['host', 'username'])
          .execute();
        // Ids of portal events already applied (a repeated event is applied once).
        await table(db, 'portal_events')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('id', KEY, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('portal_events_pk', ['host', 'id'])
          .execute();
        await index(db, 'portal_events_age', 'portal_events', ['created_at']);
      },
    },
    '0009_offline_key': {
      async up(db) {
        // What makes storing one message idempotent: a write retried after an ambiguous
        // failure, or the sender's resend after a "try again" error, stores it once.
        await db.schema.alterTable('offline').addColumn('msg_key', 'varchar(64)').execute();
        await index(db, 'offline_key', 'offline', ['host', 'username', 'msg_key']);
      },
    },
    '0010_last_activity': {
      async up(db) {
        // XEP-0012: one row per account, written when its last resource goes offline.
        await table(db, 'last_activity')
          .addColumn('host', KEY, (c) => c.notNull())
          .addColumn('username', KEY, (c) => c.notNull())
          .addColumn('seen_at', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('last_activity_pk', ['host', 'username'])
          .execute();
      },
    },
  };
}

/** Brings a database to the latest schema. Safe to call on every start, and twice. */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  const all = migrations(dialect);
  // Already up to date: skip the migration lock (on MySQL one lock for the whole server,
  // which every node and shard opening at once would otherwise queue on).
  const done = await db
    .selectFrom('kysely_migration')
    .select('name')
    .execute()
    .then((rows: Array<{ name: string }>) => new Set(rows.map((r) => r.name)))
    .catch(() => new Set<string>());
  if (Object.keys(all).every((name) => done.has(name))) return [];
  const provider: MigrationProvider = { getMigrations: async () => all };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- Kysely types the failure as unknown; a non-Error is shown as String() shows it
  if (error) throw new StorageError(`migration failed: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
