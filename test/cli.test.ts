/** The `parley` command, run as a newcomer would run it. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServer } from './helpers/server.js';
import { authFailure, connectClient } from './helpers/client.js';

const BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url));
let dir: string;
let config: string;

function parley(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  config = join(dir, 'parley.yaml');
  writeFileSync(config, 'domain: example.test\ndataDir: ./data\nlisten: { c2s: { port: 0 }, c2sTls: { port: 0 } }\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('user add, list, passwd and del work on the configured store', async () => {
  assert.equal((await parley('user', 'add', 'alice@example.test', 'pw1', '--config', config)).code, 0);
  assert.equal((await parley('user', 'add', 'bob', 'pw2', '--config', config)).code, 0);
  const dup = await parley('user', 'add', 'alice', 'pw', '--config', config);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /already exists/);
  const list = await parley('user', 'list', '--config', config);
  assert.deepEqual(list.stdout.trim().split('\n'), ['alice@example.test', 'bob@example.test']);
  assert.equal((await parley('user', 'passwd', 'alice', 'newpw', '--config', config)).code, 0);
  assert.equal((await parley('user', 'del', 'bob', '--config', config)).code, 0);
  assert.equal((await parley('user', 'del', 'bob', '--config', config)).code, 1);
  assert.deepEqual((await parley('user', 'list', '--config', config)).stdout.trim().split('\n'), ['alice@example.test']);

  // The server started on the same data directory accepts the new password only.
  const ts = await startTestServer({ dataDir: join(dir, 'data') });
  try {
    const c = await connectClient({ port: ts.port, username: 'alice', password: 'newpw' });
    await c.stop();
    assert.equal(await authFailure({ port: ts.port, username: 'alice', password: 'pw1' }), 'not-authorized');
  } finally {
    await ts.stop({ keepData: true });
  }
});

test('passwords are stored as salted SCRAM keys, never in plain text', async () => {
  await parley('user', 'add', 'carol', 'plain-text-password', '--config', config);
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(dir, 'data', 'parley.db'), { readonly: true });
  try {
    const rows = db.prepare('select * from users').all() as Array<Record<string, unknown>>;
    const dump = JSON.stringify(rows);
    assert.doesNotMatch(dump, /plain-text-password/);
    const carol = rows.find((r) => r.username === 'carol')!;
    assert.match(String(carol.scram_sha256), /^4096\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const alice = rows.find((r) => r.username === 'alice')!;
    assert.notEqual(String(carol.scram_sha1).split('$')[1], String(alice.scram_sha1).split('$')[1], 'salts differ');
  } finally {
    db.close();
  }
});

test('user bulk creates numbered accounts', async () => {
  const r = await parley('user', 'bulk', '--prefix', 'load', '--count', '300', '--password', 'pw', '--config', config);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /created 300 of 300/);
  const list = (await parley('user', 'list', '--config', config)).stdout.trim().split('\n');
  assert.ok(list.includes('load1@example.test') && list.includes('load300@example.test'));
});

test('a JID of another domain or with a resource is refused', async () => {
  assert.match((await parley('user', 'add', 'x@other.test', 'pw', '--config', config)).stderr, /serves example\.test/);
  assert.match((await parley('user', 'add', 'x@example.test/r', 'pw', '--config', config)).stderr, /without a resource/);
});

test('config check names the bad key and exits non-zero', async () => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'domain: example.test\nlisten:\n  c2s: { port: 99999 }\n');
  const r = await parley('config', 'check', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /listen\.c2s\.port: must be at most 65535/);
  const good = await parley('config', 'check', config);
  assert.equal(good.code, 0);
});

test('start with a bad config file stops with the key and reason', async () => {
  const bad = join(dir, 'bad2.yaml');
  writeFileSync(bad, 'storage: { driver: oracle }\n');
  const r = await parley('start', '--config', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /storage\.driver: must be one of sqlite/);
});

test('a cluster node without cluster.secret does not start, and config check says so', async () => {
  const file = join(dir, 'cluster-nosecret.yaml');
  writeFileSync(file, 'domain: example.test\ndataDir: ./data-nosecret\nlisten: { c2s: { port: 0 }, c2sTls: { port: 0 }, http: { port: 0 } }\ncluster: { driver: redis }\n');
  for (const args of [['start', '--config', file], ['config', 'check', file]]) {
    const r = await parley(...args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /cluster\.secret: is required when cluster\.driver is redis/);
  }
});
