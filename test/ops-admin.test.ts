/**
 * Administration (issue 9, point 5): `parley status`, `sessions list|kick`, `config check`
 * and `reload`, through the admin API of a running server; live reload through the API
 * and SIGHUP (a spawned server process).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadConfigFile } from '../src/config/load.js';
import { startServer, type RunningServer } from '../src/main.js';
import { makeCredentials } from '../src/auth/credentials.js';
import { makeSelfSignedCertificate } from '../src/support/x509.js';
import { connectClient, type TestClient } from './helpers/client.js';
import { DOMAIN } from './helpers/server.js';
import { CONFIG_SCHEMA } from '../src/modules/index.js';

const BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url));
const TOKEN = 'admin-token-for-tests-0123456789';
let dir: string;
let file: string;
let server: RunningServer;
let c2sPort: number;
let httpPort: number;
let cert: string;
let key: string;

function parley(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

function configText(http: number, extra: string): string {
  return (
    `domain: ${DOMAIN}\ndataDir: ./data\ntls: { cert: ${cert}, key: ${key} }\nadmin: { token: ${TOKEN} }\n` +
    `listen: { c2s: { port: 0 }, c2sTls: { enabled: false }, http: { port: ${http} } }\n${extra}\n`
  );
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The stream error a client got (xmpp.js reports it as an error with a condition and text). */
async function streamError(c: TestClient): Promise<{ condition: string; text?: string }> {
  const found = () => c.errors.find((err) => (err as { condition?: string }).condition !== undefined) as { condition: string; text?: string } | undefined;
  await until(`${c.jid}: a stream error (errors: ${c.errors.map(String).join(', ')})`, () => found() !== undefined, 5000);
  return found()!;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'parley-admin-'));
  if (process.env.PARLEY_TEST_CERT && process.env.PARLEY_TEST_KEY) {
    cert = process.env.PARLEY_TEST_CERT;
    key = process.env.PARLEY_TEST_KEY;
  } else {
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    const made = makeSelfSignedCertificate([DOMAIN, 'localhost']);
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    writeFileSync(cert, made.cert);
    writeFileSync(key, made.key);
  }
  httpPort = await freePort();
  file = join(dir, 'parley.yaml');
  writeFileSync(file, configText(httpPort, 'limits: { maxResourcesPerUser: 3 }'));
  const { config } = loadConfigFile(file, CONFIG_SCHEMA);
  server = await startServer(config, { log: pino({ level: 'silent' }), configFile: file });
  c2sPort = server.port('c2s');
  for (const u of ['alice', 'bob', 'carol']) await server.core.users.create(DOMAIN, u, await makeCredentials('secret'));
});

after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('parley status shows the running server: version, uptime, sessions by transport, storage', async () => {
  const a = await connectClient({ port: c2sPort, username: 'alice', resource: 'st' });
  try {
    const r = await parley('status', '--config', file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^node\s+\(single node\)/m);
    assert.match(r.stdout, /^version\s+\d+\.\d+\.\d+/m);
    assert.match(r.stdout, /^uptime\s+\d/m);
    assert.match(r.stdout, /^sessions\s+1 \(tcp 1, bosh 0, websocket 0\); 1 users/m);
    assert.match(r.stdout, /^storage\s+sqlite, healthy/m);
    const j = await parley('status', '--json', '--config', file);
    const st = JSON.parse(j.stdout) as { sessions: { total: number }; domain: string };
    assert.equal(st.sessions.total, 1);
    assert.equal(st.domain, DOMAIN);
  } finally {
    await a.stop();
  }
});

test('the admin API refuses requests without the bearer token', async () => {
  const res = await fetch(`http://127.0.0.1:${httpPort}/admin/v1/status`);
  assert.equal(res.status, 401);
  const kick = await fetch(`http://127.0.0.1:${httpPort}/admin/v1/sessions/kick`, { method: 'POST', body: '{"jid":"alice@example.test"}', headers: { Authorization: 'Bearer wrong' } });
  assert.equal(kick.status, 401);
});

