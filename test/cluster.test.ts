/**
 * Three nodes in one process, sharing a Redis and a storage file: users on different
 * nodes subscribe to each other, see presence, chat in order, exchange IQs, get roster
 * pushes across nodes; a resource bound on two nodes ends the older session with
 * <conflict/>; a node that leaves takes its users' presence with it; the health endpoint
 * says whether a node takes sessions. (Failover with kill -9 behind haproxy:
 * cluster-failover.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startTestServer, CLUSTER_SECRET, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { SqlRosterStore } from '../src/modules/roster/store-sql.js';

const REDIS = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const prefix = `parley-test-${randomBytes(4).toString('hex')}`;
const dataDir = mkdtempSync(join(tmpdir(), 'parley-cluster-'));
const nodes: TestServer[] = [];
const open: TestClient[] = [];
const R = 'jabber:iq:roster';
const jid = (u: string) => `${u}@${DOMAIN}`;

const PAIRS = 10;
const PORTAL_SECRET = 'cluster-portal-secret-0123456789ab';

/** A portal event sent to one node's API. */
async function portalEvent(node: TestServer, event: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await fetch(`${node.httpUrl}/api/v1/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${PORTAL_SECRET}` },
    body: JSON.stringify({ id: `ev-${randomBytes(6).toString('hex')}`, ...event }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

/** Mutual subscription written straight into the roster store (no clients needed). */
async function befriendInStore(a: string, b: string): Promise<void> {
  const roster = new SqlRosterStore(nodes[0]!.server.storage);
  const item = (j: string) => ({ jid: j, name: null, subscription: 'both' as const, groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true });
  await roster.update(DOMAIN, a, jid(b), () => item(jid(b)));
  await roster.update(DOMAIN, b, jid(a), () => item(jid(a)));
}

function startNode(id: string): Promise<TestServer> {
  return startTestServer({
    dataDir,
    cluster: { driver: 'redis', url: REDIS, prefix, nodeId: id, secret: CLUSTER_SECRET, heartbeat: '100ms', lease: '600ms', drainTimeout: '0s' },
    portal: { secret: PORTAL_SECRET },
  });
}

async function login(node: TestServer, username: string, resource = 'test', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: node.port, username, resource, presence });
  open.push(c);
  return c;
}

async function plainLogin(node: TestServer, username: string, resource: string): Promise<TestClient> {
  const c = await connectClient({ port: node.port, username, resource, mechanism: 'PLAIN' });
  open.push(c);
  return c;
}

/** alice and bob become mutual contacts through the subscription handshake. */
async function befriend(a: TestClient, aName: string, b: TestClient, bName: string): Promise<void> {
  const request = b.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid(aName), `subscribe from ${aName}`);
  await a.send(xml('presence', { to: jid(bName), type: 'subscribe' }));
  await request;
  const seen = a.presence((p) => p.attrs.from?.startsWith(jid(bName) + '/') === true && p.attrs.type === undefined, `presence of ${bName}`);
  await b.send(xml('presence', { to: jid(aName), type: 'subscribed' }));
  await seen;
  const back = a.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid(bName), `subscribe from ${bName}`);
  await b.send(xml('presence', { to: jid(aName), type: 'subscribe' }));
  await back;
  const seen2 = b.presence((p) => p.attrs.from?.startsWith(jid(aName) + '/') === true && p.attrs.type === undefined, `presence of ${aName}`);
  await a.send(xml('presence', { to: jid(bName), type: 'subscribed' }));
  await seen2;
}

before(async () => {
  for (const id of ['n1', 'n2', 'n3']) nodes.push(await startNode(id));
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'pia', 'quin', 'rex']) await nodes[0]!.addUser(u);
  for (let i = 0; i < PAIRS; i++) {
    await nodes[0]!.addUser(`p${i}`);
    await nodes[0]!.addUser(`q${i}`);
    await befriendInStore(`p${i}`, `q${i}`);
  }
  await until('every node sees three members', () => nodes.every((n) => n.server.cluster!.members().length === 3));
});

after(async () => {
  for (const c of open) await c.stop();
  for (const n of nodes) await n.stop({ keepData: true });
  rmSync(dataDir, { recursive: true, force: true });
  const r = new Redis(REDIS);
  const keys = await r.keys(`${prefix}:*`);
  if (keys.length > 0) await r.del(...keys);
  r.disconnect();
});

