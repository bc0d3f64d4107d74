#!/usr/bin/env node
// Runs every compiled test (dist/**/*.test.js) with node:test.
// Makes one TLS certificate for the test servers and has the test processes trust it
// (NODE_EXTRA_CA_CERTS), so clients check certificates as they would in production.
// Usage: node scripts/run-tests.js [substring ...]   (only files whose path contains one)
import { readdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir, availableParallelism } from 'node:os';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

function find(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...find(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = find(dist)
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}

const { makeSelfSignedCertificate } = await import(join(dist, 'src/support/x509.js'));
const dir = mkdtempSync(join(tmpdir(), 'parley-test-tls-'));
const { cert, key } = makeSelfSignedCertificate(['example.test', 'localhost']);
writeFileSync(join(dir, 'cert.pem'), cert);
writeFileSync(join(dir, 'key.pem'), key);

const env = {
  ...process.env,
  NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'),
  PARLEY_TEST_CERT: join(dir, 'cert.pem'),
  PARLEY_TEST_KEY: join(dir, 'key.pem'),
};
const concurrency = Math.max(2, availableParallelism());
// Files that run several servers, a private database server or a whole cluster, and
// measure what happens to every message under faults: they run after the others, one at
// a time, so a loaded machine does not stretch their fault windows past their bounds.
const ALONE = ['test/shards.test.js', 'test/shards-cli.test.js', 'test/cluster-failover.test.js', 'test/faults.test.js', 'test/lifecycle.test.js'];
const alone = files.filter((f) => ALONE.some((a) => f.endsWith(a)));
const together = files.filter((f) => !alone.includes(f));

function run(list, n) {
  return new Promise((resolve) => {
    if (list.length === 0) return resolve(0);
    const child = spawn(process.execPath, ['--test', `--test-concurrency=${n}`, '--test-timeout=120000', ...list], { stdio: 'inherit', env });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const first = await run(together, concurrency);
const second = await run(alone, 1);
rmSync(dir, { recursive: true, force: true });
process.exitCode = first || second;
