/**
 * Invisibility across cluster nodes: a user invisible on one node (XEP-0126 active list
 * denying presence-out, or XEP-0186) shows nothing to contacts on another node — not
 * when they log in there (their node gathers contacts' presence), not to their probes,
 * not when the portal changes the user's avatar through the other node's API, and not
 * when the user changes presence. Made visible, the presence goes out once. A node that
 * dies (SIGKILL, a child process) with an invisible user on it: the node that cleans up
 * sends that user's contacts no unavailable presence for it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startTestServer, DOMAIN, CLUSTER_SECRET, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { SqlRosterStore } from '../src/modules/roster/store-sql.js';

const REDIS = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const prefix = `parley-test-${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync(join(tmpdir(), 'parley-cluster-inv-'));
const nodes: TestServer[] = [];
const open: TestClient[] = [];
const children: ChildProcess[] = [];
const BIN = fileURLToPath(new URL('../../bin/parley.js', import.meta.url));
const jid = (u: string) => `${u}@${DOMAIN}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PORTAL_SECRET = 'cluster-portal-secret-0123456789abcdef';
const PRIVACY = 'jabber:iq:privacy';
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000a49444154789c6300010000050001', 'hex').toString('base64');

async function portalEvent(node: TestServer, event: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${node.httpUrl}/api/v1/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${PORTAL_SECRET}` },
    body: JSON.stringify({ id: `ev-${randomBytes(6).toString('hex')}`, ...event }),
  });
  assert.equal(res.status, 200, await res.text());
}

async function befriendInStore(a: string, b: string): Promise<void> {
  const roster = new SqlRosterStore(nodes[0]!.server.storage);
  const item = (j: string) => ({ jid: j, name: null, subscription: 'both' as const, groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true });
  await roster.update(DOMAIN, a, jid(b), () => item(jid(b)));
  await roster.update(DOMAIN, b, jid(a), () => item(jid(a)));
}

async function login(node: TestServer, username: string, resource: string): Promise<TestClient> {
  const c = await connectClient({ port: node.port, username, resource });
  open.push(c);
  return c;
}

async function ok(c: TestClient, el: Element): Promise<void> {
  const r = await c.iq(el);
  assert.equal(r.attrs.type, 'result', r.toString());
}

const availableFrom = (full: string) => (p: Element) => p.name === 'presence' && p.attrs.from === full && p.attrs.type === undefined;
const unavailableFrom = (full: string) => (p: Element) => p.name === 'presence' && p.attrs.from === full && p.attrs.type === 'unavailable';
const showsOnline = (user: string) => (p: Element) => p.name === 'presence' && (p.attrs.from ?? '').split('/')[0] === jid(user) && p.attrs.type === undefined;

before(async () => {
  for (const id of ['i1', 'i2']) {
    nodes.push(
      await startTestServer({
        dataDir,
        cluster: { driver: 'redis', url: REDIS, prefix, nodeId: id, secret: CLUSTER_SECRET, heartbeat: '100ms', lease: '600ms', drainTimeout: '0s' },
        portal: { secret: PORTAL_SECRET },
      }),
    );
  }
  for (const u of ['ann', 'ben', 'cat', 'don', 'eve', 'fay', 'gus']) await nodes[0]!.addUser(u);
  await befriendInStore('ann', 'ben');
  await befriendInStore('cat', 'don');
  await befriendInStore('eve', 'fay');
  await befriendInStore('gus', 'fay');
  await until('both nodes see two members', () => nodes.every((n) => n.server.cluster!.members().length === 2));
});

after(async () => {
  for (const p of children) p.kill('SIGKILL');
  for (const c of open) await c.stop();
  for (const n of nodes) await n.stop({ keepData: true });
  rmSync(dataDir, { recursive: true, force: true });
  const r = new Redis(REDIS);
  const keys = await r.keys(`${prefix}:*`);
  if (keys.length > 0) await r.del(...keys);
  r.disconnect();
});

test('invisible through an active privacy list on one node: contacts on another node see nothing at login, to a probe, on an avatar change or a presence change; declined, once', async () => {
  const [n1, n2] = [nodes[0]!, nodes[1]!];
  const ben = await login(n1, 'ben', 'desk');
  const benFull = `${jid('ben')}/desk`;
  const ann = await login(n2, 'ann', 'one');
  await ann.presence(availableFrom(benFull), 'ben online');
  await ok(ben, xml('iq', { type: 'set' }, xml('query', { xmlns: PRIVACY }, xml('list', { name: 'invisible' }, xml('item', { action: 'deny', order: '1' }, xml('presence-out'))))));
  await ok(ben, xml('iq', { type: 'set' }, xml('query', { xmlns: PRIVACY }, xml('active', { name: 'invisible' }))));
  await ann.presence(unavailableFrom(benFull), 'ben gone');
  const start = ann.received.length;

  // ann logs in again on node 2: her node gathers her contacts' presence.
  const ann2 = await login(n2, 'ann', 'two');
  // ann probes ben from node 2.
  await ann.send(xml('presence', { to: jid('ben'), type: 'probe' }));
  const ans = await ann.presence((p) => (p.attrs.from ?? '').startsWith(jid('ben')), 'probe answer');
  assert.deepEqual([ans.attrs.from, ans.attrs.type], [jid('ben'), 'unavailable']);
  // The portal changes ben's avatar through node 2's API.
  await portalEvent(n2, { type: 'profile.changed', user: 'ben', avatar: { type: 'image/png', data: PNG } });
  await ben.presence((p) => p.attrs.from === benFull && (p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo')?.length ?? 0) === 40, 'ben sees his new hash');
  // ben changes presence on node 1.
  await ben.send(xml('presence', null, xml('show', null, 'away')));
  await ben.presence((p) => p.attrs.from === benFull && p.getChildText('show') === 'away', 'ben sees his own change');
  await sleep(400);
  const leaked = [...ann.received.slice(start), ...ann2.received].filter(showsOnline('ben'));
  assert.deepEqual(leaked.map(String), [], 'no presence of invisible ben on node 2');

  // Visible: each of ann's resources gets ben's current presence, once.
  await ok(ben, xml('iq', { type: 'set' }, xml('query', { xmlns: PRIVACY }, xml('active'))));
  const back = await ann.presence(availableFrom(benFull), 'ben visible to ann/one');
  assert.equal(back.getChildText('show'), 'away');
  await ann2.presence(availableFrom(benFull), 'ben visible to ann/two');
  await ben.send(xml('presence', null, xml('show', null, 'away')));
  await sleep(400);
  assert.equal(ann.received.slice(start).filter(showsOnline('ben')).length, 1, 'once to ann/one');
  assert.equal(ann2.received.filter(showsOnline('ben')).length, 1, 'once to ann/two');
});

test('invisible through XEP-0186 on one node: a contact logging in, probing or addressed from another node sees nothing; visible, once', async () => {
  const [n1, n2] = [nodes[0]!, nodes[1]!];
  const don = await login(n1, 'don', 'phone');
  const donFull = `${jid('don')}/phone`;
  const cat = await login(n2, 'cat', 'one');
  await cat.presence(availableFrom(donFull), 'don online');
  await ok(don, xml('iq', { type: 'set' }, xml('invisible', { xmlns: 'urn:xmpp:invisible:1' })));
  await cat.presence(unavailableFrom(donFull), 'don gone');
  const start = cat.received.length;
  const cat2 = await login(n2, 'cat', 'two');
  await cat.send(xml('presence', { to: jid('don'), type: 'probe' }));
  await cat.presence((p) => p.attrs.from === jid('don') && p.attrs.type === 'unavailable', 'probe answer');
  await don.send(xml('presence', { to: `${jid('cat')}/one`, id: 'd1' }, xml('status', null, 'psst')));
  await don.presence((p) => p.attrs.id === 'd1' && p.attrs.type === 'error', 'directed presence refused');
  await portalEvent(n2, { type: 'profile.changed', user: 'don', avatar: { type: 'image/png', data: PNG } });
  await don.presence((p) => p.attrs.from === donFull && (p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo')?.length ?? 0) === 40, 'don sees his new hash');
  await don.send(xml('presence', null, xml('show', null, 'xa')));
  await sleep(400);
  assert.deepEqual([...cat.received.slice(start), ...cat2.received].filter(showsOnline('don')).map(String), [], 'nothing of invisible don on node 2');

  await ok(don, xml('iq', { type: 'set' }, xml('visible', { xmlns: 'urn:xmpp:invisible:1' })));
  await cat.presence(availableFrom(donFull), 'don visible to cat/one');
  await cat2.presence(availableFrom(donFull), 'don visible to cat/two');
  await sleep(300);
  assert.equal(cat.received.slice(start).filter(showsOnline('don')).length, 1, 'once');
  assert.equal(cat2.received.filter(showsOnline('don')).length, 1, 'once');
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A node of the same cluster in its own process (so it can be killed with SIGKILL). */
async function startChildNode(id: string): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const httpPort = await freePort();
  const file = join(dataDir, `${id}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      domain: DOMAIN,
      dataDir,
      listen: { c2s: { port }, c2sTls: { enabled: false }, http: { port: httpPort } },
      tls: { cert: nodes[0]!.config.tls.cert, key: nodes[0]!.config.tls.key },
      cluster: { driver: 'redis', url: REDIS, prefix, nodeId: id, secret: CLUSTER_SECRET, heartbeat: '100ms', lease: '600ms', drainTimeout: '0s' },
      log: { level: 'silent' },
    }),
  );
  const proc = spawn(process.execPath, [BIN, 'start', '--config', file], { stdio: 'ignore' });
  children.push(proc);
  const end = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${httpPort}/health/ready`)).status === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`${id} did not start`);
    await sleep(50);
  }
  return { port, proc };
}