test('users on different nodes subscribe, see presence, chat in order and exchange IQs', async () => {
  const alice = await login(nodes[0]!, 'alice');
  const bob = await login(nodes[1]!, 'bob');
  // Each is online in the other's node's view (a request for an unavailable contact would be kept for later).
  await until('bob is online in n1\'s view, alice in n2\'s', () => nodes[0]!.server.core.sessions.available(jid('bob')).length === 1 && nodes[1]!.server.core.sessions.available(jid('alice')).length === 1);
  await befriend(alice, 'alice', bob, 'bob');

  // 200 messages each way, to the full and to the bare JID: all arrive, in order.
  const N = 200;
  const got: string[] = [];
  const all = new Promise<void>((resolve) => {
    bob.xmpp.on('stanza', (el: { name: string; getChildText(n: string): string | null }) => {
      if (el.name === 'message' && el.getChildText('body')?.startsWith('m')) {
        got.push(el.getChildText('body')!);
        if (got.length === N) resolve();
      }
    });
  });
  for (let i = 0; i < N; i++) await alice.send(xml('message', { to: i % 2 ? jid('bob') : `${jid('bob')}/test`, type: 'chat' }, xml('body', null, `m${i}`)));
  await all;
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => `m${i}`));

  // An IQ to a client on another node, and its reply.
  const version = bob.waitFor((el) => el.name === 'iq' && el.attrs.type === 'get', 5000, 'iq from alice');
  const reply = alice.iq(xml('iq', { type: 'get', to: `${jid('bob')}/test` }, xml('query', { xmlns: 'jabber:iq:version' })));
  const req = await version;
  await bob.send(xml('iq', { type: 'result', id: req.attrs.id, to: req.attrs.from }, xml('query', { xmlns: 'jabber:iq:version' }, xml('name', null, 'bob-client'))));
  const r = await reply;
  assert.equal(r.attrs.type, 'result');
  assert.equal(r.getChild('query')?.getChildText('name'), 'bob-client');

  // An IQ to a resource that is on no node: service-unavailable.
  const none = await alice.iq(xml('iq', { type: 'get', to: `${jid('bob')}/nowhere` }, xml('query', { xmlns: 'jabber:iq:version' })));
  assert.equal(none.attrs.type, 'error');

  // Presence changes cross nodes.
  const away = alice.presence((p) => p.attrs.from === `${jid('bob')}/test` && p.getChildText('show') === 'away', 'bob away');
  await bob.send(xml('presence', null, xml('show', null, 'away')));
  await away;
  assert.ok(nodes[0]!.server.cluster!.stats().forwarded > 0);
});

test('contacts coming online at the same moment on two nodes see each other', async () => {
  const logins = [];
  for (let i = 0; i < PAIRS; i++) {
    // PLAIN: SCRAM's key derivation in the client library runs in this process, and two
    // dozen at once would stall the servers that share it (this test is about presence).
    logins.push(plainLogin(nodes[0]!, `p${i}`, 'x'), plainLogin(nodes[1]!, `q${i}`, 'y'));
  }
  const clients = await Promise.all(logins);
  const missing: string[] = [];
  await Promise.all(
    clients.map(async (c, k) => {
      const i = k >> 1;
      const other = k % 2 === 0 ? `${jid(`q${i}`)}/y` : `${jid(`p${i}`)}/x`;
      await c.presence((p) => p.attrs.from === other && p.attrs.type === undefined, `presence of ${other}`).catch(() => missing.push(`${c.jid} misses ${other}`));
    }),
  );
  assert.deepEqual(missing, []);
  for (const c of clients) await c.stop();
});

