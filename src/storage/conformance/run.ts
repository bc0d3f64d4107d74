/**
 * Runs storage conformance suites on every backend, each case on a fresh database:
 * SQLite, and MySQL as two shards on the local MariaDB (so every store is also checked
 * with users spread over two databases, and the fan-out listings merge them). The suites
 * and the tables come from the caller (`test/conformance.test.ts` hands in every module's
 * suite and schema): storage does not know the modules.
 */
import { after, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { SchemaPart } from '../migrations.js';
import { openSqlite } from '../sqlite.js';
import { openMysqlStorage } from '../open.js';
import { createTestShards, TEST_TUNING, type TestShards } from '../mysql-testing.js';
import type { Storage } from '../storage.js';
import type { ConformanceSuite } from './suite.js';

interface Backend {
  name: string;
  open(): Promise<{ storage: Storage; dispose: () => Promise<void> }>;
}

/**
 * Registers one node:test test per backend, suite and case, named
 * `<backend> · <suite> · <case>`.
 *
 * @example
 * runConformance([usersSuite, rosterSuite], MODULE_SCHEMAS);
 */
export function runConformance(suites: readonly ConformanceSuite[], schema: readonly SchemaPart[]): void {
  let mysqlShards: Promise<TestShards> | undefined;
  after(async () => {
    if (mysqlShards) await (await mysqlShards).drop();
  });

  const backends: Backend[] = [
    {
      name: 'sqlite',
      async open() {
        const dir = mkdtempSync(join(tmpdir(), 'parley-conformance-'));
        const storage = await openSqlite({ file: join(dir, 'c.db'), busyTimeoutMs: 1000, schema });
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
        const storage = await openMysqlStorage(
          shards.map,
          {
            ...TEST_TUNING,
            retries: 1,
            retryBackoffMs: 10,
            breakerThreshold: 5,
            breakerCooldownMs: 1000,
            healthIntervalMs: 0,
            moveTimeoutMs: 2000,
          },
          schema,
        );
        await storage.forEachShard('empty tables', async (db) => {
          for (const t of [...storage.userTables.map((u) => u.table), 'shard_directory']) await sql`DELETE FROM ${sql.table(t)}`.execute(db);
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

  for (const backend of backends) {
    for (const suite of suites) {
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
}