test('parley sessions list shows sessions, all or one user\'s; the API pages them', async () => {
  const a = await connectClient({ port: c2sPort, username: 'alice', resource: 'l1' });
  const b = await connectClient({ port: c2sPort, username: 'bob', resource: 'l2' });
  try {
    const all = await parley('sessions', 'list', '--config', file);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, new RegExp(`^alice@${DOMAIN}/l1\ttcp\tavailable\t`, 'm'));
    assert.match(all.stdout, new RegExp(`^bob@${DOMAIN}/l2\ttcp\t`, 'm'));
    assert.match(all.stdout, /^2 of 2 sessions$/m);
    const one = await parley('sessions', 'list', '--user', 'bob', '--config', file);
    assert.doesNotMatch(one.stdout, /alice/);
    assert.match(one.stdout, /^1 of 1 sessions$/m);
    const page = await api('GET', '/admin/v1/sessions?limit=1&offset=1');
    assert.equal(page.status, 200);
    assert.equal(page.json.total, 2);
    assert.equal((page.json.sessions as unknown[]).length, 1);
    assert.equal((await api('GET', '/admin/v1/sessions?limit=x')).status, 400);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('parley sessions kick ends the session with policy-violation "kicked by an administrator"', async () => {
  const c = await connectClient({ port: c2sPort, username: 'carol', resource: 'k' });
  const other = await connectClient({ port: c2sPort, username: 'bob', resource: 'stays' });
  try {
    const r = await parley('sessions', 'kick', `carol@${DOMAIN}`, '--config', file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`kicked 1 session\\(s\\): carol@${DOMAIN}/k`));
    const e = await streamError(c);
    assert.equal(e.condition, 'policy-violation');
    assert.equal(e.text, 'kicked by an administrator');
    assert.equal(server.core.sessions.resources(`carol@${DOMAIN}`).length, 0);
    assert.equal(server.core.sessions.resources(`bob@${DOMAIN}`).length, 1, 'other users are not affected');
    const none = await parley('sessions', 'kick', 'carol', '--config', file);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no session of carol@/);
    // With a reason, through the API.
    const c2 = await connectClient({ port: c2sPort, username: 'carol', resource: 'k2' });
    const k = await api('POST', '/admin/v1/sessions/kick', { jid: `carol@${DOMAIN}/k2`, reason: 'spam' });
    assert.equal(k.status, 200);
    assert.equal((await streamError(c2)).text, 'spam');
    await c2.stop();
  } finally {
    await c.stop();
    await other.stop();
  }
});

test('parley config check says OK for a good file and names the key and the problem for a bad one', async () => {
  const good = await parley('config', 'check', file);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /OK/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'domain: example.test\nlimits: { maxResourcesPerUser: 0 }\n');
  const r = await parley('config', 'check', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.yaml: limits\.maxResourcesPerUser: must be at least 1, got 0/);
  writeFileSync(bad, 'log: { modules: { router: loud } }\n');
  assert.match((await parley('config', 'check', bad)).stderr, /log\.modules\.router: must be one of trace, debug/);
  writeFileSync(bad, 'domain: [\n');
  assert.match((await parley('config', 'check', bad)).stderr, /YAML syntax/);
});