test('a node dies with an invisible user on it: contacts who never saw that user get no unavailable for it (a visible one\'s comes)', async () => {
  const n1 = nodes[0]!;
  const child = await startChildNode('i3');
  await until('three members', () => nodes.every((n) => n.server.cluster!.members().length === 3), 10_000);
  const eve = await connectClient({ port: child.port, username: 'eve', resource: 'hidden', presence: false });
  open.push(eve);
  await ok(eve, xml('iq', { type: 'set' }, xml('invisible', { xmlns: 'urn:xmpp:invisible:1' })));
  await eve.send(xml('presence'));
  await eve.presence((p) => p.attrs.from === `${jid('eve')}/hidden`, 'own presence');
  const gusChild = await connectClient({ port: child.port, username: 'gus', resource: 'seen' });
  open.push(gusChild);
  const fay = await login(n1, 'fay', 'watch');
  await fay.presence(availableFrom(`${jid('gus')}/seen`), 'gus (visible) online');
  await until('node 1 sees both sessions of the child node', () => n1.server.core.sessions.available(jid('eve')).length === 1 && n1.server.core.sessions.available(jid('gus')).length === 1);

  child.proc.kill('SIGKILL');
  // The visible user's unavailable comes (the dead node was cleaned up) ...
  await fay.waitFor(unavailableFrom(`${jid('gus')}/seen`), 10_000, 'unavailable of gus after the node died');
  await sleep(300);
  // ... and nothing at all of the invisible one.
  const ofEve = fay.received.filter((p) => p.name === 'presence' && (p.attrs.from ?? '').startsWith(jid('eve')));
  assert.deepEqual(ofEve.map(String), [], 'no presence of invisible eve');
});
