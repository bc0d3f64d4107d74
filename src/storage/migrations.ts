/**
 * Schema migrations, written once for every SQL dialect, composed from the parts that
 * own tables: the storage's own (accounts, the shard directory, the portal's event ids)
 * and every module's (`src/modules/<m>/schema.ts`, handed in by the composition root:
 * storage does not know the modules). Each migration runs once (Kysely records it in
 * `kysely_migration`, under a lock so two nodes starting together do not race), and each
 * is safe to run again (`ifNotExists`), so a half-applied run can be repeated.
 *
 * Names. `0001_users` … `0010_last_activity` are the history from before tables moved to
 * their modules: kept exactly, so an existing database neither re-runs nor misses one. A
 * historic migration that created tables of two owners (`0006_profiles`: vcard and pep)
 * is declared by both, each creating its own tables; the parts are run as one migration
 * under the one name. Every new migration is named `<owner>/<nnnn>_<what>` (e.g.
 * `muc/0001_rooms`) and may not be shared: owners number their own steps, and since a
 * module added later may sort before one already applied, migrations run unordered across
 * owners (`allowUnorderedMigrations`), in name order within one.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely<any>: a migration runs against the schema as it was then, not today's Database type (the Kysely docs' own pattern) */
import { Migrator, sql, type CreateTableBuilder, type Kysely, type Migration, type MigrationProvider, type RawBuilder } from 'kysely';
import { StorageError } from '../support/errors.js';
import type { UserTable } from './mover.js';

export type Dialect = 'sqlite' | 'mysql';

/** What a migration is written with: the dialect and the few helpers every table needs. */
export interface MigrationKit {
  readonly dialect: Dialect;
  /** Column type for identifiers that are part of an index (utf8mb4-safe length on MySQL). */
  readonly key: 'varchar(191)';
  /** Column type for stanzas and other long text (mediumtext on MySQL). */
  readonly longText: RawBuilder<unknown>;
  /** CREATE TABLE IF NOT EXISTS; on MySQL InnoDB, utf8mb4 with binary collation. */
  table(db: Kysely<any>, name: string): CreateTableBuilder<string>;
  /** `table` with an auto-increment `id` primary key. */
  autoId(db: Kysely<any>, name: string): CreateTableBuilder<string, 'id'>;
  /** CREATE INDEX if it is not there (MySQL has no IF NOT EXISTS: the catalogue is asked). */
  index(db: Kysely<any>, name: string, on: string, columns: string[], unique?: boolean): Promise<void>;
}

/**
 * The tables one owner brings: its migrations and the tables it keeps per user.
 *
 * @example
 * export const lastSchema: SchemaPart = {
 *   owner: 'last',
 *   migrations: (k) => ({
 *     '0010_last_activity': { up: (db) => k.table(db, 'last_activity').addColumn('host', k.key, (c) => c.notNull()) … .execute() },
 *   }),
 *   userTables: [{ table: 'last_activity', key: 'username' }],
 * };
 */
export interface SchemaPart {
  /** Who owns the tables: `storage`, or the module (its folder name). New migration names start with `<owner>/`. */
  readonly owner: string;
  /** Its migrations by name; each idempotent. */
  migrations(kit: MigrationKit): Record<string, Migration>;
  /** Its tables keyed by (host, username): a move between shards carries them. */
  readonly userTables: readonly UserTable[];
}

/** The schema of a storage: every part's migrations together, and every per-user table. */
export interface StorageSchema {
  /** Owners, in the order their migrations run within a shared name. */
  readonly owners: readonly string[];
  migrations(dialect: Dialect): Record<string, Migration>;
  readonly userTables: readonly UserTable[];
}

