import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from './sqlite.js';
import { migrateToLatest } from './migrations.js';

test('migrations run on a new database and a second run changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-sqlite-'));
  try {
    const file = join(dir, 'p.db');
    const s1 = await openSqlite({ file, busyTimeoutMs: 1000 });
    const [again] = await s1.forEachShard('migrate', (db) => migrateToLatest(db, 'sqlite'));
    assert.deepEqual(again, [], 'nothing left to apply');
    await s1.close();
    // Reopening runs them a third time, still without effect.
    const s2 = await openSqlite({ file, busyTimeoutMs: 1000 });
    const [tables] = await s2.forEachShard('tables', (db) => db.introspection.getTables());
    const names = tables!.map((t) => t.name).sort();
    for (const t of ['offline', 'roster', 'roster_version', 'users']) assert.ok(names.includes(t), `table ${t}`);
    await s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unopenable database file is a StorageError naming the file', async () => {
  await assert.rejects(openSqlite({ file: '/etc/hostname/none.db', busyTimeoutMs: 100 }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'STORAGE_FAILED');
    assert.match(e.message, /none\.db/);
    return true;
  });
});