test('roster pushes reach the user\'s resources on other nodes; a second login on another node gets contacts\' presence', async () => {
  const c1 = await login(nodes[0]!, 'carol', 'one');
  const c2 = await login(nodes[2]!, 'carol', 'two');
  await c2.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: R })));
  await until('carol/two is known on n1 as wanting roster pushes', () => nodes[0]!.server.core.sessions.resources(jid('carol')).some((s) => s.jid.resource === 'two' && s.rosterRequested));
  const push = c2.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', R)?.getChild('item')?.attrs.jid === jid('erin'), 5000, 'roster push');
  const res = await c1.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('erin'), name: 'Erin' }))));
  assert.equal(res.attrs.type, 'result');
  const item = (await push).getChild('query', R)!.getChild('item')!;
  assert.equal(item.attrs.name, 'Erin');

  // carol's own resources see each other's presence across nodes.
  await c1.presence((p) => p.attrs.from === `${jid('carol')}/two`, 'carol/two seen by carol/one');

  // Messages carol/one sends are copied to carol/two (carbons) on the other node.
  await c2.iq(xml('iq', { type: 'set' }, xml('enable', { xmlns: 'urn:xmpp:carbons:2' })));
  await until('carbons flag of carol/two known on n1', () => nodes[0]!.server.core.sessions.resources(jid('carol')).some((s) => s.jid.resource === 'two' && (s.flags & 1) === 1));
  const carbon = c2.waitFor((el) => el.name === 'message' && el.getChild('sent', 'urn:xmpp:carbons:2') !== undefined, 5000, 'sent carbon');
  await c1.send(xml('message', { to: jid('erin'), type: 'chat' }, xml('body', null, 'for erin')));
  await carbon;
});

test('the same resource bound on two nodes: the older session ends with <conflict/>', async () => {
  const first = await login(nodes[1]!, 'dave', 'phone');
  await until('dave/phone known on n3', () => nodes[2]!.server.core.sessions.resources(jid('dave')).length === 1);
  const ended = new Promise<string>((resolve) => first.xmpp.on('error', (e: { condition?: string }) => resolve(e.condition ?? String(e))));
  const second = await login(nodes[2]!, 'dave', 'phone');
  assert.equal(await ended, 'conflict');
  await until('only the new dave/phone is left', () => nodes.every((n) => n.server.core.sessions.resources(jid('dave')).length === 1 && n.server.core.sessions.resources(jid('dave'))[0]!.node !== 'n2'));
  // Messages now reach the new session.
  const alice = await login(nodes[0]!, 'alice', 'two');
  const m = second.message(jid('alice'));
  await alice.send(xml('message', { to: `${jid('dave')}/phone`, type: 'chat' }, xml('body', null, 'to the new one')));
  assert.equal((await m).getChildText('body'), 'to the new one');
});

test('a message to a user with no session anywhere is stored and delivered at login on another node', async () => {
  const alice = await login(nodes[0]!, 'alice', 'three');
  const stored = nodes[0]!.server.core.stats.offlineStored;
  await alice.send(xml('message', { to: jid('erin'), type: 'chat', id: 'off1' }, xml('body', null, 'while you were away')));
  await until('the message is in offline storage', () => nodes[0]!.server.core.stats.offlineStored > stored);
  const erin = await login(nodes[2]!, 'erin');
  const m = await erin.message(jid('alice'));
  assert.equal(m.getChildText('body'), 'while you were away');
});

test('a block made on one node holds on the others (their copy of the lists is dropped)', async () => {
  const alice = await login(nodes[0]!, 'alice', 'blocker');
  const bob = await login(nodes[1]!, 'bob', 'blocked');
  await until('alice/blocker is known on n2', () => nodes[1]!.server.core.sessions.resources(jid('alice')).some((s) => s.jid.resource === 'blocker' && s.isAvailable));
  // bob writes first: n2 reads alice's (empty) lists to judge it, and keeps them.
  const first = alice.message(jid('bob'));
  await bob.send(xml('message', { to: `${jid('alice')}/blocker`, type: 'chat' }, xml('body', null, 'before')));
  await first;
  const r = await alice.iq(xml('iq', { type: 'set' }, xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: jid('bob') }))));
  assert.equal(r.attrs.type, 'result');
  // The invalidation reaches n2 over Redis pub/sub, which has no event a test can await: a bounded grace.
  await new Promise((res) => setTimeout(res, 200));
  const refused = bob.waitFor((el) => el.name === 'message' && el.attrs.type === 'error', 5000, 'error for a message to a blocker');
  await bob.send(xml('message', { to: `${jid('alice')}/blocker`, type: 'chat' }, xml('body', null, 'after')));
  await refused;
  await alice.expectNone((el) => el.name === 'message' && el.getChildText('body') === 'after', 300);
  await alice.iq(xml('iq', { type: 'set' }, xml('unblock', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: jid('bob') }))));
});

