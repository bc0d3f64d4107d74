/**
 * Limits on how much one account holds (docs/limits.md): sessions per user, roster size
 * (roster set, subscription requests both ways), offline messages per user. Each limit
 * is hit by a real client, which gets the defined error; the counter moves; another
 * user is not affected.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, STREAM_HEADER, type Element, type TestClient } from './helpers/client.js';
import { login, plainAttempt, waitUntil, type Conn } from './helpers/limits.js';
import { json, startFakePortal } from './helpers/portal.js';
import { signLoginToken } from '../src/portal/tokens.js';

const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const R = 'jabber:iq:roster';
const jid = (u: string) => `${u}@${DOMAIN}`;
const servers: TestServer[] = [];
const clients: TestClient[] = [];
const conns: Conn[] = [];

async function server(overrides: Record<string, unknown>, users: string[]): Promise<TestServer> {
  const ts = await startTestServer({ listen: { c2s: { requireTls: false } }, ...overrides });
  servers.push(ts);
  for (const u of users) await ts.addUser(u);
  return ts;
}

async function client(ts: TestServer, username: string, resource = 'test', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence });
  clients.push(c);
  return c;
}

function errorOf(el: Element): { type: string; condition: string } {
  const e = el.getChild('error')!;
  const cond = e.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text');
  return { type: e.attrs.type!, condition: cond?.name ?? '' };
}

const rosterSet = (contact: string) => xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: contact })));

after(async () => {
  for (const c of clients) await c.stop();
  for (const c of conns) c.close();
  for (const s of servers) await s.stop();
});

test('a session past maxResourcesPerUser is refused at binding with resource-constraint (wait); other accounts bind', async () => {
  const ts = await server({ limits: { maxResourcesPerUser: 2 } }, ['alice', 'bob']);
  await client(ts, 'alice', 'one');
  await client(ts, 'alice', 'two');
  const { conn } = await plainAttempt(ts.port, 'alice', 'secret');
  conns.push(conn);
  const at = conn.text.length;
  conn.write(STREAM_HEADER);
  await conn.until(/<bind/, at);
  conn.write("<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>three</resource></bind></iq>");
  const reply = await conn.until(/id='b3'[\s\S]*<\/iq>/, at);
  assert.match(reply, /<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'\/>/);
  assert.equal(ts.server.core.stats.limitHits['sessions-per-user'], 1);
  assert.equal(ts.server.core.sessions.resources(jid('alice')).length, 2);
  // Another account is not affected.
  conns.push(await login(ts.port, 'bob', 'secret', 'one'));
  assert.equal(ts.server.core.sessions.resources(jid('bob')).length, 1);
});

test('a roster set past maxRosterSize gets not-allowed; changing an item, and another user\'s roster, still work', async () => {
  const ts = await server({ limits: { maxRosterSize: 2 } }, ['carol', 'dave']);
  const carol = await client(ts, 'carol');
  const dave = await client(ts, 'dave');
  assert.equal((await carol.iq(rosterSet('x1@elsewhere.test'))).attrs.type, 'result');
  assert.equal((await carol.iq(rosterSet('x2@elsewhere.test'))).attrs.type, 'result');
  const refused = await carol.iq(rosterSet('x3@elsewhere.test'));
  assert.equal(refused.attrs.type, 'error');
  assert.deepEqual(errorOf(refused), { type: 'cancel', condition: 'not-allowed' });
  assert.match(refused.getChild('error')!.getChildText('text', STANZAS) ?? '', /roster is full/);
  assert.equal(ts.server.core.stats.limitHits['roster-size'], 1);
  // An existing item can still change.
  const renamed = await carol.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: 'x1@elsewhere.test', name: 'One' }))));
  assert.equal(renamed.attrs.type, 'result');
  // Another user's roster is not affected.
  for (const c of ['y1@elsewhere.test', 'y2@elsewhere.test']) assert.equal((await dave.iq(rosterSet(c))).attrs.type, 'result');
  assert.equal(ts.server.core.stats.limitHits['roster-size'], 1);
});

test('subscription requests that would grow a full roster are refused with a presence error not-allowed, both ways', async () => {
  const ts = await server({ limits: { maxRosterSize: 2 } }, ['erin', 'frank', 'gina']);
  const erin = await client(ts, 'erin');
  const frank = await client(ts, 'frank');
  const gina = await client(ts, 'gina');
  await erin.iq(rosterSet('z1@elsewhere.test'));
  await erin.iq(rosterSet('z2@elsewhere.test'));
  // Outbound: erin asks frank; her roster would grow.
  await erin.send(xml('presence', { to: jid('frank'), type: 'subscribe', id: 's1' }));
  const out = await erin.waitFor((el) => el.name === 'presence' && el.attrs.type === 'error' && el.attrs.id === 's1');
  assert.deepEqual(errorOf(out), { type: 'cancel', condition: 'not-allowed' });
  // Inbound: gina asks erin; erin's roster would hold the request.
  await gina.send(xml('presence', { to: jid('erin'), type: 'subscribe', id: 's2' }));
  const inb = await gina.waitFor((el) => el.name === 'presence' && el.attrs.type === 'error' && el.attrs.id === 's2');
  assert.deepEqual(errorOf(inb), { type: 'cancel', condition: 'not-allowed' });
  assert.equal(ts.server.core.stats.limitHits['roster-size'], 2);
  // Others subscribe as usual.
  await gina.send(xml('presence', { to: jid('frank'), type: 'subscribe', id: 's3' }));
  await frank.presence((el) => el.attrs.type === 'subscribe' && el.attrs.from === jid('gina'), 'gina\'s request');
});

test('messages to an offline user past offline.maxPerUser bounce with resource-constraint (wait); other recipients store', async () => {
  const ts = await server({ offline: { maxPerUser: 2 } }, ['hank', 'ivan', 'judy']);
  const hank = await client(ts, 'hank');
  for (let i = 0; i < 3; i++) await hank.send(xml('message', { to: jid('ivan'), type: 'chat', id: `o${i}` }, xml('body', null, `offline ${i}`)));
  const bounce = await hank.waitFor((el) => el.name === 'message' && el.attrs.type === 'error', 10_000, 'a bounce');
  assert.equal(bounce.attrs.id, 'o2');
  assert.deepEqual(errorOf(bounce), { type: 'wait', condition: 'resource-constraint' });
  assert.equal(ts.server.core.stats.limitHits['offline-per-user'], 1);
  // Another recipient's storage is not affected.
  await hank.send(xml('message', { to: jid('judy'), type: 'chat', id: 'j1' }, xml('body', null, 'for judy')));
  const judy = await client(ts, 'judy');
  const m = await judy.waitFor((el) => el.name === 'message' && el.attrs.id === 'j1', 10_000);
  assert.equal(m.getChildText('body'), 'for judy');
  // And ivan gets the two stored ones.
  const ivan = await client(ts, 'ivan');
  await waitUntil(() => ivan.received.filter((el) => el.name === 'message' && el.getChildText('body')?.startsWith('offline')).length === 2, 10_000, () => 'ivan\'s two offline messages');
  assert.equal(ts.server.core.stats.limitHits['offline-per-user'], 1);
});

test("a portal friend list longer than maxRosterSize is cut to the limit (warning, counted); shorter lists are whole", async () => {
  const SECRET = 'a portal secret of some length, 32+ characters';
  const lists: Record<string, Array<{ user: string }>> = {
    kate: [{ user: 'f1' }, { user: 'f2' }, { user: 'f3' }, { user: 'f4' }],
    liam: [{ user: 'f1' }],
  };
  const portal = await startFakePortal((req, _body, res) => json(res, 200, lists[decodeURIComponent((req.url ?? '').split('/').pop()!)] ?? []));
  try {
    const ts = await server({ limits: { maxRosterSize: 2 }, portal: { secret: SECRET, roster: { source: 'http', url: `${portal.url}/friends/{user}` } } }, []);
    const token = (u: string) => signLoginToken(SECRET, DOMAIN, u, Math.floor(Date.now() / 1000) + 300);
    const items = async (u: string) => {
      const c = await connectClient({ port: ts.port, username: u, password: token(u), mechanism: 'PLAIN', presence: false });
      clients.push(c);
      const r = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: R })));
      assert.equal(r.attrs.type, 'result');
      return r.getChild('query', R)!.getChildren('item').map((i) => i.attrs.jid);
    };
    assert.deepEqual(await items('kate'), [jid('f1'), jid('f2')]);
    assert.equal(ts.server.core.stats.limitHits['roster-size'], 1);
    assert.deepEqual(await items('liam'), [jid('f1')]);
    assert.equal(ts.server.core.stats.limitHits['roster-size'], 1);
  } finally {
    await portal.close();
  }
});
