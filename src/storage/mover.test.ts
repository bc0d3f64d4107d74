import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from './sqlite.js';
import { USER_TABLES } from './mover.js';

test('USER_TABLES lists every table with host and username columns except shard_directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-mover-'));
  try {
    const storage = await openSqlite({ file: join(dir, 'm.db'), busyTimeoutMs: 1000 });
    try {
      const [tables] = await storage.forEachShard('x', (db) => db.introspection.getTables());
      const perUser = tables!
        .filter((t) => t.columns.some((c) => c.name === 'host') && t.columns.some((c) => c.name === 'username'))
        .map((t) => t.name)
        .filter((n) => n !== 'shard_directory')
        .sort();
      assert.ok(perUser.length >= 10, `found ${perUser.join(', ')}`);
      const listed = USER_TABLES.map((t) => t.table as string).sort();
      assert.deepEqual(listed, perUser, 'a per-user table is missing from USER_TABLES (moves would lose its rows) or listed without being one');
      // Each paging key is a real column of its table.
      for (const t of USER_TABLES) {
        const cols = tables!.find((x) => x.name === t.table)!.columns.map((c) => c.name);
        assert.ok(cols.includes(t.key), `${t.table}.${t.key}`);
        if (t.dropId) assert.ok(cols.includes('id'), `${t.table} has an id to drop`);
      }
    } finally {
      await storage.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
