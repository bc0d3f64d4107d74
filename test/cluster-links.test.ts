/**
 * Attacks on the links between cluster nodes (issue 18, point 3), from outside, through
 * the real protocol: two nodes on one Redis, n1's link to n2 goes through a man in the
 * middle (n2 advertises the proxy's address), and raw sockets to n2's link port.
 *
 * - a frame injected into a live link, a byte flipped in it, a forged ack sent back:
 *   the link ends, nothing of it is applied, it comes back and nothing is lost or twice;
 * - a hello seen once and replayed (with a frame after it) is refused;
 * - a peer with the secret that is not a member (or not in the incarnation it says) is
 *   refused; a peer may send only a few KB before authenticating;
 * - a cluster without cluster.secret (or with a short one) does not start.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startTestServer, CLUSTER_SECRET, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { Links } from '../src/cluster/links.js';
import { parseNodeRecord } from '../src/cluster/cluster-node.js';
import { ConfigError } from '../src/support/errors.js';

const REDIS = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const prefix = `parley-test-links-${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync(join(tmpdir(), 'parley-cluster-links-'));
const jid = (u: string) => `${u}@${DOMAIN}`;
const BOB = `${jid('bob')}/b`;

let n1: TestServer;
let n2: TestServer;
/** The port n2 takes links on (n1 reaches it through `mitm`). */
let n2LinkPort = 0;
let mitm: TcpProxy;
let alice: TestClient;
let bob: TestClient;
const rogues: Links[] = [];

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

function framed(body: string | Buffer): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length, 0);
  return Buffer.concat([head, b]);
}

/** A frame as an attacker writes it: deliver a message "from" anyone to bob, with a fresh number. */
let forgeries = 0;
function forgedFrame(): Buffer {
  const x = `<message xmlns='jabber:client' from='${jid('mallory')}/x' to='${BOB}' type='chat'><body>forged</body></message>`;
  return framed(JSON.stringify({ t: 'd', s: 1_000_000 + ++forgeries, to: BOB, k: 'message', x }));
}

// ------------------------------------------------------------------ the man in the middle

/** What the proxy does to the next record after the two handshake records, in each direction. */
let upAttack: null | 'inject' | 'flip' = null;
let downAttack: null | 'ack' = null;
let attacksDone = 0;
/** The first two records (the hello, then the next one) of every connection n1 opened to n2. */
const firstRecords = new Map<number, Buffer[]>();

/** Splits one direction of one connection into length-prefixed records, so one can be altered whole. */
function recordStream(onRecord: (rec: Buffer, index: number, out: Buffer[]) => void): (chunk: Buffer) => Buffer {
  let buf = Buffer.alloc(0);
  let index = 0;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const out: Buffer[] = [];
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      const rec = Buffer.from(buf.subarray(0, 4 + len));
      buf = buf.subarray(4 + len);
      onRecord(rec, index++, out);
    }
    return Buffer.concat(out);
  };
}

const ups = new Map<number, (c: Buffer) => Buffer>();
const downs = new Map<number, (c: Buffer) => Buffer>();

function upRecord(conn: number) {
  return (rec: Buffer, i: number, out: Buffer[]) => {
    if (i < 2) {
      const list = firstRecords.get(conn) ?? [];
      list.push(rec);
      firstRecords.set(conn, list);
    }
    if (i >= 2 && upAttack === 'inject') {
      upAttack = null;
      attacksDone++;
      out.push(forgedFrame());
    } else if (i >= 2 && upAttack === 'flip') {
      upAttack = null;
      attacksDone++;
      // In a readable stream an attacker flips a byte of the text; in a sealed one, any byte.
      const at = rec.indexOf('flip-');
      rec[at >= 0 ? at + 1 : 4 + ((rec.length - 4) >> 1)]! ^= 0x01;
    }
    out.push(rec);
  };
}

function downRecord() {
  return (rec: Buffer, i: number, out: Buffer[]) => {
    if (i >= 2 && downAttack === 'ack') {
      downAttack = null;
      attacksDone++;
      // "Everything up to a billion arrived": the sender would drop what it still holds.
      out.push(framed(JSON.stringify({ t: 'a', s: 1_000_000_000 })));
    }
    out.push(rec);
  };
}

// ------------------------------------------------------------------ the conversation