/** The helpers a migration is written with, for one dialect. */
export function migrationKit(dialect: Dialect): MigrationKit {
  // MySQL tables are utf8mb4 with binary collation whatever the database's default:
  // identifiers compare exactly as PRECIS left them ("müller" and "muller" are two users).
  const table = (db: Kysely<any>, name: string) => {
    const t = db.schema.createTable(name).ifNotExists();
    return dialect === 'mysql' ? t.modifyEnd(sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`) : t;
  };
  return {
    dialect,
    key: 'varchar(191)',
    longText: dialect === 'mysql' ? sql`mediumtext` : sql`text`,
    table,
    autoId: (db, name) =>
      dialect === 'mysql'
        ? table(db, name).addColumn('id', 'bigint', (c) => c.autoIncrement().primaryKey())
        : table(db, name).addColumn('id', 'integer', (c) => c.autoIncrement().primaryKey()),
    // CREATE INDEX IF NOT EXISTS is MariaDB and SQLite only: on MySQL ask the catalogue first.
    async index(db, name, on, columns, unique = false) {
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
    },
  };
}

/** The storage's own tables (and auth's): accounts, the shard directory, portal event ids. */
export const STORAGE_SCHEMA: SchemaPart = {
  owner: 'storage',
  migrations: (k) => ({
    '0001_users': {
      async up(db) {
        await k
          .table(db, 'users')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('scram_sha1', 'text', (c) => c.notNull())
          .addColumn('scram_sha256', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('users_pk', ['host', 'username'])
          .execute();
      },
    },
    '0007_shard_directory': {
      async up(db) {
        // Per-user placement overrides of the MySQL shard map (kept on the directory shard;
        // the table exists everywhere so any shard can become the directory).
        await k
          .table(db, 'shard_directory')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('shard', 'varchar(64)', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('shard_directory_pk', ['host', 'username'])
          .execute();
      },
    },
    '0008_portal': {
      async up(db) {
        // Accounts the portal banned or deleted (data kept): such a user cannot log in.
        await k
          .table(db, 'user_flags')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('state', 'varchar(16)', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('user_flags_pk', ['host', 'username'])
          .execute();
        // Ids of portal events already applied (a repeated event is applied once).
        await k
          .table(db, 'portal_events')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('id', k.key, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('portal_events_pk', ['host', 'id'])
          .execute();
        await k.index(db, 'portal_events_age', 'portal_events', ['created_at']);
      },
    },
  }),
  // `shard_directory` is not one: it is the placement itself.
  userTables: [
    { table: 'users', key: 'username' },
    { table: 'user_flags', key: 'username' },
  ],
};

/** The numbered names from before tables moved to their owners (frozen: no new one). */
const HISTORIC = /^00(0[1-9]|10)_[a-z_]+$/;

/** Is `name` a valid migration name for `owner`? */
export function isMigrationName(owner: string, name: string): boolean {
  return HISTORIC.test(name) || (name.startsWith(`${owner}/`) && /^\d{4}_[a-z0-9_]+$/.test(name.slice(owner.length + 1)));
}

/**
 * Puts the storage's own part and the given ones (the modules', in list order) together.
 * Throws a StorageError for an owner given twice, a migration name that breaks the rules
 * above (so a new name cannot be another owner's), or a per-user table declared twice.
 */
export function composeSchema(parts: readonly SchemaPart[]): StorageSchema {
  const all = [STORAGE_SCHEMA, ...parts.filter((p) => p !== STORAGE_SCHEMA)];
  const owners = new Set<string>();
  const tables = new Map<string, string>();
  const probe = migrationKit('sqlite'); // names do not depend on the dialect; nothing runs here
  for (const p of all) {
    if (owners.has(p.owner)) throw new StorageError(`schema: two parts named ${p.owner}`, false);
    owners.add(p.owner);
    // The owner's prefix keeps new names apart; only historic ones can be shared.
    for (const name of Object.keys(p.migrations(probe))) {
      if (!isMigrationName(p.owner, name)) throw new StorageError(`schema ${p.owner}: migration "${name}" must be named ${p.owner}/<nnnn>_<what>`, false);
    }
    for (const t of p.userTables) {
      const other = tables.get(t.table);
      if (other !== undefined) throw new StorageError(`schema: table ${t.table} is declared by ${other} and ${p.owner}`, false);
      tables.set(t.table, p.owner);
    }
  }
  return {
    owners: [...owners],
    userTables: all.flatMap((p) => p.userTables),
    migrations(dialect) {
      const kit = migrationKit(dialect);
      const steps = new Map<string, Migration[]>();
      for (const p of all) {
        for (const [name, m] of Object.entries(p.migrations(kit))) {
          const list = steps.get(name);
          if (list) list.push(m);
          else steps.set(name, [m]);
        }
      }
      const out: Record<string, Migration> = {};
      for (const [name, list] of steps) {
        out[name] =
          list.length === 1
            ? list[0]!
            : {
                async up(db) {
                  for (const m of list) await m.up(db);
                },
              };
      }
      return out;
    },
  };
}

/** Brings a database to the latest schema. Safe to call on every start, and twice. */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect, schema: StorageSchema): Promise<string[]> {
  const all = schema.migrations(dialect);
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
  const migrator = new Migrator({ db, provider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- Kysely types the failure as unknown; a non-Error is shown as String() shows it
  if (error) throw new StorageError(`migration failed: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error });
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
