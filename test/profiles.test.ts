/**
 * Profiles through real clients (@xmpp/client over TCP and over WebSocket): vCards
 * (XEP-0054), avatar hashes in presence (XEP-0153), PEP (XEP-0163) with avatars
 * (XEP-0084) and notifications filtered by entity capabilities (XEP-0115), and the
 * conversion between vCard photos and PEP avatars (XEP-0398).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
// @ts-expect-error @xmpp/client ships no type declarations
import { client as xmppClient } from '@xmpp/client';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { befriend, connectClient, TestClient, xml, type Element } from './helpers/client.js';

// @xmpp/websocket uses the global WebSocket, which Node 20 does not have yet.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

const VCARD = 'vcard-temp';
const UPDATE = 'vcard-temp:x:update';
const PUBSUB = 'http://jabber.org/protocol/pubsub';
const OWNER = 'http://jabber.org/protocol/pubsub#owner';
const EVENT = 'http://jabber.org/protocol/pubsub#event';
const ERRORS = 'http://jabber.org/protocol/pubsub#errors';
const DISCO = 'http://jabber.org/protocol/disco#info';
const CAPS = 'http://jabber.org/protocol/caps';
const DATA = 'urn:xmpp:avatar:data';
const META = 'urn:xmpp:avatar:metadata';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;

/** A tiny "image" per name, and its XEP-0153/XEP-0084 hash. */
function image(name: string): { data: Buffer; b64: string; hash: string } {
  const data = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from(`image of ${name}`)]);
  return { data, b64: data.toString('base64'), hash: createHash('sha1').update(data).digest('hex') };
}

before(async () => {
  ts = await startTestServer({ vcard: { maxSize: '8KiB' } });
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'ken', 'liz', 'mallory', 'nina', 'oscar', 'pat', 'quinn', 'rita']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

async function tcp(username: string, resource = 'tcp', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence });
  open.push(c);
  return c;
}

/** @xmpp/client over WebSocket (RFC 7395). */
async function ws(username: string, resource = 'ws'): Promise<TestClient> {
  const xmpp = xmppClient({
    service: `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`,
    domain: DOMAIN,
    resource,
    credentials: async (authenticate: (c: unknown, m: string) => Promise<void>, mechanisms: string[]) => {
      await authenticate({ username, password: 'secret' }, mechanisms.find((m) => m.startsWith('SCRAM')) ?? mechanisms[0]!);
    },
  });
  // A loaded 2-core machine (tests in parallel) can take more than the default 2 s to answer a stream open.
  xmpp.timeout = 10_000;
  xmpp.reconnect.stop();
  const c = new TestClient(xmpp);
  c.jid = String(await xmpp.start());
  await xmpp.send(xml('presence'));
  open.push(c);
  return c;
}

/** A client that answers disco#info with these `+notify` interests and advertises them through caps (XEP-0115). */
async function withCaps(c: TestClient, notify: string[], node = 'https://parley.test/client'): Promise<void> {
  const features = [DISCO, CAPS, ...notify.map((n) => `${n}+notify`)].sort();
  const s = 'client/pc//Test<' + features.map((f) => f + '<').join('');
  const ver = createHash('sha1').update(s).digest('base64');
  c.xmpp.iqCallee.get(DISCO, 'query', (ctx: { element: Element }) =>
    xml('query', { xmlns: DISCO, node: ctx.element.attrs.node }, xml('identity', { category: 'client', type: 'pc', name: 'Test' }), ...features.map((f) => xml('feature', { var: f }))),
  );
  await c.send(xml('presence', null, xml('c', { xmlns: CAPS, hash: 'sha-1', node, ver })));
}


const vcardGet = (c: TestClient, to?: string) => c.iq(xml('iq', { type: 'get', to }, xml('vCard', { xmlns: VCARD })));
const vcardSet = (c: TestClient, children: unknown[], to?: string) => c.iq(xml('iq', { type: 'set', to }, xml('vCard', { xmlns: VCARD }, ...children)));
const photo = (img: { b64: string }) => xml('PHOTO', null, xml('TYPE', null, 'image/png'), xml('BINVAL', null, img.b64));

function condition(iq: Element): string | undefined {
  const err = iq.getChild('error');
  return err?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text')?.name;
}