const bodies: string[] = [];
let sent = 0;

/** alice (n1) sends `count` more messages to bob (n2); resolves once bob has every message sent so far. */
async function talk(count: number): Promise<void> {
  for (let k = 0; k < count; k++) {
    const i = sent++;
    await alice.send(xml('message', { to: BOB, type: 'chat' }, xml('body', null, `flip-${i}`)));
  }
  await until(`bob has ${sent} messages`, () => bodies.length >= sent);
}

function assertExactlyOnceInOrder(): void {
  assert.deepEqual(bodies, Array.from({ length: sent }, (_, i) => `flip-${i}`));
}

before(async () => {
  n2LinkPort = await freePort();
  mitm = await startTcpProxy(n2LinkPort, '127.0.0.1', {
    up: (c, conn) => {
      let f = ups.get(conn);
      if (!f) ups.set(conn, (f = recordStream(upRecord(conn))));
      return f(c);
    },
    down: (c, conn) => {
      let f = downs.get(conn);
      if (!f) downs.set(conn, (f = recordStream(downRecord())));
      return f(c);
    },
  });
  const cluster = { driver: 'redis', url: REDIS, prefix, secret: CLUSTER_SECRET, heartbeat: '100ms', lease: '600ms', drainTimeout: '0s' };
  n1 = await startTestServer({ dataDir, cluster: { ...cluster, nodeId: 'n1' } });
  n2 = await startTestServer({ dataDir, cluster: { ...cluster, nodeId: 'n2', listen: { host: '127.0.0.1', port: n2LinkPort }, advertise: `127.0.0.1:${mitm.port}` } });
  for (const u of ['alice', 'bob']) await n1.addUser(u);
  await until('both nodes see two members', () => [n1, n2].every((n) => n.server.cluster!.members().length === 2));
  alice = await connectClient({ port: n1.port, username: 'alice', resource: 'a' });
  bob = await connectClient({ port: n2.port, username: 'bob', resource: 'b' });
  bob.xmpp.on('stanza', (el: { name: string; getChildText(n: string): string | null }) => {
    const body = el.name === 'message' ? el.getChildText('body') : null;
    if (body !== null) bodies.push(body);
  });
  await until('bob is known on n1', () => n1.server.core.sessions.resources(jid('bob')).length === 1);
  await talk(5);
  assert.ok(mitm.accepted >= 1, 'n1 reaches n2 through the proxy');
});

after(async () => {
  for (const r of rogues) await r.close();
  await alice?.stop();
  await bob?.stop();
  await n1?.stop({ keepData: true });
  await n2?.stop({ keepData: true });
  await mitm?.close();
  rmSync(dataDir, { recursive: true, force: true });
  const r = new Redis(REDIS);
  const keys = await r.keys(`${prefix}:*`);
  if (keys.length > 0) await r.del(...keys);
  r.disconnect();
});

test('a frame injected into a live link ends the link unapplied; it comes back and nothing is lost or duplicated', async () => {
  const conns = mitm.accepted;
  const refused = n2.server.cluster!.stats().linksRefused;
  upAttack = 'inject';
  await talk(10);
  await until('the forged frame went in', () => attacksDone === 1);
  await talk(5);
  assertExactlyOnceInOrder();
  assert.equal(bodies.includes('forged'), false, 'the forged message was not delivered');
  assert.ok(mitm.accepted > conns, 'n1 opened the link again');
  assert.ok(n2.server.cluster!.stats().linksRefused > refused, 'n2 ended the link');
});

test('a byte flipped in a live link ends the link unapplied; it comes back and nothing is lost, altered or duplicated', async () => {
  const conns = mitm.accepted;
  upAttack = 'flip';
  const before = attacksDone;
  await talk(10);
  await until('the byte was flipped', () => attacksDone === before + 1);
  await talk(5);
  assertExactlyOnceInOrder();
  assert.ok(mitm.accepted > conns, 'n1 opened the link again');
});

test('a forged acknowledgement sent back to the sender ends the link; what was not acknowledged still arrives', async () => {
  const conns = mitm.accepted;
  downAttack = 'ack';
  const before = attacksDone;
  await talk(10);
  await until('the forged ack went in', () => attacksDone === before + 1);
  await talk(5);
  assertExactlyOnceInOrder();
  assert.ok(mitm.accepted > conns, 'n1 refused the forged ack and opened the link again');
});

