/**
 * The storage conformance suites of every store, on SQLite and on MariaDB (two shards):
 * the accounts' (src/auth/user-store.conformance.ts) and each module's that owns tables
 * (src/modules/<m>/store.conformance.ts, found from the module list: a module with a
 * schema and no suite fails here). Test names are `<backend> · <store> · <case>`.
 */
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { suite as usersSuite } from '../src/auth/user-store.conformance.js';
import { MODULES, MODULE_SCHEMAS } from '../src/modules/index.js';
import { runConformance } from '../src/storage/conformance/run.js';
import type { ConformanceSuite } from '../src/storage/conformance/suite.js';

const suites: ConformanceSuite[] = [usersSuite];
const missing: string[] = [];
for (const m of MODULES) {
  if (!m.schema) continue;
  const file = new URL(`../src/modules/${m.schema.owner}/store.conformance.js`, import.meta.url);
  try {
    const mod = (await import(file.href)) as { suite?: ConformanceSuite };
    if (mod.suite) suites.push(mod.suite);
    else missing.push(`${m.name} (store.conformance.ts exports no \`suite\`)`);
  } catch (e) {
    // Only the suite's own file missing; a suite whose imports fail is an error of its own.
    if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND' || !String((e as Error).message).includes(fileURLToPath(file))) throw e;
    missing.push(`${m.name} (no src/modules/${m.schema.owner}/store.conformance.ts)`);
  }
}

test('every module that owns tables has a conformance suite', () => {
  if (missing.length > 0) throw new Error(`modules with tables and no conformance suite: ${missing.join(', ')}`);
});

runConformance(suites, MODULE_SCHEMAS);
