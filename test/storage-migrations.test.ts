/**
 * The schema as the modules declare it (src/modules/<m>/schema.ts, composed by
 * src/storage/migrations.ts): it migrates a new database once, and a database made by
 * the single migration list of before (test/fixtures/migrations-0010.ts, on an existing
 * SQLite file or MariaDB shard) opens with nothing re-run, nothing missing, no duplicate
 * record, the same tables, columns and indexes as a new one, and its data kept.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { MODULE_SCHEMAS } from '../src/modules/index.js';
import { SqlRosterStore } from '../src/modules/roster/store-sql.js';
import { SqlVcardStore } from '../src/modules/vcard/store-sql.js';
import { SqlPepStore } from '../src/modules/pep/store-sql.js';
import { defaultConfig } from '../src/modules/pep/node-config.js';
import { composeSchema, isMigrationName, migrateToLatest, migrationKit, STORAGE_SCHEMA } from '../src/storage/migrations.js';
import { openMysqlBackend } from '../src/storage/mysql.js';
import { createTestShards, TEST_TUNING, type TestShards } from '../src/storage/mysql-testing.js';
import { openMysqlStorage, type MysqlSettings } from '../src/storage/open.js';
import type { Database } from '../src/storage/schema.js';
import type { ShardedStorage } from '../src/storage/sharded.js';
import { openSqlite } from '../src/storage/sqlite.js';
import { migrateLegacy } from './fixtures/migrations-0010.js';

const SCHEMA = composeSchema(MODULE_SCHEMAS);
/** The names the single list of before recorded (0001_users … 0010_last_activity). */
const LEGACY_NAMES = ['0001_users', '0002_roster', '0003_offline', '0004_privacy', '0005_archive', '0006_profiles', '0007_shard_directory', '0008_portal', '0009_offline_key', '0010_last_activity'];
const HOST = 'legacy.test';
const PEP = defaultConfig(20);
const SETTINGS: MysqlSettings = { ...TEST_TUNING, retries: 1, retryBackoffMs: 10, breakerThreshold: 5, breakerCooldownMs: 1000, healthIntervalMs: 0, moveTimeoutMs: 2000 };

const migrationNames = async (db: Kysely<Database>) => (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db)).rows.map((r) => r.name);
const only = async <T>(s: ShardedStorage, fn: (db: Kysely<Database>) => Promise<T>): Promise<T> => (await s.forEachShard('inspect', fn))[0]!;

/** Tables, columns and indexes as SQLite keeps them (the CREATE statements). */
async function sqliteShape(db: Kysely<Database>): Promise<string[]> {
  const r = await sql<{ type: string; name: string; sql: string | null }>`SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE 'kysely_%' ORDER BY type, name`.execute(db);
  return r.rows.map((x) => `${x.type} ${x.name}: ${x.sql ?? ''}`);
}

/** Tables, columns and indexes as MariaDB's catalogue describes them. */
async function mysqlShape(db: Kysely<Database>): Promise<string[]> {
  const cols = await sql<Record<string, unknown>>`SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS ty, IS_NULLABLE AS n, COLUMN_DEFAULT AS d, EXTRA AS e, COLLATION_NAME AS co
    FROM information_schema.columns WHERE table_schema = DATABASE() AND TABLE_NAME NOT LIKE 'kysely_%' ORDER BY TABLE_NAME, ORDINAL_POSITION`.execute(db);
  const idx = await sql<Record<string, unknown>>`SELECT TABLE_NAME AS t, INDEX_NAME AS i, NON_UNIQUE AS u, SEQ_IN_INDEX AS s, COLUMN_NAME AS c
    FROM information_schema.statistics WHERE table_schema = DATABASE() AND TABLE_NAME NOT LIKE 'kysely_%' ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`.execute(db);
  const tables = await sql<Record<string, unknown>>`SELECT TABLE_NAME AS t, ENGINE AS e, TABLE_COLLATION AS co FROM information_schema.tables WHERE table_schema = DATABASE() AND TABLE_NAME NOT LIKE 'kysely_%' ORDER BY TABLE_NAME`.execute(db);
  return [...tables.rows, ...cols.rows, ...idx.rows].map((r) => JSON.stringify(r));
}

/** Some data in the old database, in tables of three owners (one shared migration). */
async function fillLegacy(db: Kysely<Database>): Promise<void> {
  await db.insertInto('roster').values({ host: HOST, username: 'ann', contact: 'bob@x.test', name: 'Bob', subscription: 'both', ask_out: 0, ask_in: 0, ask_in_stanza: null, approved: 0, in_roster: 1, groups: '["Friends"]' }).execute();
  await db.insertInto('vcard').values({ host: HOST, username: 'ann', vcard: "<vCard xmlns='vcard-temp'><FN>Ann</FN></vCard>", photo_hash: '', updated_at: 1 }).execute();
  await db.insertInto('pep_node').values({ host: HOST, username: 'ann', node: 'urn:test', config: '{}', created_at: 1 }).execute();
}