/** A raw connection to n2's link port; resolves when n2 closes it (or rejects after `ms`). */
function closedBy(sock: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`n2 kept the connection open for ${ms} ms`)), ms);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * A bare socket to n2's link port. Not the shared RawClient on purpose: the link protocol
 * is binary frames (recorded and forged ones are written as bytes), and the test watches
 * the socket's own close.
 */
function linkSocket(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(n2LinkPort, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
    s.once('error', reject);
  });
}

test('a hello seen once and replayed, with a frame after it, is refused and nothing is applied', async () => {
  const seen = firstRecords.get(1);
  assert.ok(seen && seen.length === 2, 'the first link\'s opening records were seen');
  const refused = n2.server.cluster!.stats().linksRefused;
  const sock = await linkSocket();
  const closed = closedBy(sock, 3000);
  sock.write(Buffer.concat([...seen, forgedFrame()]));
  await closed;
  await bob.expectNone((el) => el.name === 'message' && el.getChildText('body') === 'forged', 300, 'a forged message');
  assert.ok(n2.server.cluster!.stats().linksRefused > refused);
  await talk(3);
  assertExactlyOnceInOrder();
});

/** A node of its own, with the cluster's secret, that dials n2 directly. */
function rogue(nodeId: string): Links {
  const r = new Links({
    nodeId,
    host: '127.0.0.1',
    port: 0,
    secret: CLUSTER_SECRET,
    queueLimit: 100,
    log: pino({ level: 'silent' }),
    addressOf: async () => {
      const rd = new Redis(REDIS);
      try {
        const rec = parseNodeRecord(await rd.hget(`${prefix}:nodes`, 'n2'));
        return rec && { addr: `127.0.0.1:${n2LinkPort}`, boot: rec.boot };
      } finally {
        rd.disconnect();
      }
    },
    verifyPeer: async () => true,
    onFrame: () => undefined,
  });
  rogues.push(r);
  return r;
}

test('a peer that knows the secret but is not a member is refused', async () => {
  const refused = n2.server.cluster!.stats().linksRefused;
  const r = rogue('intruder');
  const x = `<message xmlns='jabber:client' from='${jid('mallory')}/x' to='${BOB}' type='chat'><body>forged</body></message>`;
  assert.equal(r.send('n2', { t: 'd', to: BOB, k: 'message', x }), true);
  await until('n2 refused the intruder', () => n2.server.cluster!.stats().linksRefused > refused);
  await bob.expectNone((el) => el.name === 'message' && el.getChildText('body') === 'forged', 300, 'a forged message');
  assert.equal(r.pending('n2'), 1, 'nothing was acknowledged');
});

test('a peer that takes a member\'s name but not its incarnation (boot id) is refused', async () => {
  const refused = n2.server.cluster!.stats().linksRefused;
  const r = rogue('n1');
  const x = `<message xmlns='jabber:client' from='${jid('mallory')}/x' to='${BOB}' type='chat'><body>forged</body></message>`;
  r.send('n2', { t: 'd', to: BOB, k: 'message', x });
  await until('n2 refused the impostor', () => n2.server.cluster!.stats().linksRefused > refused);
  await bob.expectNone((el) => el.name === 'message' && el.getChildText('body') === 'forged', 300, 'a forged message');
  assert.equal(r.pending('n2'), 1);
  await talk(2);
  assertExactlyOnceInOrder();
});

test('before authenticating a peer may send only a few KB: a large first frame is cut off at its header', async () => {
  const sock = await linkSocket();
  const closed = closedBy(sock, 2000);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(1024 * 1024, 0);
  sock.write(Buffer.concat([head, Buffer.alloc(1000, 0x20)]));
  await closed;
});

test('a cluster without cluster.secret, or with a short one, does not start, and says which key', async () => {
  const base = { driver: 'redis', url: REDIS, prefix: `${prefix}-nosecret`, heartbeat: '100ms', lease: '600ms' };
  for (const cluster of [base, { ...base, secret: 'short-secret' }]) {
    await assert.rejects(startTestServer({ cluster }), (e: unknown) => e instanceof ConfigError && e.path === 'cluster.secret');
  }
});
