/**
 * `parley shards` and SIGHUP against a server process, as an operator runs them:
 * init creates a new shard's database, user add places users, the running server reloads
 * its shard map on SIGHUP (a bad file is refused naming the key, the map in force kept),
 * `shards move` moves a user online, and `shards status` works with the server down too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestShards, TEST_TUNING, type TestShards } from '../src/storage/mysql-testing.js';
import { serverQuery } from '../src/storage/mysql.js';
import type { ShardSpec } from '../src/storage/shard-map.js';

const BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url));
let dir: string;
let config: string;
let mapFile: string;
let shards: TestShards;
let third: ShardSpec;
let server: ChildProcess | null = null;

function parley(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args, '--config', config], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

function writeMap(specs: ShardSpec[], extra = ''): void {
  const lines = specs.map((s) => `  ${s.name}: { port: ${s.port}, database: ${s.database}${s.draining ? ', draining: true' : ''} }`);
  writeFileSync(mapFile, `directory: s1\ndefaults: { host: 127.0.0.1, user: root, password: "" }\nshards:\n${lines.join('\n')}\n${extra}`);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'parley-shards-cli-'));
  shards = await createTestShards(2);
  third = { ...shards.specs[0]!, name: 's3', database: `${shards.specs[0]!.database}_new` };
  config = join(dir, 'parley.yaml');
  mapFile = join(dir, 'shards.yaml');
  writeMap(shards.specs);
  const http = await freePort();
  const cert = process.env.PARLEY_TEST_CERT;
  const key = process.env.PARLEY_TEST_KEY;
  writeFileSync(
    config,
    [
      'domain: example.test',
      'dataDir: ./data',
      `listen: { c2s: { port: 0 }, c2sTls: { port: 0 }, http: { port: ${http} } }`,
      cert && key ? `tls: { cert: ${cert}, key: ${key} }` : '',
      'admin: { token: cli-secret-0123456789abcdef0123456789 }',
      'storage: { driver: mysql, mysql: { shardMap: shards.yaml, healthInterval: 200ms } }',
      '',
    ].join('\n'),
  );
});

after(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  await shards.drop();
  await serverQuery(third, TEST_TUNING, `DROP DATABASE IF EXISTS \`${third.database}\``).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

test('init, SIGHUP reload, a refused bad map, an online move, status with the server up and down', { timeout: 90_000 }, async () => {
  // A shard whose database does not exist yet is created by init.
  writeMap([...shards.specs, third]);
  const init = await parley('shards', 'init');
  assert.equal(init.code, 0, init.out);
  assert.match(init.out, /shard s3: 127\.0\.0\.1:\d+\/\S+_new ready/);
  assert.match(init.out, /shard s1: .* ready \(directory\)/);
  writeMap(shards.specs);

  for (let i = 0; i < 12; i++) assert.equal((await parley('user', 'add', `p${i}`, 'pw')).code, 0);
  const list = await parley('user', 'list');
  assert.equal(list.out.trim().split('\n').length, 12, `the listing fans out over both shards: ${list.out}`);

  server = spawn(process.execPath, [BIN, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  server.stdout!.on('data', (d) => (log += d));
  server.stderr!.on('data', (d) => (log += d));
  await until('server start', async () => log.includes('Parley started') || server!.exitCode !== null);
  assert.equal(server.exitCode, null, log);

  const up = await parley('shards', 'status');
  assert.equal(up.code, 0, up.out);
  assert.match(up.out, /shards \(running server\)/);
  assert.doesNotMatch(up.out, /\bs3\b/);

  // A bad file: the CLI names the key, and SIGHUP leaves the map in force.
  writeMap([...shards.specs, { ...third, port: 0 }]);
  const bad = await parley('shards', 'reload');
  assert.equal(bad.code, 1);
  assert.match(bad.out, /shards\.s3\.port: must be at least 1/);
  server.kill('SIGHUP');
  await until('the refusal is logged', async () => log.includes('shard map reload failed'));

  // A good file on SIGHUP: the third shard joins.
  writeMap([...shards.specs, third]);
  server.kill('SIGHUP');
  await until('s3 in status', async () => /^s3\s/m.test((await parley('shards', 'status')).out)).catch((e) => { throw new Error(`${e.message}\n${log.slice(-3000)}`); });

  const moved = await parley('shards', 'move', 'p3', 's3');
  assert.equal(moved.code, 0, moved.out);
  assert.match(moved.out, /moved p3@example\.test from s[12] to s3|p3@example\.test is already on s3/);

  server.kill('SIGTERM');
  await until('server exit', async () => server!.exitCode !== null);
  const down = await parley('shards', 'status');
  assert.equal(down.code, 0, down.out);
  assert.match(down.out, /probed directly/);
  assert.match(down.out, /s3\s+\S+\s+up\s+n\/a\s+\d+/);
  // The move is durable: the directory sends p3 to s3 after a restart too.
  const list2 = await parley('user', 'list');
  assert.equal(list2.out.trim().split('\n').length, 12, list2.out);
});