function publish(c: TestClient, node: string, id: string | undefined, payload: Element, options?: Record<string, string>): Promise<Element> {
  const form = options
    ? xml(
        'publish-options',
        null,
        xml(
          'x',
          { xmlns: 'jabber:x:data', type: 'submit' },
          xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', null, `${PUBSUB}#publish-options`)),
          ...Object.entries(options).map(([k, v]) => xml('field', { var: k }, xml('value', null, v))),
        ),
      )
    : null;
  return c.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node }, xml('item', { id }, payload)), form)));
}

/** Publishes an avatar the XEP-0084 way: data first, then metadata. */
async function publishAvatar(c: TestClient, img: { b64: string; hash: string; data: Buffer }): Promise<void> {
  assert.equal((await publish(c, DATA, img.hash, xml('data', { xmlns: DATA }, img.b64))).attrs.type, 'result');
  const info = xml('info', { bytes: String(img.data.length), id: img.hash, type: 'image/png', width: '1', height: '1' });
  assert.equal((await publish(c, META, img.hash, xml('metadata', { xmlns: META }, info))).attrs.type, 'result');
}

const itemsOf = (c: TestClient, owner: string, node: string, attrs: Record<string, string> = {}, ids: string[] = []) =>
  c.iq(xml('iq', { type: 'get', to: owner }, xml('pubsub', { xmlns: PUBSUB }, xml('items', { node, ...attrs }, ...ids.map((id) => xml('item', { id }))))));

const isEvent = (from: string, node: string) => (el: Element) =>
  el.name === 'message' && el.attrs.from === from && el.getChild('event', EVENT)?.getChild('items')?.attrs.node === node;

const photoOf = (p: Element) => p.getChild('x', UPDATE)?.getChildText('photo');

// ---------------------------------------------------------------------------- vcard-temp

test('own vCard over TCP: empty at first, then what was set', async () => {
  const alice = await tcp('alice');
  const empty = await vcardGet(alice);
  assert.equal(empty.attrs.type, 'result');
  assert.equal(empty.getChild('vCard', VCARD)?.children.length, 0);
  assert.equal((await vcardSet(alice, [xml('FN', null, 'Alice Liddell'), xml('NICKNAME', null, 'al')])).attrs.type, 'result');
  const got = await vcardGet(alice);
  assert.equal(got.getChild('vCard', VCARD)?.getChildText('FN'), 'Alice Liddell');
  assert.equal(got.getChild('vCard', VCARD)?.getChildText('NICKNAME'), 'al');
});

test('another user’s vCard comes from the server; none and no such account give the same error', async () => {
  const bob = await tcp('bob');
  const carol = await tcp('carol');
  await vcardSet(bob, [xml('FN', null, 'Bob')]);
  const got = await vcardGet(carol, jid('bob'));
  assert.equal(got.attrs.type, 'result');
  assert.equal(got.attrs.from, jid('bob'));
  assert.equal(got.getChild('vCard', VCARD)?.getChildText('FN'), 'Bob');
  // The IQ is answered by the server, never forwarded to the account's client.
  await bob.expectNone((el) => el.name === 'iq' && el.attrs.from?.startsWith(jid('carol')) === true, 100, 'forwarded vCard request');

  const none = await vcardGet(bob, jid('carol'));
  const ghost = await vcardGet(bob, jid('nobody-here'));
  assert.equal(none.attrs.type, 'error');
  assert.equal(condition(none), 'service-unavailable');
  assert.equal(condition(ghost), condition(none));
  assert.equal(ghost.getChild('error')?.attrs.type, none.getChild('error')?.attrs.type);
});

test('writing another user’s vCard is forbidden and changes nothing', async () => {
  const ken = await tcp('ken');
  const liz = await tcp('liz');
  await vcardSet(liz, [xml('FN', null, 'Liz')]);
  const r = await vcardSet(ken, [xml('FN', null, 'Not Liz')], jid('liz'));
  assert.equal(r.attrs.type, 'error');
  assert.equal(condition(r), 'forbidden');
  assert.equal((await vcardGet(liz)).getChild('vCard', VCARD)?.getChildText('FN'), 'Liz');
});

test('a vCard over vcard.maxSize is not-acceptable and the old one stays', async () => {
  const mallory = await tcp('mallory');
  await vcardSet(mallory, [xml('FN', null, 'M')]);
  const r = await vcardSet(mallory, [xml('DESC', null, 'x'.repeat(9000))]);
  assert.equal(r.attrs.type, 'error');
  assert.equal(condition(r), 'not-acceptable');
  assert.equal((await vcardGet(mallory)).getChild('vCard', VCARD)?.getChildText('FN'), 'M');
});

