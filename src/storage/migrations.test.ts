import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import { composeSchema, isMigrationName, migrateToLatest, type SchemaPart } from './migrations.js';
import { openSqlite } from './sqlite.js';
import { StorageError } from '../support/errors.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- the fake parts' tables are not in Database */

/** A part with one table per migration name, created by that migration. */
function part(owner: string, names: string[], userTables: SchemaPart['userTables'] = []): SchemaPart {
  return {
    owner,
    migrations: (k) =>
      Object.fromEntries(
        names.map((name) => [
          name,
          {
            async up(db: Kysely<any>) {
              const table = `t_${owner}_${name.replace(/\W/g, '_')}`;
              await k.table(db, table).addColumn('host', k.key).addColumn('username', k.key).execute();
            },
          },
        ]),
      ),
    userTables,
  };
}

const storageError = (re: RegExp) => (e: unknown) => e instanceof StorageError && re.test(e.message);

test('new migration names are <owner>/<nnnn>_<what>; the numbered history is frozen at 0010', () => {
  assert.ok(isMigrationName('muc', 'muc/0001_rooms'));
  assert.ok(isMigrationName('muc', '0006_profiles'));
  assert.ok(!isMigrationName('muc', '0011_rooms'), 'no new global number');
  assert.ok(!isMigrationName('muc', 'upload/0001_slots'), "another owner's prefix");
  assert.ok(!isMigrationName('muc', 'muc/rooms'));
});

test("composing refuses an owner twice, a misnamed migration (another owner's name too) and a table declared twice", () => {
  assert.throws(() => composeSchema([part('a', ['a/0001_x']), part('a', ['a/0002_y'])]), storageError(/two parts named a/));
  assert.throws(() => composeSchema([part('a', ['0011_x'])]), storageError(/must be named a\//));
  assert.throws(() => composeSchema([part('a', ['a/0001_x']), { ...part('b', []), migrations: (k) => part('a', ['a/0001_x']).migrations(k) }]), storageError(/migration "a\/0001_x" must be named b\//));
  assert.throws(() => composeSchema([part('a', [], [{ table: 'users' as never, key: 'username' }])]), storageError(/table users is declared by storage and a/));
});

test("the storage's own part is always there, once, first", () => {
  const s = composeSchema([part('a', ['a/0001_x'])]);
  assert.deepEqual(s.owners, ['storage', 'a']);
  assert.deepEqual(Object.keys(s.migrations('sqlite')).sort(), ['0001_users', '0007_shard_directory', '0008_portal', 'a/0001_x']);
  assert.deepEqual(
    s.userTables.map((t) => t.table),
    ['users', 'user_flags'],
  );
});

test('a historic name declared by two owners runs both parts as one migration', async () => {
  const storage = await openSqlite({ file: ':memory:', busyTimeoutMs: 100, schema: [part('a', ['0006_profiles']), part('b', ['0006_profiles'])] });
  try {
    const [names] = await storage.forEachShard('names', async (db) => (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db)).rows.map((r) => r.name));
    assert.deepEqual(names, ['0001_users', '0006_profiles', '0007_shard_directory', '0008_portal']);
    const [tables] = await storage.forEachShard('tables', (db) => db.introspection.getTables());
    const have = tables!.map((t) => t.name);
    assert.ok(have.includes('t_a_0006_profiles') && have.includes('t_b_0006_profiles'), have.join(', '));
  } finally {
    await storage.close();
  }
});

test('a module added later whose migrations sort before ones already applied still migrates (unordered across owners)', async () => {
  const storage = await openSqlite({ file: ':memory:', busyTimeoutMs: 100, schema: [part('zed', ['zed/0001_x'])] });
  try {
    const later = composeSchema([part('zed', ['zed/0001_x']), part('abc', ['abc/0001_x', 'abc/0002_y'])]);
    const [ran] = await storage.forEachShard('migrate', (db) => migrateToLatest(db, 'sqlite', later));
    assert.deepEqual(ran, ['abc/0001_x', 'abc/0002_y'], "the new owner's steps, in its order");
    const [again] = await storage.forEachShard('migrate', (db) => migrateToLatest(db, 'sqlite', later));
    assert.deepEqual(again, []);
  } finally {
    await storage.close();
  }
});
