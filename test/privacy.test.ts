/**
 * Privacy lists (XEP-0016), blocking (XEP-0191) and invisibility (XEP-0186, XEP-0126)
 * through real clients over TCP and WebSocket, and the leak tests: whatever a blocked
 * contact or a contact of an invisible user tries, what it sees is what it would see for
 * an account that does not exist, or for an offline one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, makeClient, TestClient, xml, type Element } from './helpers/client.js';
import { Jid } from '../src/xmpp/jid.js';
import type { RosterItem } from '../src/modules/roster/api.js';

// @xmpp/websocket uses the global WebSocket, which Node 20 does not have.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

const PRIVACY = 'jabber:iq:privacy';
const BLOCKING = 'urn:xmpp:blocking';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** PLAIN over STARTTLS: the server's login cache keeps the many logins of this file fast. */
async function login(username: string, resource = 'phone', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence, mechanism: 'PLAIN' });
  open.push(c);
  return c;
}

/** The same client library over WebSocket (RFC 7395). */
async function loginWs(username: string, resource = 'phone', presence = true): Promise<TestClient> {
  const xmpp = makeClient({ port: ts.port, username, resource });
  xmpp.options.service = `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`;
  const c = new TestClient(xmpp);
  c.jid = String(await xmpp.start({ service: `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, domain: DOMAIN }));
  if (presence) await xmpp.send(xml('presence'));
  open.push(c);
  return c;
}

/** Mutual subscription (and groups) set up on the server side, before the users log in. */
async function befriend(a: string, b: string, groupsOfBForA: string[] = []): Promise<void> {
  const roster = ts.server.core.service('roster');
  const item = (contact: string, groups: string[]): RosterItem => ({
    jid: jid(contact),
    name: null,
    subscription: 'both',
    groups,
    askOut: false,
    askIn: false,
    askInStanza: null,
    approved: false,
    inRoster: true,
  });
  await roster.update(Jid.parse(jid(a)), jid(b), () => item(b, groupsOfBForA));
  await roster.update(Jid.parse(jid(b)), jid(a), () => item(a, []));
}

const errorOf = (el: Element) => el.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS)?.name;

/** Fails if a stanza matching `pred` arrived after index `start` (or arrives within `ms`). */
async function noneSince(c: TestClient, start: number, pred: (el: Element) => boolean, ms: number, what: string): Promise<void> {
  await sleep(ms);
  const hit = c.received.slice(start).find(pred);
  if (hit) throw new Error(`${c.jid}: unexpected ${what}: ${hit.toString()}`);
}

function iqSet(child: Element): Element {
  return xml('iq', { type: 'set' }, child);
}

async function ok(c: TestClient, el: Element): Promise<Element> {
  const r = await c.iq(el);
  assert.equal(r.attrs.type, 'result', `expected a result, got ${r.toString()}`);
  return r;
}

async function fails(c: TestClient, el: Element, condition: string): Promise<void> {
  const r = await c.iq(el);
  assert.equal(r.attrs.type, 'error', r.toString());
  assert.equal(errorOf(r), condition, r.toString());
}

const availableFrom = (full: string) => (p: Element) => p.name === 'presence' && p.attrs.from === full && p.attrs.type === undefined;
const unavailableFrom = (full: string) => (p: Element) => p.name === 'presence' && p.attrs.from === full && p.attrs.type === 'unavailable';
const fromUser = (user: string) => (el: Element) => (el.attrs.from ?? '').split('/')[0] === jid(user);

function privacyList(name: string, ...items: Array<Record<string, string> & { kinds?: string }>): Element {
  return xml(
    'query',
    { xmlns: PRIVACY },
    xml('list', { name }, ...items.map(({ kinds, ...attrs }) => xml('item', attrs, ...(kinds ? kinds.split(' ').map((k) => xml(k)) : [])))),
  );
}

before(async () => {
  ts = await startTestServer();
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivy', 'jack', 'kate', 'liam', 'mia', 'ned', 'olga', 'pete', 'quinn', 'rita', 'sam', 'tess'];
  for (const u of users) await ts.addUser(u);
  await befriend('alice', 'bob');
  await befriend('bob', 'carol');
  await befriend('bob', 'dave');
  await befriend('bob', 'erin');
  await befriend('gina', 'hank', ['Enemies']);
  await befriend('gina', 'ivy');
  await befriend('jack', 'kate');
  await befriend('liam', 'mia');
  await befriend('quinn', 'rita');
  await befriend('sam', 'tess');
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

test('the server announces blocking, privacy lists and the invisible command', async () => {
  const c = await login('pete', 'disco', false);
  const r = await ok(c, xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = r.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [BLOCKING, PRIVACY, 'urn:xmpp:invisible:0', 'urn:xmpp:invisible:1']) assert.ok(features.includes(f), f);
});

// ---------------------------------------------------------------------- the leak tests

/**
 * Everything a contact can send to find out about a user, addressed to `target` (with a
 * resource named "phone"). Returns what came back from the target's address, in a form
 * that does not name the target, sorted.
 */
async function probeAll(prober: TestClient, target: string): Promise<string[]> {
  const bare = jid(target);
  const full = `${bare}/phone`;
  const start = prober.received.length;
  const q = (ns: string, name = 'query') => xml(name, { xmlns: ns });
  const stanzas = [
    xml('message', { to: bare, type: 'chat', id: 'm-bare' }, xml('body', null, 'are you there?')),
    xml('message', { to: full, type: 'chat', id: 'm-full' }, xml('body', null, 'are you there?')),
    xml('message', { to: bare, id: 'm-normal' }, xml('body', null, 'normal')),
    xml('message', { to: bare, type: 'headline', id: 'm-headline' }, xml('body', null, 'news')),
    xml('message', { to: bare, type: 'groupchat', id: 'm-groupchat' }, xml('body', null, 'room')),
    xml('iq', { to: bare, type: 'get', id: 'i-info-bare' }, q('http://jabber.org/protocol/disco#info')),
    xml('iq', { to: bare, type: 'get', id: 'i-items-bare' }, q('http://jabber.org/protocol/disco#items')),
    xml('iq', { to: bare, type: 'get', id: 'i-version-bare' }, q('jabber:iq:version')),
    xml('iq', { to: bare, type: 'get', id: 'i-vcard-bare' }, q('vcard-temp', 'vCard')),
    xml('iq', { to: bare, type: 'get', id: 'i-roster-bare' }, q('jabber:iq:roster')),
    xml('iq', { to: full, type: 'get', id: 'i-info-full' }, q('http://jabber.org/protocol/disco#info')),
    xml('iq', { to: full, type: 'get', id: 'i-version-full' }, q('jabber:iq:version')),
    xml('iq', { to: full, type: 'get', id: 'i-ping-full' }, q('urn:xmpp:ping', 'ping')),
    xml('iq', { to: full, type: 'set', id: 'i-set-full' }, q('jabber:iq:private')),
    xml('iq', { to: full, type: 'result', id: 'i-result-full' }),
    xml('presence', { to: bare, type: 'probe' }),
    xml('presence', { to: full }),
    xml('presence', { to: bare, type: 'subscribe' }),
  ];
  for (const s of stanzas) await prober.send(s);
  await sleep(600);
  return prober.received
    .slice(start)
    .filter(fromUser(target))
    .map((el) => el.toString().split(bare).join('TARGET').replace(/ to="[^"]*"/, ''))
    .sort();
}

test('leak test: a blocked contact sees exactly what it sees for an account that does not exist (TCP)', async () => {
  const alice = await login('alice');
  const bob = await login('bob');
  await bob.presence(availableFrom(`${jid('alice')}/phone`), 'alice available before the block');
  await ok(alice, iqSet(xml('block', { xmlns: BLOCKING }, xml('item', { jid: jid('bob') }))));
  // XEP-0191 §3.3: the blocked contact is told the user went offline.
  await bob.presence(unavailableFrom(`${jid('alice')}/phone`), 'unavailable on block');
  const afterBlock = alice.received.length;

  const blocked = await probeAll(bob, 'alice');
  const nobody = await probeAll(bob, 'nobody');
  assert.deepEqual(blocked, nobody);
  // Not vacuous: every message and get/set IQ was refused with service-unavailable.
  assert.equal(blocked.length, 13, blocked.join('\n'));
  assert.ok(blocked.every((s) => s.includes('type="error"') && s.includes('<service-unavailable')), blocked.join('\n'));
  assert.ok(blocked.some((s) => s.includes('id="m-full"') && s.includes('from="TARGET"')), 'a message to a full JID is refused from the bare JID');
  await noneSince(alice, afterBlock, fromUser('bob'), 300, 'anything from the blocked contact');

  // The same once the blocker is offline.
  await alice.stop();
  await sleep(200);
  assert.deepEqual(await probeAll(bob, 'alice'), nobody);
});

test('leak test: a contact of an invisible user sees exactly what it sees for an offline user (WebSocket)', async () => {
  const dave = await loginWs('dave');
  const bob = await login('bob', 'probe');
  await bob.presence(availableFrom(`${jid('dave')}/phone`), 'dave available');
  await ok(dave, iqSet(xml('invisible', { xmlns: 'urn:xmpp:invisible:0' })));
  await bob.presence(unavailableFrom(`${jid('dave')}/phone`), 'unavailable when dave goes invisible');
  // Presence updates while invisible go nowhere.
  await dave.send(xml('presence', null, xml('status', null, 'hiding')));

  const invisible = await probeAll(bob, 'dave');
  const offline = await probeAll(bob, 'carol'); // carol exists and is offline
  assert.deepEqual(invisible, offline);
  assert.ok(invisible.some((s) => s.includes('<presence') && s.includes('type="unavailable"') && s.includes('from="TARGET"')), 'the probe is answered as for an offline user');
  assert.ok(invisible.some((s) => s.includes('id="i-ping-full"') && s.includes('<service-unavailable')), 'an IQ to the full JID finds no resource');
  assert.ok(!invisible.some((s) => s.includes('hiding')), 'no presence of the invisible user');
  // The invisible user got what was sent to it: messages to the bare and to the full JID.
  await dave.waitFor((el) => el.name === 'message' && el.attrs.id === 'm-bare', 2000, 'message to the bare JID');
  await dave.waitFor((el) => el.name === 'message' && el.attrs.id === 'm-full', 2000, 'message to the full JID');
  // ...and sees everyone: bob's presence changes reach it.
  await bob.send(xml('presence', null, xml('status', null, 'bob here')));
  await dave.presence((p) => p.getChildText('status') === 'bob here', 'bob seen while invisible');
});

// ---------------------------------------------------------------------- XEP-0191

test('block, blocklist, pushes to the resources that asked, errors both ways, unblock and unblock-all', async () => {
  const a1 = await login('jack', 'one');
  const a2 = await login('jack', 'two');
  const kate = await login('kate');
  await kate.presence(availableFrom(`${jid('jack')}/one`));
  await a1.presence(availableFrom(`${jid('kate')}/phone`));
  const list = async () => (await ok(a1, xml('iq', { type: 'get' }, xml('blocklist', { xmlns: BLOCKING })))).getChild('blocklist', BLOCKING)!.getChildren('item').map((i) => i.attrs.jid);
  assert.deepEqual(await list(), []);

  const push = a1.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && !!el.getChild('block', BLOCKING), 3000, 'block push');
  await ok(a2, iqSet(xml('block', { xmlns: BLOCKING }, xml('item', { jid: jid('kate') }), xml('item', { jid: 'spam.example' }))));
  const pushed = await push;
  assert.deepEqual(pushed.getChild('block', BLOCKING)!.getChildren('item').map((i) => i.attrs.jid).sort(), [jid('kate'), 'spam.example']);
  await a2.expectNone((el) => el.name === 'iq' && !!el.getChild('block', BLOCKING), 200, 'a push to a resource that never asked for the blocklist');
  assert.deepEqual((await list()).sort(), [jid('kate'), 'spam.example']);
  // Both of jack's resources go offline for kate, and kate goes offline for jack.
  await kate.presence(unavailableFrom(`${jid('jack')}/one`));
  await kate.presence(unavailableFrom(`${jid('jack')}/two`));
  await a1.presence(unavailableFrom(`${jid('kate')}/phone`));

  // The user writing to someone they blocked: not-acceptable with <blocked/>.
  await a1.send(xml('message', { to: jid('kate'), type: 'chat', id: 'out1' }, xml('body', null, 'hi')));
  const err = await a1.waitFor((el) => el.name === 'message' && el.attrs.id === 'out1', 3000, 'blocked error');
  assert.equal(err.attrs.type, 'error');
  assert.equal(errorOf(err), 'not-acceptable');
  assert.ok(err.getChild('error')!.getChild('blocked', 'urn:xmpp:blocking:errors'));
  // …and a text the client can show (as Prosody sends), issue 23.
  assert.equal(err.getChild('error')!.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'You have blocked this contact');
  const iqErr = await a1.iq(xml('iq', { type: 'get', to: `${jid('kate')}/phone` }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  assert.equal(errorOf(iqErr), 'not-acceptable');
  await kate.expectNone((el) => el.name !== 'presence' && fromUser('jack')(el), 200, 'stanza from the blocker');
  // Blocked contact's presence updates do not reach the user.
  await kate.send(xml('presence', null, xml('status', null, 'let me in')));
  await a1.expectNone((p) => p.name === 'presence' && p.getChildText('status') === 'let me in', 300, 'presence of a blocked contact');

  // Unblock: pushed, presence comes back both ways, messages flow.
  const unpush = a1.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && !!el.getChild('unblock', BLOCKING), 3000, 'unblock push');
  await ok(a1, iqSet(xml('unblock', { xmlns: BLOCKING }, xml('item', { jid: jid('kate') }))));
  assert.deepEqual((await unpush).getChild('unblock', BLOCKING)!.getChildren('item').map((i) => i.attrs.jid), [jid('kate')]);
  await kate.presence(availableFrom(`${jid('jack')}/one`), 'jack back for kate');
  await a1.presence((p) => p.attrs.from === `${jid('kate')}/phone` && p.getChildText('status') === 'let me in', 'kate back for jack');
  await kate.send(xml('message', { to: jid('jack'), type: 'chat', id: 'k2' }, xml('body', null, 'friends again')));
  await a1.waitFor((el) => el.name === 'message' && el.attrs.id === 'k2', 3000, 'message after unblock');
  assert.deepEqual(await list(), ['spam.example']);

  // Unblock all: an empty unblock, pushed as such.
  const allPush = a1.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && !!el.getChild('unblock', BLOCKING), 3000, 'unblock-all push');
  await ok(a1, iqSet(xml('unblock', { xmlns: BLOCKING })));
  assert.equal((await allPush).getChild('unblock', BLOCKING)!.getChildren('item').length, 0);
  assert.deepEqual(await list(), []);
});

test('bad blocking commands get the XEP-0191 errors; nobody reads another account’s blocklist', async () => {
  const c = await login('pete', 'bad');
  await fails(c, iqSet(xml('block', { xmlns: BLOCKING })), 'bad-request');
  await fails(c, iqSet(xml('block', { xmlns: BLOCKING }, xml('item', { jid: 'a@b@c' }))), 'jid-malformed');
  await fails(c, iqSet(xml('block', { xmlns: BLOCKING }, xml('item', { jid: jid('pete') }))), 'not-acceptable');
  await fails(c, xml('iq', { type: 'get', to: jid('alice') }, xml('blocklist', { xmlns: BLOCKING })), 'service-unavailable');
});

// ---------------------------------------------------------------------- XEP-0016

test('privacy lists: names, get, edit with pushes, remove; bad lists are refused', async () => {
  const r1 = await login('ned', 'one');
  const r2 = await login('ned', 'two');
  const names = async () => (await ok(r1, xml('iq', { type: 'get' }, xml('query', { xmlns: PRIVACY })))).getChild('query', PRIVACY)!;
  assert.deepEqual((await names()).getChildren('list'), []);
  await ok(r2, xml('iq', { type: 'get' }, xml('query', { xmlns: PRIVACY }))); // r2 uses privacy lists too

  const push1 = r1.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', PRIVACY)?.getChild('list')?.attrs.name === 'public', 3000, 'push to r1');
  const push2 = r2.waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', PRIVACY)?.getChild('list')?.attrs.name === 'public', 3000, 'push to r2');
  await ok(
    r1,
    iqSet(
      privacyList(
        'public',
        { type: 'jid', value: 'tybalt@example.com', action: 'deny', order: '3' },
        { type: 'subscription', value: 'none', action: 'deny', order: '5', kinds: 'message presence-in' },
        { action: 'allow', order: '68' },
      ),
    ),
  );
  await push1;
  await push2;
  const got = (await ok(r1, xml('iq', { type: 'get' }, xml('query', { xmlns: PRIVACY }, xml('list', { name: 'public' }))))).getChild('query', PRIVACY)!.getChild('list')!;
  const items = got.getChildren('item');
  assert.deepEqual(
    items.map((i) => [i.attrs.type, i.attrs.value, i.attrs.action, i.attrs.order, i.children.map((c) => (typeof c === 'string' ? c : c.name)).join(' ')]),
    [
      ['jid', 'tybalt@example.com', 'deny', '3', ''],
      ['subscription', 'none', 'deny', '5', 'message presence-in'],
      [undefined, undefined, 'allow', '68', ''],
    ],
  );
  assert.deepEqual((await names()).getChildren('list').map((l) => l.attrs.name), ['public']);

  await fails(r1, xml('iq', { type: 'get' }, xml('query', { xmlns: PRIVACY }, xml('list', { name: 'nope' }))), 'item-not-found');
  await fails(r1, xml('iq', { type: 'get' }, xml('query', { xmlns: PRIVACY }, xml('list', { name: 'a' }), xml('list', { name: 'b' }))), 'bad-request');
  await fails(r1, iqSet(privacyList('x', { action: 'deny', order: '1' }, { action: 'allow', order: '1' })), 'bad-request');
  await fails(r1, iqSet(privacyList('x', { order: '1' })), 'bad-request');
  await fails(r1, iqSet(privacyList('x', { action: 'deny', order: '-1' })), 'bad-request');
  await fails(r1, iqSet(privacyList('x', { type: 'subscription', value: 'sometimes', action: 'deny', order: '1' })), 'bad-request');
  await fails(r1, iqSet(privacyList('x', { type: 'group', value: 'No Such Group', action: 'deny', order: '1' })), 'item-not-found');
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('active', { name: 'public' }), xml('default', { name: 'public' }))), 'bad-request');
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('active', { name: 'nope' }))), 'item-not-found');
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('default', { name: 'nope' }))), 'item-not-found');
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('list', { name: 'nope' }))), 'item-not-found');

  // Default and active, and the conflict rules (XEP-0016 §2.2 rule 11).
  await ok(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('default', { name: 'public' }))));
  await ok(r1, iqSet(privacyList('other', { action: 'allow', order: '1' })));
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('default', { name: 'other' }))), 'conflict'); // r2 runs on the default
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('list', { name: 'public' }))), 'conflict');
  await ok(r2, iqSet(xml('query', { xmlns: PRIVACY }, xml('active', { name: 'other' }))));
  await fails(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('list', { name: 'other' }))), 'conflict'); // r2's active list
  await ok(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('default', { name: 'other' }))));
  const q = await names();
  assert.equal(q.getChild('default')?.attrs.name, 'other');
  assert.equal(q.getChild('active'), undefined, 'r1 has no active list');
  await ok(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('default'))));
  await ok(r2, iqSet(xml('query', { xmlns: PRIVACY }, xml('active'))));
  await ok(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('list', { name: 'public' }))));
  await ok(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('list', { name: 'other' }))));
  assert.deepEqual((await names()).getChildren('list'), []);
});

test('privacy lists enforce message, iq, presence-in and presence-out rules by jid, group and subscription', async () => {
  // gina: hank is in her group "Enemies", ivy is a plain contact; frank is a stranger.
  const gina = await login('gina');
  const hank = await login('hank');
  const ivy = await login('ivy');
  const frank = await login('frank');
  await gina.presence(availableFrom(`${jid('ivy')}/phone`));
  await gina.presence(availableFrom(`${jid('hank')}/phone`));
  await ivy.presence(availableFrom(`${jid('gina')}/phone`));
  await ok(
    gina,
    iqSet(
      privacyList(
        'rules',
        { type: 'jid', value: jid('frank'), action: 'deny', order: '1', kinds: 'message' },
        { type: 'group', value: 'Enemies', action: 'deny', order: '2', kinds: 'iq' },
        { type: 'subscription', value: 'both', action: 'deny', order: '3', kinds: 'presence-in' },
        { type: 'jid', value: jid('ivy'), action: 'deny', order: '4', kinds: 'presence-out' },
      ),
    ),
  );
  await ok(gina, iqSet(xml('query', { xmlns: PRIVACY }, xml('default', { name: 'rules' }))));
  // presence-in by subscription: gina no longer sees her contacts (and is told they left).
  await gina.presence(unavailableFrom(`${jid('ivy')}/phone`), 'ivy gone for gina');
  await gina.presence(unavailableFrom(`${jid('hank')}/phone`), 'hank gone for gina');
  // presence-out by jid: ivy no longer sees gina.
  await ivy.presence(unavailableFrom(`${jid('gina')}/phone`), 'gina gone for ivy');

  // message by jid: frank's message is refused as if gina did not exist; hank's goes through.
  await frank.send(xml('message', { to: jid('gina'), type: 'chat', id: 'f1' }, xml('body', null, 'hi')));
  const err = await frank.waitFor((el) => el.attrs.id === 'f1', 3000, 'refusal');
  assert.equal(errorOf(err), 'service-unavailable');
  await hank.send(xml('message', { to: jid('gina'), type: 'chat', id: 'h1' }, xml('body', null, 'hi')));
  await gina.waitFor((el) => el.attrs.id === 'h1', 3000, 'hank message');
  // iq by group: hank's IQ to gina's full JID is refused; frank's is delivered.
  await hank.send(xml('iq', { type: 'get', to: `${jid('gina')}/phone`, id: 'hank-iq' }, xml('query', { xmlns: 'jabber:iq:version' })));
  const hq = await hank.waitFor((el) => el.attrs.id === 'hank-iq', 3000, 'refused IQ');
  assert.equal(errorOf(hq), 'service-unavailable');
  await frank.send(xml('iq', { type: 'get', to: `${jid('gina')}/phone`, id: 'frank-iq' }, xml('query', { xmlns: 'jabber:iq:version' })));
  await gina.waitFor((el) => el.name === 'iq' && el.attrs.id === 'frank-iq', 3000, 'frank IQ delivered');
  await noneSince(gina, 0, (el) => el.attrs.id === 'hank-iq', 0, 'hank IQ delivered');
  // presence-in: ivy's update does not reach gina; presence-out: gina's update does not reach ivy but reaches hank.
  await ivy.send(xml('presence', null, xml('status', null, 'ivy update')));
  await gina.send(xml('presence', null, xml('status', null, 'gina update')));
  await hank.presence((p) => p.getChildText('status') === 'gina update', 'hank sees gina');
  await gina.expectNone((p) => p.name === 'presence' && p.getChildText('status') === 'ivy update', 300, 'presence-in leak');
  await ivy.expectNone((p) => p.name === 'presence' && p.getChildText('status') === 'gina update', 0, 'presence-out leak');
  // ivy probing gets what an offline gina would give.
  await ivy.send(xml('presence', { to: jid('gina'), type: 'probe' }));
  const answer = await ivy.presence((p) => fromUser('gina')(p), 'probe answer');
  assert.equal(answer.attrs.type, 'unavailable');
  assert.equal(answer.attrs.from, jid('gina'));
  // A list that is not applied changes nothing; the default list off: everything flows again.
  await ok(gina, iqSet(xml('query', { xmlns: PRIVACY }, xml('default'))));
  await ivy.presence((p) => p.attrs.from === `${jid('gina')}/phone` && p.getChildText('status') === 'gina update', 'gina back for ivy');
  await gina.presence((p) => p.attrs.from === `${jid('ivy')}/phone` && p.getChildText('status') === 'ivy update', 'ivy back for gina');
});

test('an active list applies to its resource only; the default list to the others', async () => {
  const r1 = await login('liam', 'one');
  const r2 = await login('liam', 'two');
  const mia = await login('mia');
  await ok(r1, iqSet(privacyList('quiet', { type: 'jid', value: jid('mia'), action: 'deny', order: '1', kinds: 'message' })));
  await ok(r1, iqSet(xml('query', { xmlns: PRIVACY }, xml('active', { name: 'quiet' }))));
  await mia.send(xml('message', { to: `${jid('liam')}/one`, type: 'chat', id: 'to-one' }, xml('body', null, 'one')));
  const err = await mia.waitFor((el) => el.attrs.id === 'to-one', 3000, 'refusal by the active list');
  assert.equal(errorOf(err), 'service-unavailable');
  await mia.send(xml('message', { to: `${jid('liam')}/two`, type: 'chat', id: 'to-two' }, xml('body', null, 'two')));
  await r2.waitFor((el) => el.attrs.id === 'to-two', 3000, 'message to the resource without the list');
  await mia.send(xml('message', { to: jid('liam'), type: 'chat', id: 'to-bare' }, xml('body', null, 'bare')));
  await r2.waitFor((el) => el.attrs.id === 'to-bare', 3000, 'bare message to the resource that takes it');
  await r1.expectNone((el) => el.attrs.id === 'to-bare' || el.attrs.id === 'to-one', 200, 'message through the active list');
});

// ---------------------------------------------------------------------- invisibility

test('invisible, a third user probing or addressed, then visible: presence goes out once (XEP-0186)', async () => {
  const erin = await login('erin');
  const bob = await login('bob', 'third');
  await bob.presence(availableFrom(`${jid('erin')}/phone`));
  await ok(erin, iqSet(xml('invisible', { xmlns: 'urn:xmpp:invisible:1', probe: 'true' })));
  await bob.presence(unavailableFrom(`${jid('erin')}/phone`), 'erin gone');
  await erin.send(xml('presence', null, xml('show', null, 'dnd')));
  await bob.send(xml('presence', { to: jid('erin'), type: 'probe' }));
  const ans = await bob.presence((p) => fromUser('erin')(p), 'probe answer');
  assert.deepEqual([ans.attrs.from, ans.attrs.type], [jid('erin'), 'unavailable']);
  // Directed presence from the invisible user is refused (issue 18: stricter than XEP-0186 §3.1.1).
  await erin.send(xml('presence', { to: `${jid('bob')}/third`, id: 'directed' }, xml('status', null, 'just for you')));
  const refused = await erin.presence((p) => p.attrs.id === 'directed' && p.attrs.type === 'error', 'directed presence refused');
  assert.equal(errorOf(refused), 'not-acceptable');
  await bob.expectNone((p) => p.getChildText('status') === 'just for you', 200, 'directed presence of an invisible user');
  // Visible again: bob gets erin's current presence exactly once, even when the client sends it again.
  await ok(erin, iqSet(xml('visible', { xmlns: 'urn:xmpp:invisible:1' })));
  await erin.send(xml('presence', null, xml('show', null, 'dnd')));
  await sleep(400);
  const seen = bob.received.filter((p) => p.name === 'presence' && p.attrs.from === `${jid('erin')}/phone` && p.getChildText('show') === 'dnd');
  assert.equal(seen.length, 1, seen.map(String).join('\n'));
  await bob.send(xml('presence', { to: jid('erin'), type: 'probe' }));
  await bob.presence((p) => p.attrs.from === `${jid('erin')}/phone` && p.attrs.type === undefined, 'probe answer when visible');
});

test('invisible before initial presence: probe="false" gets no contacts’ presence, probe="true" does; nobody sees the user', async () => {
  const olga = await login('tess');
  const quiet = await login('sam', 'quiet', false);
  await ok(quiet, iqSet(xml('invisible', { xmlns: 'urn:xmpp:invisible:1', probe: 'false' })));
  await quiet.send(xml('presence'));
  await quiet.expectNone(availableFrom(`${jid('tess')}/phone`), 300, 'contact presence with probe=false');
  const seeing = await login('sam', 'seeing', false);
  await ok(seeing, iqSet(xml('invisible', { xmlns: 'urn:xmpp:invisible:1', probe: 'true' })));
  await seeing.send(xml('presence'));
  await seeing.presence(availableFrom(`${jid('tess')}/phone`), 'contact presence with probe=true');
  await olga.expectNone((p) => p.name === 'presence' && fromUser('sam')(p) && p.attrs.type === undefined, 300, 'presence of an invisible user');
  // Going visible with probe=false: the contacts' presence comes then.
  await ok(quiet, iqSet(xml('visible', { xmlns: 'urn:xmpp:invisible:1' })));
  await quiet.presence(availableFrom(`${jid('tess')}/phone`), 'contact presence after visible');
  await olga.presence(availableFrom(`${jid('sam')}/quiet`), 'sam/quiet visible');
  await olga.expectNone(availableFrom(`${jid('sam')}/seeing`), 200, 'the other invisible resource');
  await fails(quiet, iqSet(xml('invisible', { xmlns: 'urn:xmpp:invisible:1', probe: 'maybe' })), 'bad-request');
});

test('invisibility through a privacy list (XEP-0126): presence-out denied to all, probes answered as offline', async () => {
  const alice = await login('quinn', 'list');
  const bob = await login('rita', 'list');
  await bob.presence(availableFrom(`${jid('quinn')}/list`));
  await ok(alice, iqSet(privacyList('invisible', { action: 'deny', order: '1', kinds: 'presence-out' })));
  await ok(alice, iqSet(xml('query', { xmlns: PRIVACY }, xml('active', { name: 'invisible' }))));
  await bob.presence(unavailableFrom(`${jid('quinn')}/list`), 'quinn invisible');
  await alice.send(xml('presence', null, xml('status', null, 'hidden')));
  await bob.send(xml('presence', { to: jid('quinn'), type: 'probe' }));
  const ans = await bob.presence((p) => fromUser('quinn')(p) && p.attrs.type === 'unavailable' && p.attrs.from === jid('quinn'), 'probe answer');
  assert.ok(ans);
  await bob.expectNone((p) => p.name === 'presence' && p.getChildText('status') === 'hidden', 200, 'presence through the invisible list');
  // Visible: the active list declined; presence goes out once.
  await ok(alice, iqSet(xml('query', { xmlns: PRIVACY }, xml('active'))));
  await alice.send(xml('presence', null, xml('status', null, 'hidden')));
  await sleep(400);
  assert.equal(bob.received.filter((p) => p.name === 'presence' && p.attrs.from === `${jid('quinn')}/list` && p.getChildText('status') === 'hidden').length, 1);
});