// ---------------------------------------------------------------------------- XEP-0153

test('presence carries the photo hash, and a vCard change over WebSocket sends contacts the new one', async () => {
  const dave = await ws('dave');
  const erin = await tcp('erin');
  await befriend(dave, 'dave', erin, 'erin');
  // Whatever the client wrote, the server puts in what it knows: no photo yet.
  await dave.send(xml('presence', null, xml('status', null, 'here'), xml('x', { xmlns: UPDATE }, xml('photo', null, 'stale'))));
  const first = await erin.presence((p) => p.attrs.from === dave.jid && p.getChildText('status') === 'here', 'dave’s presence');
  assert.equal(photoOf(first), '');

  const img = image('dave');
  assert.equal((await vcardSet(dave, [xml('FN', null, 'Dave'), photo(img)])).attrs.type, 'result');
  const updated = await erin.presence((p) => p.attrs.from === dave.jid && photoOf(p) === img.hash, 'presence with the new hash');
  assert.equal(updated.getChildText('status'), 'here'); // the same presence, re-sent
  // Dave's own resource sees it too, and his next presence carries the hash without his help.
  await dave.presence((p) => p.attrs.from === dave.jid && photoOf(p) === img.hash, 'own presence with the hash');
  await dave.send(xml('presence', null, xml('show', null, 'away')));
  const next = await erin.presence((p) => p.attrs.from === dave.jid && p.getChildText('show') === 'away', 'next presence');
  assert.equal(photoOf(next), img.hash);
  // The hash is the SHA-1 of the photo: the vCard others fetch has that photo.
  const got = await vcardGet(erin, jid('dave'));
  const binval = got.getChild('vCard', VCARD)?.getChild('PHOTO')?.getChildText('BINVAL') ?? '';
  assert.equal(createHash('sha1').update(Buffer.from(binval, 'base64')).digest('hex'), img.hash);
});

// ---------------------------------------------------------------------------- PEP

test('the account announces PEP, vcard-temp and the vCard conversion', async () => {
  const pat = await tcp('pat');
  const r = await pat.iq(xml('iq', { type: 'get', to: jid('pat') }, xml('query', { xmlns: DISCO })));
  const q = r.getChild('query', DISCO)!;
  assert.ok(q.getChildren('identity').some((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'pep'));
  const features = q.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [VCARD, 'urn:xmpp:pep-vcard-conversion:0', `${PUBSUB}#publish`, `${PUBSUB}#publish-options`, `${PUBSUB}#access-presence`]) assert.ok(features.includes(f), f);
});

test('a PEP avatar reaches a contact whose client wants +notify, not a contact without it nor a stranger', async () => {
  const frank = await tcp('frank');
  const grace = await tcp('grace');
  const heidi = await ws('heidi');
  const ivan = await tcp('ivan');
  await befriend(frank, 'frank', grace, 'grace');
  await befriend(frank, 'frank', heidi, 'heidi');
  await withCaps(grace, [META]);
  await withCaps(ivan, [META]);
  // The server asks each new caps hash once, from the user's own account.
  await grace.waitFor((el) => el.name === 'iq' && el.attrs.type === 'get' && el.attrs.from === jid('grace') && el.getChild('query', DISCO) !== undefined, 5000, 'caps query');
  await new Promise((r) => setTimeout(r, 100)); // the answer is on its way back

  const img = image('frank');
  await publishAvatar(frank, img);
  const note = await grace.waitFor(isEvent(jid('frank'), META), 5000, 'avatar notification');
  const info = note.getChild('event', EVENT)!.getChild('items')!.getChild('item')!.getChild('metadata', META)!.getChild('info')!;
  assert.equal(info.attrs.id, img.hash);
  await heidi.expectNone(isEvent(jid('frank'), META), 200, 'notification without +notify');
  await ivan.expectNone(isEvent(jid('frank'), META), 0, 'notification to a stranger');

  // A contact fetches the data; a stranger may not read a presence-access node.
  const data = await itemsOf(heidi, jid('frank'), DATA, {}, [img.hash]);
  assert.equal(data.getChild('pubsub', PUBSUB)?.getChild('items')?.getChild('item')?.getChildText('data', DATA), img.b64);
  const denied = await itemsOf(ivan, jid('frank'), META);
  assert.equal(condition(denied), 'not-authorized');
  assert.ok(denied.getChild('error')?.getChild('presence-subscription-required', ERRORS));
});

