/**
 * Friends from the portal (issue 8, part 3) against running servers: rosters from a fake
 * portal over HTTP and from the portal's SQLite table, read-only to clients, refreshed
 * after portal.roster.cacheTtl with pushes and presence, kept when the portal is down;
 * and the friendships service (befriend / unfriend) in internal mode.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { json, startFakePortal, type FakePortal } from './helpers/portal.js';
import { signLoginToken } from '../src/portal/tokens.js';
import { Jid } from '../src/xmpp/jid.js';

const SECRET = 'a portal secret of some length, 32+ characters';
const R = 'jabber:iq:roster';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const TTL_MS = 1000;
const jid = (u: string) => `${u}@${DOMAIN}`;
const token = (user: string) => signLoginToken(SECRET, DOMAIN, user, Math.floor(Date.now() / 1000) + 300);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const clients: TestClient[] = [];
async function login(ts: TestServer, user: string, opts: { presence?: boolean; resource?: string } = {}): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username: user, password: token(user), mechanism: 'PLAIN', presence: opts.presence ?? true, resource: opts.resource ?? 'web' });
  clients.push(c);
  return c;
}

async function rosterOf(c: TestClient): Promise<Element[]> {
  const r = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: R })));
  assert.equal(r.attrs.type, 'result', r.toString());
  return r.getChild('query', R)!.getChildren('item');
}

const pushFor = (c: TestClient, contact: string, pred: (i: Element) => boolean = () => true) =>
  c.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', R)?.getChild('item')?.attrs.jid === contact && pred(el.getChild('query', R)!.getChild('item')!), 5000, `push of ${contact}`);

const availableFrom = (c: TestClient, user: string) => c.presence((p) => p.attrs.from?.startsWith(`${jid(user)}/`) === true && p.attrs.type === undefined, `${user} available`);

describe('roster from the portal over HTTP', () => {
  let ts: TestServer;
  let portal: FakePortal;
  const friends = new Map<string, Array<Record<string, unknown>>>();
  const down = new Set<string>();
  const link = (a: string, b: string) => {
    friends.set(a, [...(friends.get(a) ?? []).filter((f) => f.user !== b), { user: b }]);
    friends.set(b, [...(friends.get(b) ?? []).filter((f) => f.user !== a), { user: a }]);
  };
  const unlink = (a: string, b: string) => {
    friends.set(a, (friends.get(a) ?? []).filter((f) => f.user !== b));
    friends.set(b, (friends.get(b) ?? []).filter((f) => f.user !== a));
  };

  before(async () => {
    portal = await startFakePortal((req, _body, res) => {
      const user = decodeURIComponent((req.url ?? '').split('/').pop()!);
      if (down.has(user)) return json(res, 500, { error: 'down' });
      json(res, 200, friends.get(user) ?? []);
    });
    ts = await startTestServer({ portal: { secret: SECRET, roster: { source: 'http', url: `${portal.url}/friends/{user}`, cacheTtl: `${TTL_MS}ms` } } });
  });
  after(async () => {
    for (const c of clients.splice(0)) await c.stop();
    await ts.stop();
    await portal.close();
  });

  test("the roster is the portal's friend list, every item with subscription both; invalid friends are skipped", async () => {
    friends.set('alice', [
      { user: 'bob', name: 'Bob', groups: ['Friends', 'Chess'] },
      { user: jid('carol') },
      { user: 'not a valid name@' },
      { user: 'x@other.test' },
    ]);
    const a = await login(ts, 'alice', { presence: false });
    const items = await rosterOf(a);
    assert.deepEqual(items.map((i) => i.attrs.jid).sort(), [jid('bob'), jid('carol')]);
    for (const i of items) assert.equal(i.attrs.subscription, 'both');
    const bob = items.find((i) => i.attrs.jid === jid('bob'))!;
    assert.equal(bob.attrs.name, 'Bob');
    assert.deepEqual(bob.getChildren('group').map((g) => g.text()), ['Friends', 'Chess']);
    assert.equal(await ts.server.core.users.exists(DOMAIN, 'bob'), true, 'friends get accounts, so messages to them are stored');
  });

  test('the roster is read-only: set and remove are not-allowed (cancel)', async () => {
    const a = await login(ts, 'alice', { presence: false, resource: 'ro' });
    for (const item of [xml('item', { jid: jid('zed') }), xml('item', { jid: jid('bob'), subscription: 'remove' })]) {
      const r = await a.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, item)));
      assert.equal(r.attrs.type, 'error');
      assert.equal(r.getChild('error')!.attrs.type, 'cancel');
      assert.ok(r.getChild('error')!.getChild('not-allowed', STANZAS));
    }
  });

  test('subscription presence from a client is refused with not-allowed and changes nothing', async () => {
    const a = await login(ts, 'alice', { presence: false, resource: 'sub' });
    for (const type of ['subscribe', 'unsubscribe', 'subscribed', 'unsubscribed']) {
      await a.send(xml('presence', { to: jid('bob'), type, id: `s-${type}` }));
      const err = await a.waitFor((el) => el.name === 'presence' && el.attrs.id === `s-${type}`, 5000, `error for ${type}`);
      assert.equal(err.attrs.type, 'error');
      assert.ok(err.getChild('error')!.getChild('not-allowed', STANZAS));
    }
    const items = await rosterOf(a);
    assert.equal(items.find((i) => i.attrs.jid === jid('bob'))?.attrs.subscription, 'both');
  });

  test('two portal friends who log in see each other (roster read at login, before presence goes out)', async () => {
    link('p1', 'p2');
    const p1 = await login(ts, 'p1');
    const p2 = await login(ts, 'p2');
    await availableFrom(p1, 'p2');
    await availableFrom(p2, 'p1');
  });

  test('a friend added at the portal shows after cacheTtl at the next roster get, with pushes and presence both ways', async () => {
    const g1 = await login(ts, 'g1');
    const g2 = await login(ts, 'g2');
    assert.deepEqual(await rosterOf(g1), []);
    assert.deepEqual(await rosterOf(g2), []);
    link('g1', 'g2');
    await sleep(TTL_MS + 100);
    const pushToG2 = pushFor(g2, jid('g1'), (i) => i.attrs.subscription === 'both');
    const items = await rosterOf(g1);
    assert.deepEqual(items.map((i) => [i.attrs.jid, i.attrs.subscription]), [[jid('g2'), 'both']]);
    await pushToG2;
    await availableFrom(g1, 'g2');
    await availableFrom(g2, 'g1');
  });

  test('a friend removed at the portal goes away after cacheTtl: pushes and unavailable both ways', async () => {
    link('r1', 'r2');
    const r1 = await login(ts, 'r1');
    const r2 = await login(ts, 'r2');
    await availableFrom(r1, 'r2');
    await rosterOf(r2);
    unlink('r1', 'r2');
    await sleep(TTL_MS + 100);
    const removal = pushFor(r2, jid('r1'), (i) => i.attrs.subscription === 'remove');
    assert.deepEqual(await rosterOf(r1), []);
    await removal;
    await r2.presence((p) => p.attrs.from === `${jid('r1')}/web` && p.attrs.type === 'unavailable', 'r1 unavailable');
    await r1.presence((p) => p.attrs.from === `${jid('r2')}/web` && p.attrs.type === 'unavailable', 'r2 unavailable');
  });

  test('a portal that is down keeps the cached roster (never an empty one)', async () => {
    link('d1', 'd2');
    const d1 = await login(ts, 'd1', { presence: false });
    assert.equal((await rosterOf(d1)).length, 1);
    down.add('d1');
    await sleep(TTL_MS + 100);
    const before = portal.hits.get('/friends/d1') ?? 0;
    const items = await rosterOf(d1);
    assert.deepEqual(items.map((i) => i.attrs.jid), [jid('d2')]);
    assert.ok((portal.hits.get('/friends/d1') ?? 0) > before, 'the portal was asked');
    down.delete('d1');
  });

  test('friendships.refresh reads the portal now (for the events API)', async () => {
    link('e1', 'e2');
    const friendships = ts.server.core.service('friendships');
    assert.equal(friendships.readOnly, true);
    await friendships.refresh(Jid.parse(jid('e1')));
    const items = await ts.server.core.service('roster').getItems(Jid.parse(jid('e2')));
    assert.deepEqual(items.map((i) => [i.jid, i.subscription]), [[jid('e1'), 'both']]);
  });
});

describe('roster from the portal database (SQLite)', () => {
  let ts: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parley-portal-'));
    const db = new BetterSqlite3(join(dir, 'portal.db'));
    db.exec(`CREATE TABLE friendship (owner TEXT, friend TEXT, nick TEXT, tags TEXT);
      INSERT INTO friendship VALUES ('s1', 's2', 'Second', 'Family, Work'), ('s2', 's1', NULL, NULL), ('s1', 'bad name@', NULL, NULL);`);
    db.close();
    ts = await startTestServer({
      portal: { secret: SECRET, db: `sqlite:${join(dir, 'portal.db')}`, roster: { source: 'sql', query: 'SELECT friend AS user, nick AS name, tags AS groups FROM friendship WHERE owner = :user' } },
    });
  });
  after(async () => {
    for (const c of clients.splice(0)) await c.stop();
    await ts.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('items come from the query (name, comma-separated groups), subscription both; presence exchanged', async () => {
    const s1 = await login(ts, 's1');
    const items = await rosterOf(s1);
    assert.equal(items.length, 1);
    assert.equal(items[0]!.attrs.jid, jid('s2'));
    assert.equal(items[0]!.attrs.subscription, 'both');
    assert.equal(items[0]!.attrs.name, 'Second');
    assert.deepEqual(items[0]!.getChildren('group').map((g) => g.text()), ['Family', 'Work']);
    const s2 = await login(ts, 's2');
    await availableFrom(s1, 's2');
    await availableFrom(s2, 's1');
    const r = await s1.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('x') }))));
    assert.ok(r.getChild('error')?.getChild('not-allowed', STANZAS));
  });
});

describe('friendships service in internal mode', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer();
    await ts.addUser('i1');
    await ts.addUser('i2');
  });
  after(async () => {
    for (const c of clients.splice(0)) await c.stop();
    await ts.stop();
  });

  test('befriend sets both on both sides with pushes and presence; unfriend removes them with unavailable', async () => {
    const i1 = await connectClient({ port: ts.port, username: 'i1', resource: 'web' });
    const i2 = await connectClient({ port: ts.port, username: 'i2', resource: 'web' });
    clients.push(i1, i2);
    await rosterOf(i1);
    await rosterOf(i2);
    const f = ts.server.core.service('friendships');
    assert.equal(f.readOnly, false);
    const push1 = pushFor(i1, jid('i2'), (i) => i.attrs.subscription === 'both' && i.attrs.name === 'Two');
    const push2 = pushFor(i2, jid('i1'), (i) => i.attrs.subscription === 'both');
    await f.befriend(Jid.parse(jid('i1')), Jid.parse(jid('i2')), { nameOfB: 'Two' });
    await push1;
    await push2;
    await availableFrom(i1, 'i2');
    await availableFrom(i2, 'i1');
    // Idempotent: no second presence.
    await f.befriend(Jid.parse(jid('i1')), Jid.parse(jid('i2')));
    await i1.expectNone((p) => p.name === 'presence' && p.attrs.from === `${jid('i2')}/web`, 300, 'a second presence');
    // Roster changes by the client still work in internal mode.
    const r = await i1.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('i2'), name: 'Deux' }))));
    assert.equal(r.attrs.type, 'result');
    const gone1 = pushFor(i1, jid('i2'), (i) => i.attrs.subscription === 'remove');
    const gone2 = pushFor(i2, jid('i1'), (i) => i.attrs.subscription === 'remove');
    await f.unfriend(Jid.parse(jid('i2')), Jid.parse(jid('i1')));
    await gone1;
    await gone2;
    await i1.presence((p) => p.attrs.from === `${jid('i2')}/web` && p.attrs.type === 'unavailable', 'i2 unavailable');
    await i2.presence((p) => p.attrs.from === `${jid('i1')}/web` && p.attrs.type === 'unavailable', 'i1 unavailable');
  });
});
