/**
 * Runs every store's conformance suite on every backend, each case on a fresh database.
 * SQLite, and MySQL as two shards on the local MariaDB (so every store is also checked
 * with users spread over two databases, and the fan-out listings merge them).
 */
import { after, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openSqlite } from '../sqlite.js';
import { openMysqlStorage } from '../open.js';
import { createTestShards, TEST_TUNING, type TestShards } from '../mysql-testing.js';
import { USER_TABLES } from '../mover.js';
import type { Storage } from '../storage.js';
import { SUITES } from './index.js';

interface Backend {
  name: string;
  open(): Promise<{ storage: Storage; dispose: () => Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'parley-conformance-'));
      const storage = await openSqlite({ file: join(dir, 'c.db'), busyTimeoutMs: 1000 });
      return {
        storage,
        async dispose() {
          await storage.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'mysql',
    async open() {
      // Two databases, migrated once per run; each case starts from empty tables.
      mysqlShards ??= createTestShards(2);
      const shards = await mysqlShards;
      const storage = await openMysqlStorage(shards.map, {
        ...TEST_TUNING,
        retries: 1,
        retryBackoffMs: 10,
        breakerThreshold: 5,
        breakerCooldownMs: 1000,
        healthIntervalMs: 0,
        moveTimeoutMs: 2000,
      });
      await storage.forEachShard('empty tables', async (db) => {
        for (const t of [...USER_TABLES.map((u) => u.table), 'shard_directory']) await sql`DELETE FROM ${sql.table(t)}`.execute(db);
      });
      return {
        storage,
        async dispose() {
          await storage.close();
        },
      };
    },
  },
];

let mysqlShards: Promise<TestShards> | undefined;
after(async () => {
  if (mysqlShards) await (await mysqlShards).drop();
});

for (const backend of BACKENDS) {
  for (const suite of SUITES) {
    for (const [name, run] of Object.entries(suite.cases)) {
      test(`${backend.name} · ${suite.name} · ${name}`, async () => {
        const { storage, dispose } = await backend.open();
        try {
          await run(storage);
        } finally {
          await dispose();
        }
      });
    }
  }
}