test('a contact whose client wants +notify gets the last published item when it comes online', async () => {
  const nina = await tcp('nina');
  const oscar = await tcp('oscar', 'first');
  await befriend(nina, 'nina', oscar, 'oscar');
  const mood = xml('mood', { xmlns: 'http://jabber.org/protocol/mood' }, xml('happy'));
  assert.equal((await publish(nina, 'http://jabber.org/protocol/mood', 'current', mood)).attrs.type, 'result');
  const later = await tcp('oscar', 'later', false);
  await withCaps(later, ['http://jabber.org/protocol/mood'], 'https://parley.test/other');
  const last = await later.waitFor(isEvent(jid('nina'), 'http://jabber.org/protocol/mood'), 5000, 'last published item');
  assert.ok(last.getChild('event', EVENT)!.getChild('items')!.getChild('item')!.getChild('mood', 'http://jabber.org/protocol/mood'));
  assert.ok(last.getChild('delay', 'urn:xmpp:delay'));
});

test('PEP basics: publish-options preconditions, items by id and max_items, retract with notification, delete, no publishing for others', async () => {
  const ken = await tcp('ken', 'pep');
  await withCaps(ken, ['urn:test:n']);
  const node = 'urn:test:n';
  const p = (id: string) => xml('v', { xmlns: 'urn:test' }, id);
  assert.equal((await publish(ken, node, 'a', p('a'), { 'pubsub#access_model': 'open', 'pubsub#max_items': '2' })).attrs.type, 'result');
  const own = await ken.waitFor(isEvent(jid('ken'), node), 5000, 'own notification');
  assert.equal(own.getChild('event', EVENT)!.getChild('items')!.getChild('item')!.attrs.id, 'a');
  const auto = await publish(ken, node, undefined, p('generated'));
  const autoId = auto.getChild('pubsub', PUBSUB)!.getChild('publish')!.getChild('item')!.attrs.id;
  assert.ok(autoId && autoId.length > 0);
  await publish(ken, node, 'c', p('c'));
  // max_items 2: the oldest is gone; items come oldest first.
  const all = await itemsOf(ken, jid('ken'), node);
  assert.deepEqual(all.getChild('pubsub', PUBSUB)!.getChild('items')!.getChildren('item').map((i) => i.attrs.id), [autoId, 'c']);
  const newest = await itemsOf(ken, jid('ken'), node, { max_items: '1' });
  assert.deepEqual(newest.getChild('pubsub', PUBSUB)!.getChild('items')!.getChildren('item').map((i) => i.attrs.id), ['c']);

  const conflict = await publish(ken, node, 'd', p('d'), { 'pubsub#access_model': 'presence' });
  assert.equal(condition(conflict), 'conflict');
  assert.ok(conflict.getChild('error')?.getChild('precondition-not-met', ERRORS));

  // Open access: a stranger may read.
  const liz = await tcp('liz', 'pep');
  assert.equal((await itemsOf(liz, jid('ken'), node, {}, ['c'])).attrs.type, 'result');
  assert.equal(condition(await itemsOf(liz, jid('ken'), 'urn:test:none')), 'item-not-found');
  assert.equal((await publish(liz, node, 'x', p('x'))).attrs.type, 'result'); // her own node of that name
  const foreign = await liz.iq(xml('iq', { type: 'set', to: jid('ken') }, xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node }, xml('item', { id: 'x' }, p('x'))))));
  assert.equal(condition(foreign), 'forbidden');

  const retract = await ken.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: PUBSUB }, xml('retract', { node, notify: 'true' }, xml('item', { id: 'c' })))));
  assert.equal(retract.attrs.type, 'result');
  const r = await ken.waitFor((el) => isEvent(jid('ken'), node)(el) && el.getChild('event', EVENT)!.getChild('items')!.getChild('retract') !== undefined, 5000, 'retract notification');
  assert.equal(r.getChild('event', EVENT)!.getChild('items')!.getChild('retract')!.attrs.id, 'c');

  const cfg = await ken.iq(xml('iq', { type: 'get' }, xml('pubsub', { xmlns: OWNER }, xml('configure', { node }))));
  const fields = cfg.getChild('pubsub', OWNER)!.getChild('configure')!.getChild('x', 'jabber:x:data')!.getChildren('field');
  assert.equal(fields.find((f) => f.attrs.var === 'pubsub#access_model')?.getChildText('value'), 'open');
  assert.equal(fields.find((f) => f.attrs.var === 'pubsub#max_items')?.getChildText('value'), '2');

  const del = await ken.iq(xml('iq', { type: 'set' }, xml('pubsub', { xmlns: OWNER }, xml('delete', { node }))));
  assert.equal(del.attrs.type, 'result');
  await ken.waitFor((el) => el.name === 'message' && el.getChild('event', EVENT)?.getChild('delete')?.attrs.node === node, 5000, 'delete notification');
  assert.equal(condition(await itemsOf(ken, jid('ken'), node)), 'item-not-found');
});

