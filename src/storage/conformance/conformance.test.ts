/**
 * Runs every store's conformance suite on every backend, each case on a fresh database.
 * SQLite always; MySQL joins the list when its backend exists.
 */
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlite } from '../sqlite.js';
import type { Storage } from '../storage.js';
import { SUITES } from './index.js';

interface Backend {
  name: string;
  open(): Promise<{ storage: Storage; dispose(): Promise<void> }>;
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
];

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
