import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSqlite } from './sqlite.js';

// The migrations over every module's tables are tested in test/storage-migrations.test.ts
// (storage does not know the modules).

test('an unopenable database file is a StorageError naming the file', async () => {
  await assert.rejects(openSqlite({ file: '/etc/hostname/none.db', busyTimeoutMs: 100, schema: [] }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'STORAGE_FAILED');
    assert.match(e.message, /none\.db/);
    return true;
  });
});