test('a contact the owner blocked (XEP-0191) gets no PEP notification and cannot read the node', async () => {
  const quinn = await tcp('quinn');
  const rita = await tcp('rita');
  await befriend(quinn, 'quinn', rita, 'rita');
  await withCaps(rita, ['http://jabber.org/protocol/nick']);
  await rita.waitFor((el) => el.name === 'iq' && el.attrs.from === jid('rita') && el.getChild('query', DISCO) !== undefined, 5000, 'caps query');
  const nick = (n: string) => xml('nick', { xmlns: 'http://jabber.org/protocol/nick' }, n);
  await publish(quinn, 'http://jabber.org/protocol/nick', 'current', nick('Q'));
  await rita.waitFor(isEvent(jid('quinn'), 'http://jabber.org/protocol/nick'), 5000, 'nick before the block');
  const blocked = await quinn.iq(xml('iq', { type: 'set' }, xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: jid('rita') }))));
  assert.equal(blocked.attrs.type, 'result');
  await publish(quinn, 'http://jabber.org/protocol/nick', 'current', nick('Q2'));
  await rita.expectNone(isEvent(jid('quinn'), 'http://jabber.org/protocol/nick'), 300, 'nick after the block');
  assert.equal((await itemsOf(rita, jid('quinn'), 'http://jabber.org/protocol/nick')).attrs.type, 'error');
});

// ---------------------------------------------------------------------------- XEP-0398

test('XEP-0398: a PEP avatar becomes the vCard photo, and contacts get the new presence hash', async () => {
  const judy = await tcp('judy');
  const alice = await tcp('alice', 'conv');
  await befriend(judy, 'judy', alice, 'alice');
  await vcardSet(judy, [xml('FN', null, 'Judy')]);
  const img = image('judy');
  await publishAvatar(judy, img);
  await alice.presence((p) => p.attrs.from === judy.jid && photoOf(p) === img.hash, 'presence with the PEP avatar hash');
  const v = (await vcardGet(alice, jid('judy'))).getChild('vCard', VCARD)!;
  assert.equal(v.getChildText('FN'), 'Judy');
  assert.equal(v.getChild('PHOTO')?.getChildText('BINVAL'), img.b64);
  assert.equal(v.getChild('PHOTO')?.getChildText('TYPE'), 'image/png');
});

test('XEP-0398: a vCard photo set over WebSocket becomes the PEP avatar', async () => {
  const carol = await ws('carol', 'conv');
  const img = image('carol');
  await vcardSet(carol, [xml('FN', null, 'Carol'), photo(img)]);
  const meta = await itemsOf(carol, jid('carol'), META, { max_items: '1' });
  const item = meta.getChild('pubsub', PUBSUB)!.getChild('items')!.getChild('item')!;
  assert.equal(item.attrs.id, img.hash);
  const info = item.getChild('metadata', META)!.getChild('info')!;
  assert.equal(info.attrs.id, img.hash);
  assert.equal(info.attrs.bytes, String(img.data.length));
  assert.equal(info.attrs.type, 'image/png');
  const data = await itemsOf(carol, jid('carol'), DATA, {}, [img.hash]);
  assert.equal(data.getChild('pubsub', PUBSUB)!.getChild('items')!.getChild('item')!.getChildText('data', DATA), img.b64);

  // Removing the photo publishes an empty metadata item (XEP-0084 §4.2: no avatar).
  await vcardSet(carol, [xml('FN', null, 'Carol')]);
  const cleared = await itemsOf(carol, jid('carol'), META, { max_items: '1' });
  const m = cleared.getChild('pubsub', PUBSUB)!.getChild('items')!.getChild('item')!.getChild('metadata', META)!;
  assert.equal(m.getChildren('info').length, 0);
});