/** The data of `fillLegacy`, read through today's stores. */
async function checkLegacyData(storage: ShardedStorage): Promise<void> {
  assert.deepEqual((await new SqlRosterStore(storage).list(HOST, 'ann')).map((i) => [i.jid, i.name, i.subscription, i.groups]), [['bob@x.test', 'Bob', 'both', ['Friends']]]);
  assert.equal((await new SqlVcardStore(storage).get(HOST, 'ann'))?.xml, "<vCard xmlns='vcard-temp'><FN>Ann</FN></vCard>");
  assert.deepEqual((await new SqlPepStore(storage, PEP).listNodes(HOST, 'ann')).map((n) => n.node), ['urn:test']);
}

test('migrations run on a new database and a second run changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-sqlite-'));
  try {
    const file = join(dir, 'p.db');
    const s1 = await openSqlite({ file, busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
    const [again] = await s1.forEachShard('migrate', (db) => migrateToLatest(db, 'sqlite', SCHEMA));
    assert.deepEqual(again, [], 'nothing left to apply');
    await s1.close();
    // Reopening runs them a third time, still without effect.
    const s2 = await openSqlite({ file, busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
    const [tables] = await s2.forEachShard('tables', (db) => db.introspection.getTables());
    const names = tables!.map((t) => t.name).sort();
    for (const t of ['offline', 'roster', 'roster_version', 'users']) assert.ok(names.includes(t), `table ${t}`);
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the composed schema keeps the names of the single list of before, and adds none', () => {
  assert.deepEqual(Object.keys(SCHEMA.migrations('sqlite')).sort(), LEGACY_NAMES);
  assert.deepEqual(Object.keys(SCHEMA.migrations('mysql')).sort(), LEGACY_NAMES);
});

test('only the historic 0006_profiles is declared by two owners; every other name by one', () => {
  const kit = migrationKit('sqlite');
  const owners = new Map<string, string[]>();
  for (const p of [STORAGE_SCHEMA, ...MODULE_SCHEMAS]) {
    for (const name of Object.keys(p.migrations(kit))) {
      assert.ok(isMigrationName(p.owner, name), `${p.owner}: ${name}`);
      owners.set(name, [...(owners.get(name) ?? []), p.owner]);
    }
  }
  const shared = [...owners].filter(([, o]) => o.length > 1);
  assert.deepEqual(shared, [['0006_profiles', ['pep', 'vcard']]]);
});

test('an SQLite file made by the single migration list opens cleanly: nothing re-run or missing, same shape, data kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-legacy-'));
  try {
    const file = join(dir, 'old.db');
    const old = new Kysely<Database>({ dialect: new SqliteDialect({ database: new BetterSqlite3(file) }) });
    assert.deepEqual((await migrateLegacy(old, 'sqlite')).sort(), LEGACY_NAMES);
    await fillLegacy(old);
    await old.destroy();

    const upgraded = await openSqlite({ file, busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
    const fresh = await openSqlite({ file: join(dir, 'new.db'), busyTimeoutMs: 1000, schema: MODULE_SCHEMAS });
    try {
      assert.deepEqual(await only(upgraded, migrationNames), LEGACY_NAMES, 'the same records, none twice, none added');
      assert.deepEqual(await only(upgraded, (db) => migrateToLatest(db, 'sqlite', SCHEMA)), [], 'nothing to apply');
      assert.deepEqual(await only(fresh, migrationNames), LEGACY_NAMES);
      assert.deepEqual(await only(upgraded, sqliteShape), await only(fresh, sqliteShape), 'tables and indexes as a new database has them');
      await checkLegacyData(upgraded);
    } finally {
      await upgraded.close();
      await fresh.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

let shards: TestShards | undefined;
after(async () => {
  await shards?.drop();
});

test('a MariaDB shard made by the single migration list opens cleanly: nothing re-run or missing, same shape, data kept', async () => {
  shards = await createTestShards(2);
  const [legacySpec, freshSpec] = shards.specs;
  const old = openMysqlBackend(legacySpec!, TEST_TUNING);
  try {
    assert.deepEqual((await migrateLegacy(old.db, 'mysql')).sort(), LEGACY_NAMES);
    await fillLegacy(old.db);
  } finally {
    await old.close();
  }
  const upgraded = await openMysqlStorage({ directory: legacySpec!.name, shards: [legacySpec!] }, SETTINGS, MODULE_SCHEMAS);
  const fresh = await openMysqlStorage({ directory: freshSpec!.name, shards: [freshSpec!] }, SETTINGS, MODULE_SCHEMAS);
  try {
    assert.deepEqual(await only(upgraded, migrationNames), LEGACY_NAMES, 'the same records, none twice, none added');
    assert.deepEqual(await only(upgraded, (db) => migrateToLatest(db, 'mysql', SCHEMA)), [], 'nothing to apply');
    assert.deepEqual(await only(fresh, migrationNames), LEGACY_NAMES);
    assert.deepEqual(await only(upgraded, mysqlShape), await only(fresh, mysqlShape), 'tables, columns and indexes as a new shard has them');
    await checkLegacyData(upgraded);
  } finally {
    await upgraded.close();
    await fresh.close();
  }
});
