/**
 * MySQL shards under fire, through real XMPP clients: users spread over two shards (one
 * database on the system MariaDB, one on a private mariadbd of this test reached through
 * a TCP forwarder), chatting with the archive on while
 *   1. the second shard's whole server is killed and brought back,
 *   2. the second shard's address is replaced by another one (failover) and the old one cut,
 *   3. a user is moved to the other shard mid-conversation (`parley shards move`),
 *   4. the second shard fails over to its replica (a third mariadbd replicating from the
 *      second): the address is replaced, the replica promoted and the old primary killed.
 * Every message the clients send is accounted for: delivered + stored + bounced = sent,
 * with no message counted twice, and users whose shard is healthy see no error at all.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { authFailure, connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { mamQuery } from './helpers/mam.js';
import { startPrivateMariadb, type PrivateMariadb } from './helpers/mariadb-server.js';
import { needMariadbd } from './helpers/tools.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { createTestShards, type TestShards } from '../src/storage/mysql-testing.js';
import { countUserRows } from '../src/storage/mover.js';
import type { ShardMap } from '../src/storage/shard-map.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = 'shard-test-token-0123456789abcdef';
const skip = needMariadbd();

let ts: TestServer;
let m2: PrivateMariadb; // s2's primary
let m3: PrivateMariadb; // s2's replica
let local: TestShards; // s1 on the system MariaDB
let remote: TestShards; // s2 on the private server
let proxy: TcpProxy; // the address s2 is known by
let mapFile: string;
let configFile: string;
const clients: TestClient[] = [];

function writeMap(s2Port: number): void {
  const map: ShardMap = { directory: 's1', shards: [local.specs[0]!, { ...remote.specs[0]!, name: 's2', port: s2Port }] };
  const yaml = [
    `directory: ${map.directory}`,
    'shards:',
    ...map.shards.map((s) => `  ${s.name}: { host: ${s.host}, port: ${s.port}, user: ${s.user}, password: "${s.password}", database: ${s.database} }`),
  ].join('\n');
  writeFileSync(mapFile, yaml + '\n');
}

before(async () => {
  if (skip) return;
  m2 = await startPrivateMariadb({ extraArgs: ['--log-bin=mysql-bin', '--server-id=1', '--binlog-format=ROW'] });
  m3 = await startPrivateMariadb({ extraArgs: ['--server-id=2'] });
  // m3 replicates everything m2 will hold, from the start (GTID positions, retry each second).
  await onServer(
    m3.port,
    `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${m2.port}, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=current_pos, MASTER_CONNECT_RETRY=1`,
    'START SLAVE',
  );
  local = await createTestShards(1);
  remote = await createTestShards(1, { port: m2.port });
  proxy = await startTcpProxy(m2.port);
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'parley-shards-'));
  mapFile = join(dir, 'shards.yaml');
  writeMap(proxy.port);
  ts = await startTestServer({
    dataDir: dir,
    storage: {
      driver: 'mysql',
      mysql: { shardMap: mapFile, poolSize: 4, connectTimeout: '1s', queryTimeout: '2s', retries: 1, retryBackoff: '20ms', breakerThreshold: 3, breakerCooldown: '300ms', healthInterval: '150ms' },
    },
    admin: { token: TOKEN },
  });
  // The CLI reads the same settings from a file (it reaches the server through the admin API).
  configFile = join(dir, 'parley.yaml');
  writeFileSync(
    configFile,
    `domain: ${DOMAIN}\ndataDir: ${dir}\nlisten: { http: { port: ${ts.httpPort} } }\nadmin: { token: ${TOKEN} }\nstorage: { driver: mysql, mysql: { shardMap: ${mapFile} } }\n`,
  );
  for (let i = 0; i < 40; i++) await ts.addUser(`u${i}`);
});

after(async () => {
  if (skip) return;
  for (const c of clients) await c.stop();
  await ts?.stop();
  await proxy?.close();
  await local?.drop();
  await remote?.drop();
  await m2?.destroy();
  await m3?.destroy();
});

async function onServer(port: number, ...statements: string[]): Promise<unknown[]> {
  const mysql = (await import('mysql2/promise')).default;
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', password: '' });
  try {
    const out: unknown[] = [];
    for (const q of statements) out.push((await c.query(q))[0]);
    return out;
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------- helpers

const placeOf = (u: string) => ts.server.storage.placeOf(DOMAIN, u);
/** Users on a shard, in a stable order. */
const usersOn = (shard: string) => Array.from({ length: 40 }, (_, i) => `u${i}`).filter((u) => placeOf(u) === shard);
const jid = (u: string) => `${u}@${DOMAIN}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function online(u: string): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username: u, resource: 'r' });
  clients.push(c);
  // The client is online once the server has taken its initial presence (which reads the
  // user's shard): a shard frozen before that would leave the user unavailable, and
  // messages to it stored offline instead of delivered (found as "held for ever").
  const deadline = Date.now() + 10_000;
  while (!ts.server.core.sessions.available(jid(u)).some((s) => s.jid.resource === 'r')) {
    if (Date.now() > deadline) throw new Error(`${u} did not become available`);
    await sleep(10);
  }
  return c;
}

/** Writes a dying shard may leave ambiguous: the ones in flight, at most a pool's worth (poolSize 4 below). */
const MAX_AMBIGUOUS = 4;

/** Every message of a run, by the fate the clients saw. */
class Ledger {
  readonly sent = new Set<string>();
  readonly delivered = new Set<string>();
  readonly stored = new Set<string>();
  readonly bounced = new Map<string, string>();
  duplicates = 0;
  /** Bounces per sender. */
  readonly bouncedBy = new Map<string, number>();

  /** Counts what `c` receives: messages as delivered (or stored, for a late reader), errors as bounces. */
  watch(c: TestClient, user: string, as: 'delivered' | 'stored' = 'delivered'): void {
    const see = (el: Element) => {
      if (el.name !== 'message') return;
      const body = el.getChildText('body') ?? '';
      if (el.attrs.type === 'error') {
        const id = el.attrs.id ?? '';
        if (!this.sent.has(id)) return;
        if (this.bounced.has(id)) this.duplicates++;
        const err = el.getChild('error');
        this.bounced.set(id, `${err?.attrs.type}/${err?.children.map((x) => (x as Element).name).find((n) => n && n !== 'text')}`);
        this.bouncedBy.set(user, (this.bouncedBy.get(user) ?? 0) + 1);
        return;
      }
      if (!this.sent.has(body)) return;
      const set = as === 'delivered' ? this.delivered : this.stored;
      if (this.delivered.has(body) || this.stored.has(body)) this.duplicates++;
      set.add(body);
    };
    for (const el of c.received) see(el);
    c.xmpp.on('stanza', see);
  }

  get accounted(): number {
    return this.delivered.size + this.stored.size + this.bounced.size - this.ambiguous.length;
  }

  /**
   * Messages both stored and bounced: the write reached a shard that died before it
   * answered, so the sender was told it failed although the row is there. At most the
   * writes in flight when the shard died (the pool size) can end so.
   */
  get ambiguous(): string[] {
    return [...this.stored].filter((id) => this.bounced.has(id));
  }

  /** Sends a message every `everyMs` until `untilMs` (an absolute time). */
  async talk(from: TestClient, fromUser: string, to: string, tag: string, everyMs: number, untilMs: number): Promise<void> {
    for (let n = 0; Date.now() < untilMs; n++) {
      const id = `${tag}:${fromUser}>${to}:${n}`;
      this.sent.add(id);
      await from.send(xml('message', { to: jid(to), type: 'chat', id }, xml('body', null, id)));
      await sleep(everyMs);
    }
  }

  async settle(timeoutMs = 45_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.accounted < this.sent.size && Date.now() < deadline) await sleep(50);
  }

  report(): string {
    return `sent ${this.sent.size}, delivered ${this.delivered.size}, stored ${this.stored.size}, bounced ${this.bounced.size}, stored and bounced (ambiguous writes) ${this.ambiguous.length}, duplicates ${this.duplicates}`;
  }

  assertBalanced(): void {
    const overlap = [...this.delivered].filter((id) => this.stored.has(id) || this.bounced.has(id));
    assert.deepEqual(overlap, [], 'no message both delivered and stored/bounced');
    assert.equal(this.duplicates, 0, `no duplicates (${this.report()})`);
    const missing = [...this.sent].filter((id) => !this.delivered.has(id) && !this.stored.has(id) && !this.bounced.has(id));
    assert.deepEqual(missing.slice(0, 10), [], `every message accounted for (${this.report()})`);
    assert.equal(this.accounted, this.sent.size, this.report());
    assert.ok(this.ambiguous.length <= MAX_AMBIGUOUS, `at most ${MAX_AMBIGUOUS} ambiguous writes (${this.report()})`);
  }
}

async function breakerClosed(shard: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = ts.server.storage.status().find((x) => x.name === shard)!;
    if (s.breaker === 'closed' && s.healthy) return;
    if (Date.now() > deadline) throw new Error(`shard ${shard} did not recover: ${JSON.stringify(s)}`);
    await sleep(50);
  }
}

async function adminPost(path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${ts.httpUrl}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

function cli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, 'bin/parley.js'), ...args, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => resolve({ code: code ?? 1, out }));
  });
}

// ---------------------------------------------------------------------- tests

test('users are spread over both shards by the ring; status and the admin API show both', { skip }, async () => {
  const s1 = usersOn('s1');
  const s2 = usersOn('s2');
  assert.ok(s1.length >= 8 && s2.length >= 8, `both shards hold users (${s1.length} / ${s2.length})`);
  const rows = await ts.server.storage.forEachShard('count', (db, shard) =>
    db.selectFrom('users').select('username').execute().then((r) => ({ shard, users: r.map((x) => x.username).sort() })),
  );
  for (const r of rows) assert.deepEqual(r.users, usersOn(r.shard).sort(), `shard ${r.shard} holds exactly its users`);
  const unauth = await fetch(`${ts.httpUrl}/admin/v1/shards`);
  assert.equal(unauth.status, 401);
  const st = await cli(['shards', 'status']);
  assert.equal(st.code, 0, st.out);
  assert.match(st.out, /running server/);
  assert.match(st.out, new RegExp(`s2\\s+127\\.0\\.0\\.1:${proxy.port}/\\S+\\s+up\\s+closed\\s+${s2.length}\\b`));
});

test('a shard server killed mid-run and brought back: its users get errors, never silence; others notice nothing', { skip, timeout: 60_000 }, async (t) => {
  const [a1, a2, a3, a4, a5] = usersOn('s1');
  const [b1, b2, c3] = usersOn('s2');
  const ledger = new Ledger();
  const ca1 = await online(a1!), ca2 = await online(a2!), ca3 = await online(a3!), ca4 = await online(a4!), ca5 = await online(a5!);
  const cb1 = await online(b1!), cb2 = await online(b2!);
  for (const [c, u] of [[ca1, a1], [ca2, a2], [ca3, a3], [ca4, a4], [ca5, a5], [cb1, b1], [cb2, b2]] as const) ledger.watch(c, u!);
  const t0 = Date.now();
  const end = t0 + 3500;
  const traffic = Promise.all([
    ledger.talk(ca1, a1!, b1!, 'kill', 25, end), // s1 → s2 (online)
    ledger.talk(cb2, b2!, a2!, 'kill', 25, end), // s2 → s1 (online)
    ledger.talk(ca3, a3!, c3!, 'kill', 25, end), // s1 → s2 (offline: stored)
    ledger.talk(ca4, a4!, a5!, 'kill', 25, end), // s1 → s1: must not notice
  ]);
  await sleep(1000);
  await m2.kill();
  await sleep(400);
  // While it is down: its users cannot log in (told to try later), the others can.
  assert.equal(await authFailure({ port: ts.port, username: usersOn('s2').at(-1)! }), 'temporary-auth-failure');
  await online(usersOn('s1').at(-1)!);
  await sleep(800);
  await m2.restart();
  await traffic;
  await breakerClosed('s2');
  // The offline recipient logs in and reads what was stored for it.
  const cc3 = await online(c3!);
  ledger.watch(cc3, c3!, 'stored');
  await ledger.settle();
  t.diagnostic(ledger.report());
  ledger.assertBalanced();
  assert.ok(ledger.bounced.size > 0, `the outage bounced messages (${ledger.report()})`);
  assert.ok(ledger.stored.size > 0, `messages were stored before and after the outage (${ledger.report()})`);
  for (const cond of new Set(ledger.bounced.values())) assert.match(cond, /^wait\/(internal-server-error|resource-constraint)$/, 'bounces say "try again later"');
  assert.equal(ledger.bouncedBy.get(a4!) ?? 0, 0, 'the s1 → s1 pair saw no error');
  const healthy = [...ledger.sent].filter((id) => id.startsWith(`kill:${a4}>`));
  assert.ok(healthy.every((id) => ledger.delivered.has(id)), 'every s1 → s1 message was delivered');
  const st = ts.server.storage.status().find((s) => s.name === 's2')!;
  assert.ok(st.errors > 0, 'failures were counted');
  // After recovery the shard works again for its users.
  await ca1.send(xml('message', { to: jid(b1!), type: 'chat', id: 'after-kill' }, xml('body', null, 'after-kill')));
  await cb1.waitFor((el) => el.getChildText('body') === 'after-kill', 5000, 'a message after recovery');
});

test('a shard address replaced mid-run (failover), the old address cut: nothing lost, nothing bounced', { skip, timeout: 60_000 }, async (t) => {
  const [a1, a2] = usersOn('s1').slice(5);
  const [b1, b2, c3] = usersOn('s2').slice(3);
  const ledger = new Ledger();
  const ca1 = await online(a1!), ca2 = await online(a2!);
  const cb1 = await online(b1!), cb2 = await online(b2!);
  for (const [c, u] of [[ca1, a1], [ca2, a2], [cb1, b1], [cb2, b2]] as const) ledger.watch(c, u!);
  const end = Date.now() + 3000;
  const traffic = Promise.all([
    ledger.talk(ca1, a1!, b1!, 'addr', 20, end),
    ledger.talk(cb2, b2!, a2!, 'addr', 20, end),
    ledger.talk(ca2, a2!, c3!, 'addr', 20, end),
  ]);
  await sleep(1000);
  const next = await startTcpProxy(m2.port);
  const old = proxy;
  writeMap(next.port);
  const r = await adminPost('/admin/v1/shards/reload');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.replaced, ['s2']);
  proxy = next;
  // Work in flight on the old pool finishes there; then the old address goes away.
  await sleep(300);
  await old.close();
  await traffic;
  const cc3 = await online(c3!);
  ledger.watch(cc3, c3!, 'stored');
  await ledger.settle();
  t.diagnostic(ledger.report());
  ledger.assertBalanced();
  assert.equal(ledger.bounced.size, 0, `a planned address change bounces nothing (${ledger.report()})`);
  const st = ts.server.storage.status().find((s) => s.name === 's2')!;
  assert.match(st.address, new RegExp(`:${next.port}/`));
  assert.ok(next.accepted > 0, 'the new address is in use');
});

test('a user moved to the other shard mid-conversation (parley shards move): no message lost, the archive moves whole', { skip, timeout: 60_000 }, async (t) => {
  const [mover, peer] = usersOn('s1').slice(7);
  const [remotePeer] = usersOn('s2').slice(6);
  const ledger = new Ledger();
  const cm = await online(mover!), cp = await online(peer!), cr = await online(remotePeer!);
  for (const [c, u] of [[cm, mover], [cp, peer], [cr, remotePeer]] as const) ledger.watch(c, u!);
  const end = Date.now() + 3000;
  const traffic = Promise.all([
    ledger.talk(cm, mover!, peer!, 'move', 20, end),
    ledger.talk(cp, peer!, mover!, 'move', 20, end),
    ledger.talk(cr, remotePeer!, mover!, 'move', 20, end),
  ]);
  await sleep(1200);
  const moved = await cli(['shards', 'move', mover!, 's2']);
  assert.equal(moved.code, 0, moved.out);
  t.diagnostic(moved.out.trim());
  assert.match(moved.out, new RegExp(`moved ${mover}@${DOMAIN} from s1 to s2 \\(\\d+ rows, writes held \\d+ ms\\)`));
  await traffic;
  await ledger.settle();
  t.diagnostic(ledger.report());
  ledger.assertBalanced();
  assert.equal(ledger.bounced.size, 0, `a move bounces nothing (${ledger.report()})`);
  assert.equal(placeOf(mover!), 's2');
  // Every row is on s2 now, none left on s1; the archive holds the whole conversation.
  const counts = await ts.server.storage.forEachShard('rows', (db, shard) => countUserRows(db, DOMAIN, mover!, ts.server.storage.userTables).then((c) => ({ shard, c })));
  const on = (s: string) => counts.find((x) => x.shard === s)!.c;
  assert.ok(Object.values(on('s1')).every((n) => n === 0), `nothing left on s1: ${JSON.stringify(on('s1'))}`);
  const mine = [...ledger.sent].filter((id) => id.includes(`:${mover}>`) || id.includes(`>${mover}:`));
  assert.equal(on('s2').archive, mine.length, 'one archive row per message sent or received');
  const page = await mamQuery(cm, { max: 1 });
  assert.equal(page.count, mine.length, 'the archive query counts every message, read from the new shard');
});

test('a shard fails over to its replica mid-run: writes held while it catches up, then promoted; nothing lost, nothing bounced', { skip, timeout: 60_000 }, async (t) => {
  const [a1, a2] = usersOn('s1').slice(9);
  const [b1, b2, c3] = usersOn('s2').slice(7);
  const ledger = new Ledger();
  const ca1 = await online(a1!), ca2 = await online(a2!);
  const cb1 = await online(b1!), cb2 = await online(b2!);
  for (const [c, u] of [[ca1, a1], [ca2, a2], [cb1, b1], [cb2, b2]] as const) ledger.watch(c, u!);
  const end = Date.now() + 3000;
  const traffic = Promise.all([
    ledger.talk(ca1, a1!, b1!, 'failover', 20, end),
    ledger.talk(cb2, b2!, a2!, 'failover', 20, end),
    ledger.talk(ca2, a2!, c3!, 'failover', 20, end),
  ]);
  await sleep(1000);
  // The operator points s2 at the replica; Parley holds s2's writes until it has caught up.
  writeMap(m3.port);
  const r = await adminPost('/admin/v1/shards/reload');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json.replaced, ['s2']);
  // Then promotes it and retires the old primary.
  await onServer(m3.port, 'STOP SLAVE', 'RESET SLAVE ALL');
  await proxy.close();
  await m2.kill();
  await traffic;
  const cc3 = await online(c3!);
  ledger.watch(cc3, c3!, 'stored');
  await ledger.settle();
  t.diagnostic(ledger.report());
  ledger.assertBalanced();
  assert.equal(ledger.bounced.size, 0, `a planned failover bounces nothing (${ledger.report()})`);
  assert.match(ts.server.storage.status().find((s) => s.name === 's2')!.address, new RegExp(`:${m3.port}/`));
  // The replica holds every archived message of b1's conversation, from before and after the switch.
  const mine = [...ledger.sent].filter((id) => id.includes(`>${b1}:`));
  const page = await mamQuery(cb1, { max: 1, with: jid(a1!) });
  assert.equal(page.count, mine.length, 'the archive on the promoted replica is complete');
});

test('a shard server frozen (SIGSTOP): messages to its users are delivered (unarchived) or bounced, none held for ever; users of the other shard are not held up', { skip, timeout: 60_000 }, async (t) => {
  const [a1, a2, a3] = usersOn('s1').slice(11);
  const [b1] = usersOn('s2').slice(10);
  const ledger = new Ledger();
  const ca1 = await online(a1!), ca2 = await online(a2!), ca3 = await online(a3!);
  const cb1 = await online(b1!);
  for (const [c, u] of [[ca1, a1], [ca2, a2], [ca3, a3], [cb1, b1]] as const) ledger.watch(c, u!);
  m3.freeze();
  let thawed = false;
  try {
    const end = Date.now() + 3000;
    await Promise.all([
      ledger.talk(ca1, a1!, b1!, 'frozen', 50, end), // to the frozen shard
      ledger.talk(ca2, a2!, a3!, 'frozen', 50, end), // between users of the healthy shard
    ]);
    // Everything between s1 users arrived while s2 was still frozen.
    const healthy = [...ledger.sent].filter((id) => id.startsWith(`frozen:${a2}>`));
    const deadline = Date.now() + 5000;
    while (!healthy.every((id) => ledger.delivered.has(id)) && Date.now() < deadline) await sleep(20);
    assert.ok(healthy.every((id) => ledger.delivered.has(id)), 's1 → s1 messages are not held up by the frozen shard');
    assert.equal(ledger.bouncedBy.get(a2!) ?? 0, 0);
  } finally {
    m3.thaw();
    thawed = true;
  }
  assert.ok(thawed);
  await ledger.settle();
  t.diagnostic(ledger.report());
  if (ledger.accounted !== ledger.sent.size) t.diagnostic(`unaccounted; shard status: ${JSON.stringify(ts.server.storage.status())}`);
  ledger.assertBalanced();
  // Whether a message to b1 bounced depends on what its delivery needed from s2 (cached
  // privacy lists need nothing; an archive write that fails does not bounce): both are fine.
  for (const cond of new Set(ledger.bounced.values())) assert.match(cond, /^wait\/(internal-server-error|resource-constraint)$/);
  await breakerClosed('s2');
  await ca1.send(xml('message', { to: jid(b1!), type: 'chat', id: 'after-thaw' }, xml('body', null, 'after-thaw')));
  await cb1.waitFor((el) => el.getChildText('body') === 'after-thaw', 5000, 'a message after the thaw');
});