test('reload through the API applies a new limit and log level; a bad file changes nothing', async () => {
  const a1 = await connectClient({ port: c2sPort, username: 'alice', resource: 'r1' });
  const a2 = await connectClient({ port: c2sPort, username: 'alice', resource: 'r2' });
  try {
    writeFileSync(file, configText(httpPort, 'limits: { maxResourcesPerUser: 2 }\nlog: { modules: { bosh: debug } }\noffline: { maxPerUser: 5 }\nlisten2: 1'));
    const refused = await api('POST', '/admin/v1/reload');
    assert.equal(refused.status, 400);
    assert.match(String(refused.json.error), /listen2: unknown key/);
    assert.equal(server.core.config.limits.maxResourcesPerUser, 3, 'nothing changed');

    writeFileSync(file, configText(httpPort + 1, 'limits: { maxResourcesPerUser: 2 }\nlog: { modules: { bosh: debug } }\noffline: { maxPerUser: 5 }'));
    const limits = server.core.config.limits;
    const ok = await api('POST', '/admin/v1/reload');
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.applied, ['limits.maxResourcesPerUser', 'offline.maxPerUser', 'log.modules']);
    assert.deepEqual(ok.json.restartNeeded, ['listen.http.port']);
    assert.equal(server.core.config.limits, limits, 'the live limits object is updated in place');
    assert.equal(limits.maxResourcesPerUser, 2);
    assert.equal(server.core.config.offline.maxPerUser, 5);
    assert.equal(server.core.logs.for('bosh').level, 'debug');
    await assert.rejects(connectClient({ port: c2sPort, username: 'alice', resource: 'r3' }), 'a third resource is refused');

    writeFileSync(file, configText(httpPort, 'limits: { maxResourcesPerUser: 3 }'));
    const back = await parley('reload', '--config', file);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /applied: +limits\.maxResourcesPerUser, offline\.maxPerUser, log\.modules/);
    assert.equal(limits.maxResourcesPerUser, 3);
    const a3 = await connectClient({ port: c2sPort, username: 'alice', resource: 'r3' });
    await a3.stop();
  } finally {
    await a1.stop();
    await a2.stop();
  }
});

test('SIGHUP makes a spawned server read its config file again', async () => {
  const d = mkdtempSync(join(tmpdir(), 'parley-sighup-'));
  const http = await freePort();
  const c2s = await freePort();
  const f = join(d, 'parley.yaml');
  const text = (extra: string) =>
    `domain: ${DOMAIN}\ndataDir: ./data\ntls: { cert: ${cert}, key: ${key} }\nadmin: { token: ${TOKEN} }\n` +
    `listen: { c2s: { port: ${c2s} }, c2sTls: { enabled: false }, http: { port: ${http} } }\n${extra}\n`;
  writeFileSync(f, text('limits: { maxResourcesPerUser: 2 }\nlog: { level: info }'));
  assert.equal((await parley('user', 'add', 'dave', 'secret', '--config', f)).code, 0);
  const child: ChildProcess = spawn(process.execPath, [BIN, 'start', '--config', f], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const until = async (pred: () => boolean, what: string) => {
    for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(pred(), `timed out waiting for ${what}; stdout: ${out}\nstderr: ${err}`);
  };
  try {
    await until(() => out.includes('Parley started'), 'the server to start');
    const d1 = await connectClient({ port: c2s, username: 'dave', resource: 'one' });
    assert.doesNotMatch(out, /"msg":"authenticated"/, 'c2s is at info');

    writeFileSync(f, text('limits: { maxResourcesPerUser: 1 }\nlog: { level: info, modules: { c2s: debug } }'));
    child.kill('SIGHUP');
    await until(() => /SIGHUP: reloaded/.test(err), 'the reload');
    assert.match(err, /applied: +limits\.maxResourcesPerUser, log\.modules/);
    await assert.rejects(connectClient({ port: c2s, username: 'dave', resource: 'two' }), 'a second resource is refused');
    await until(() => /"module":"c2s".*"msg":"authenticated"/.test(out), 'a c2s debug record');

    writeFileSync(f, text('limits: { maxResourcesPerUser: nope }'));
    child.kill('SIGHUP');
    await until(() => /SIGHUP: reload refused, nothing changed: config: limits\.maxResourcesPerUser: must be an integer/.test(err), 'the refusal');
    await d1.stop();
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(d, { recursive: true, force: true });
  }
});