test('portal events sent to one node act on users of the others: friendship, notification, broadcast, ban', async () => {
  const pia = await login(nodes[1]!, 'pia');
  const quin = await login(nodes[2]!, 'quin');
  await until('pia and quin are known on n1', () => nodes[0]!.server.core.sessions.available(jid('pia')).length === 1 && nodes[0]!.server.core.sessions.available(jid('quin')).length === 1);
  await pia.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: R })));
  const push = pia.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', R)?.getChild('item')?.attrs.subscription === 'both', 8000, 'roster push at pia');
  const seen = pia.presence((p) => p.attrs.from === `${jid('quin')}/test` && p.attrs.type === undefined, 'quin available at pia');
  await portalEvent(nodes[0]!, { type: 'friendship.added', user: 'pia', friend: 'quin' });
  await push;
  await seen;

  await portalEvent(nodes[0]!, { type: 'notification', user: 'quin', body: 'a note across nodes' });
  await quin.waitFor((el) => el.name === 'message' && el.attrs.type === 'headline' && el.getChildText('body') === 'a note across nodes', 8000, 'the notification');

  const rex = await login(nodes[0]!, 'rex');
  const b = await portalEvent(nodes[0]!, { type: 'broadcast', body: 'to everyone on every node' });
  assert.equal(b.nodes, 3);
  for (const c of [pia, quin, rex]) await c.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'to everyone on every node', 8000, 'the broadcast');

  const gone = pia.presence((p) => p.attrs.from === `${jid('quin')}/test` && p.attrs.type === 'unavailable', 'quin unavailable at pia');
  const banned = await portalEvent(nodes[0]!, { type: 'user.banned', user: 'quin', reason: 'testing' });
  assert.equal(banned.sessionsClosed, 1);
  await gone;
  await until('quin has no session anywhere', () => nodes.every((n) => n.server.core.sessions.resources(jid('quin')).length === 0));
});

test('health: ready while a member; a node that leaves takes its users\' presence with it', async () => {
  const res = await fetch(`${nodes[2]!.httpUrl}/health/ready`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { node: string; members: string[] };
  assert.equal(body.node, 'n3');
  assert.deepEqual(body.members, ['n1', 'n2', 'n3']);

  const watcher = await login(nodes[0]!, 'bob', 'watch');
  const carol = await login(nodes[2]!, 'carol', 'leaving');
  void carol;
  // bob is not carol's contact; alice is (befriended in test 1) — use alice.
  const alice = await login(nodes[1]!, 'alice', 'four');
  void watcher;
  const frank = await login(nodes[2]!, 'bob', 'onthree');
  const gone = alice.presence((p) => p.attrs.from === `${jid('bob')}/onthree` && p.attrs.type === 'unavailable', 'bob/onthree unavailable');
  await frank.send(xml('presence'));
  await nodes[2]!.stop({ keepData: true });
  nodes.splice(2, 1);
  await gone;
  await until('n3 left every view', () => nodes.every((n) => !n.server.cluster!.members().includes('n3')));
  assert.equal(nodes[0]!.server.core.sessions.resources(jid('bob')).some((s) => s.jid.resource === 'onthree'), false);
});

test('last activity across nodes (XEP-0012): 0 while the contact is online on another node, then its logout there with the status', async () => {
  await nodes[0]!.addUser('lara');
  await nodes[0]!.addUser('mo');
  await befriendInStore('lara', 'mo');
  const mo = await login(nodes[1]!, 'mo', 'n2');
  const lara = await login(nodes[0]!, 'lara', 'n1');
  await until("mo is online in n1's view", () => nodes[0]!.server.core.sessions.available(jid('mo')).length === 1);
  const last = () => lara.iq(xml('iq', { type: 'get', to: jid('mo') }, xml('query', { xmlns: 'jabber:iq:last' })));
  assert.equal((await last()).getChild('query', 'jabber:iq:last')?.attrs.seconds, '0');
  await mo.send(xml('presence', { type: 'unavailable' }, xml('status', null, 'Bye from n2')));
  await lara.presence((p) => p.attrs.type === 'unavailable' && p.attrs.from === `${jid('mo')}/n2`, 'mo unavailable');
  await mo.stop();
  await until("mo is gone from n1's view", () => nodes[0]!.server.core.sessions.resources(jid('mo')).length === 0);
  await nodes[1]!.server.core.settle(2000);
  const r = await last();
  assert.equal(r.attrs.type, 'result', r.toString());
  assert.equal(r.getChild('query', 'jabber:iq:last')?.text(), 'Bye from n2');
});
