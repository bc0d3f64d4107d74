/**
 * Flexible offline message retrieval (XEP-0013) through a real stream: count and headers
 * through disco, view, remove, fetch and purge, and no flood at initial presence for a
 * client that chose it (nor for its other resources while it is online).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { XmlClient } from './helpers/xml-client.js';
import type { XmlElement } from '../src/xml/element.js';

const FLEX = 'http://jabber.org/protocol/offline';
const INFO = 'http://jabber.org/protocol/disco#info';
const ITEMS = 'http://jabber.org/protocol/disco#items';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let ts: TestServer;
const open: XmlClient[] = [];

before(async () => {
  ts = await startTestServer({ listen: { c2s: { requireTls: false } } });
  for (const u of ['rosa', 'sam', 'tom', 'una']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) c.cut();
  await ts.stop();
});

async function login(user: string, resource: string): Promise<XmlClient> {
  const t = await XmlClient.tcp(ts.port);
  open.push(t);
  await t.login(user);
  await t.bind(resource);
  return t;
}

let n = 0;
async function iq(c: XmlClient, type: 'get' | 'set', payload: string, to?: string): Promise<XmlElement> {
  const id = `q${++n}`;
  c.write(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ''}>${payload}</iq>`);
  return c.waitFor((el) => el.name === 'iq' && el.attrs.id === id, `reply to ${id}`);
}

async function store(from: XmlClient, to: string, bodies: string[]): Promise<void> {
  for (const b of bodies) from.write(`<message to='${to}' type='chat'><body>${b}</body></message>`);
  const user = to.split('@')[0]!;
  await until('the offline rows are written', async () => (await ts.server.core.storage.forUser(DOMAIN, user, 'test', (db) => db.selectFrom('offline').selectAll().where('username', '=', user).execute())).length >= bodies.length);
}

const count = async (c: XmlClient): Promise<string | undefined> => {
  const r = await iq(c, 'get', `<query xmlns='${INFO}' node='${FLEX}'/>`);
  const field = r
    .getChild('query', INFO)
    ?.getChild('x', 'jabber:x:data')
    ?.getChildren('field')
    .find((f) => f.attrs.var === 'number_of_messages');
  return field?.getChildText('value') ?? undefined;
};

test('the server announces flexible offline retrieval', async () => {
  const c = await login('tom', 'disco');
  const r = await iq(c, 'get', `<query xmlns='${INFO}'/>`, DOMAIN);
  assert.ok(r.getChild('query', INFO)?.getChildren('feature').some((f) => f.attrs.var === FLEX));
  c.end();
});

test('count, headers, view, remove, fetch and purge; no flood at initial presence', async () => {
  const sam = await login('sam', 'out');
  await store(sam, `rosa@${DOMAIN}`, ['one', 'two', 'three']);

  const rosa = await login('rosa', 'phone');
  const info = await iq(rosa, 'get', `<query xmlns='${INFO}' node='${FLEX}'/>`);
  const q = info.getChild('query', INFO)!;
  assert.equal(q.attrs.node, FLEX);
  assert.ok(q.getChild('identity') && q.getChild('identity')!.attrs.category === 'automation' && q.getChild('identity')!.attrs.type === 'message-list');
  assert.equal(await count(rosa), '3');

  const headers = (await iq(rosa, 'get', `<query xmlns='${ITEMS}' node='${FLEX}'/>`)).getChild('query', ITEMS)!.getChildren('item');
  assert.equal(headers.length, 3);
  for (const h of headers) {
    assert.equal(h.attrs.jid, `rosa@${DOMAIN}`);
    assert.equal(h.attrs.name, `sam@${DOMAIN}/out`, 'the sender');
    assert.ok(h.attrs.node);
  }
  const nodes = headers.map((h) => h.attrs.node!);

  // Initial presence now brings no flood.
  rosa.write('<presence/>');
  await rosa.waitFor((el) => el.name === 'presence', 'own presence');
  await rosa.expectNone((el) => el.name === 'message', 300, 'offline flood');

  // View the second: the message (marked with its node, delayed) comes before the result.
  const viewed = await iq(rosa, 'get', `<offline xmlns='${FLEX}'><item action='view' node='${nodes[1]}'/></offline>`);
  assert.equal(viewed.attrs.type, 'result');
  const msgs = rosa.received.filter((el) => el.name === 'message');
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0]!.getChildText('body'), 'two');
  assert.equal(msgs[0]!.getChild('offline', FLEX)?.getChild('item')?.attrs.node, nodes[1]);
  assert.ok(msgs[0]!.getChild('delay', 'urn:xmpp:delay'));
  assert.ok(rosa.received.indexOf(msgs[0]!) < rosa.received.indexOf(viewed), 'message before the IQ result');
  assert.equal(await count(rosa), '3', 'viewing does not remove');

  // Remove it; unknown nodes are item-not-found.
  assert.equal((await iq(rosa, 'set', `<offline xmlns='${FLEX}'><item action='remove' node='${nodes[1]}'/></offline>`)).attrs.type, 'result');
  assert.equal(await count(rosa), '2');
  for (const bad of [nodes[1], '999999', 'abc']) {
    const r = await iq(rosa, 'get', `<offline xmlns='${FLEX}'><item action='view' node='${bad}'/></offline>`);
    assert.ok(r.getChild('error')?.getChild('item-not-found', STANZAS), `view ${bad}`);
  }
  const badAction = await iq(rosa, 'set', `<offline xmlns='${FLEX}'><item action='view' node='${nodes[0]}'/></offline>`);
  assert.ok(badAction.getChild('error')?.getChild('bad-request', STANZAS));

  // Another resource coming online while this one reads: no flood for it either.
  const tablet = await login('rosa', 'tablet');
  tablet.write('<presence/>');
  await tablet.waitFor((el) => el.name === 'presence' && el.attrs.from === `rosa@${DOMAIN}/tablet`, 'own presence');
  await tablet.expectNone((el) => el.name === 'message', 300, 'offline flood to the second resource');

  // Fetch all that is left, then purge.
  const before = rosa.received.filter((el) => el.name === 'message').length;
  assert.equal((await iq(rosa, 'get', `<offline xmlns='${FLEX}'><fetch/></offline>`)).attrs.type, 'result');
  const fetched = rosa.received.filter((el) => el.name === 'message').slice(before);
  assert.deepEqual(
    fetched.map((m) => m.getChildText('body')),
    ['one', 'three'],
  );
  assert.equal(await count(rosa), '2', 'fetching does not remove');
  assert.equal((await iq(rosa, 'set', `<offline xmlns='${FLEX}'><purge/></offline>`)).attrs.type, 'result');
  assert.equal(await count(rosa), '0');
  assert.equal((await iq(rosa, 'get', `<query xmlns='${ITEMS}' node='${FLEX}'/>`)).getChild('query', ITEMS)!.getChildren('item').length, 0);
  for (const c of [rosa, tablet, sam]) c.end();
});

test('messages left on the server are flooded to the next session that does not use XEP-0013', async () => {
  const sam = await login('sam', 'out2');
  await store(sam, `una@${DOMAIN}`, ['kept']);
  const first = await login('una', 'flex');
  assert.equal(await count(first), '1');
  first.write('<presence/>');
  await first.expectNone((el) => el.name === 'message', 200, 'flood');
  first.end();
  await until('the flexible session has ended', () => ts.server.core.sessions.resources(`una@${DOMAIN}`).length === 0);
  const second = await login('una', 'plain');
  second.write('<presence/>');
  const m = await second.waitFor((el) => el.name === 'message', 'flood at initial presence');
  assert.equal(m.getChildText('body'), 'kept');
  second.end();
  sam.end();
});

test("another user cannot read someone's offline messages", async () => {
  const tom = await login('tom', 'nosy');
  const info = await iq(tom, 'get', `<query xmlns='${INFO}' node='${FLEX}'/>`, `rosa@${DOMAIN}`);
  assert.ok(info.getChild('error'), 'disco of another account is refused');
  const fetch = await iq(tom, 'get', `<offline xmlns='${FLEX}'><fetch/></offline>`, `rosa@${DOMAIN}`);
  assert.ok(fetch.getChild('error')?.getChild('forbidden', STANZAS));
  tom.end();
});
