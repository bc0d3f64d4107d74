/**
 * Invisibility (XEP-0186, and XEP-0126 through a privacy list denying presence-out) seen
 * from the outside, over TCP, BOSH and WebSocket: while a resource is invisible no
 * presence of it — broadcast, probe answer, directed presence, avatar-hash update, the
 * presence of another invisible resource of the same user, or presence held for an
 * inactive (CSI) or resuming (stream management) contact — reaches anyone but the user's
 * own resources. Made visible again, its current presence goes out once.
 * (Across cluster nodes: cluster-invisible.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, makeClient, TestClient, xml, type Element } from './helpers/client.js';
import { RawBosh, type BoshReply } from './helpers/bosh.js';
import { XmlClient } from './helpers/xml-client.js';
import { Jid } from '../src/xmpp/jid.js';
import type { XmlElement } from '../src/xml/element.js';
import type { RosterItem } from '../src/modules/roster/api.js';

// @xmpp/websocket uses the global WebSocket, which Node 20 does not have.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

const PRIVACY = 'jabber:iq:privacy';
const INVISIBLE = 'urn:xmpp:invisible:1';
const CSI = 'urn:xmpp:csi:0';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const UPDATE = 'vcard-temp:x:update';
/** A 1×1 PNG. */
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000a49444154789c6300010000050001', 'hex').toString('base64');

let ts: TestServer;
const open: TestClient[] = [];
const raw: XmlClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function login(username: string, resource: string, presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence, mechanism: 'PLAIN' });
  open.push(c);
  return c;
}

async function loginWs(username: string, resource: string): Promise<TestClient> {
  const service = `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`;
  const xmpp = makeClient({ port: ts.port, username, resource });
  xmpp.options.service = service;
  const c = new TestClient(xmpp);
  c.jid = String(await xmpp.start({ service, domain: DOMAIN }));
  await xmpp.send(xml('presence'));
  open.push(c);
  return c;
}

async function befriend(a: string, b: string): Promise<void> {
  const roster = ts.server.core.service('roster');
  const item = (contact: string): RosterItem => ({ jid: jid(contact), name: null, subscription: 'both', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true });
  await roster.update(Jid.parse(jid(a)), jid(b), () => item(b));
  await roster.update(Jid.parse(jid(b)), jid(a), () => item(a));
}

async function ok(c: TestClient, el: Element): Promise<Element> {
  const r = await c.iq(el);
  assert.equal(r.attrs.type, 'result', `expected a result, got ${r.toString()}`);
  return r;
}

const errorOf = (el: { getChild(n: string): { children: unknown[] } | undefined }) =>
  (el.getChild('error')?.children.find((c) => typeof c !== 'string' && (c as Element).attrs.xmlns === STANZAS) as Element | undefined)?.name;
const invisible = () => xml('iq', { type: 'set' }, xml('invisible', { xmlns: INVISIBLE }));
const visible = () => xml('iq', { type: 'set' }, xml('visible', { xmlns: INVISIBLE }));
const vcardWithPhoto = (name: string) =>
  xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', null, name), xml('PHOTO', null, xml('TYPE', null, 'image/png'), xml('BINVAL', null, PNG))));
const availableFrom = (full: string) => (p: Element) => p.name === 'presence' && p.attrs.from === full && p.attrs.type === undefined;
const unavailableFrom = (full: string) => (p: Element) => p.name === 'presence' && p.attrs.from === full && p.attrs.type === 'unavailable';
/** Any presence of `user` other than unavailable (what would show the user online). */
const showsOnline = (user: string) => (p: { name: string; attrs: Record<string, string | undefined> }) =>
  p.name === 'presence' && (p.attrs.from ?? '').split('/')[0] === jid(user) && p.attrs.type === undefined;

/** Fails if a stanza matching `pred` came after index `start` (waiting `ms` first). */
async function noneSince<T extends { toString(): string }>(received: T[], start: number, pred: (el: T) => boolean, ms: number, what: string): Promise<void> {
  await sleep(ms);
  const hit = received.slice(start).find(pred);
  if (hit) throw new Error(`unexpected ${what}: ${hit.toString()}`);
}

before(async () => {
  ts = await startTestServer({ listen: { c2s: { requireTls: false } }, bosh: { presenceDelay: '0s' } });
  for (const u of ['alice', 'bob', 'carol', 'dan', 'dave', 'erin', 'gail', 'hugo', 'kim', 'lou']) await ts.addUser(u);
  await befriend('bob', 'alice');
  await befriend('dan', 'carol');
  await befriend('erin', 'dave');
  await befriend('hugo', 'gail');
  await befriend('kim', 'lou');
});

after(async () => {
  for (const c of raw) c.cut();
  for (const c of open) await c.stop();
  await ts.stop();
});

test('over TCP (XEP-0186): presence changes, a directed presence, a probe, an avatar update and another invisible resource reach only the user; visible again, presence goes out once', async () => {
  const alice = await login('alice', 'phone');
  const bob = await login('bob', 'phone');
  const bob2 = await login('bob', 'laptop');
  await alice.presence(availableFrom(`${jid('bob')}/phone`), 'bob/phone online');
  await alice.presence(availableFrom(`${jid('bob')}/laptop`), 'bob/laptop online');
  await ok(bob, invisible());
  await ok(bob2, invisible());
  await alice.presence(unavailableFrom(`${jid('bob')}/phone`), 'bob/phone gone');
  await alice.presence(unavailableFrom(`${jid('bob')}/laptop`), 'bob/laptop gone');
  const start = alice.received.length;

  // A presence change: his own other resource sees it, nobody else.
  await bob.send(xml('presence', null, xml('show', null, 'away'), xml('status', null, 'out for lunch')));
  await bob2.presence((p) => p.attrs.from === `${jid('bob')}/phone` && p.getChildText('status') === 'out for lunch', 'own resource sees the change');
  // The other invisible resource's presence: the same.
  await bob2.send(xml('presence', null, xml('status', null, 'laptop, hidden')));
  await bob.presence((p) => p.attrs.from === `${jid('bob')}/laptop` && p.getChildText('status') === 'laptop, hidden', 'own resource sees the other');
  // A directed presence to a contact is refused, not routed.
  await bob.send(xml('presence', { to: `${jid('alice')}/phone`, id: 'd1' }, xml('status', null, 'just for alice')));
  const refused = await bob.presence((p) => p.attrs.id === 'd1' && p.attrs.type === 'error', 'directed presence refused');
  assert.equal(errorOf(refused), 'not-acceptable');
  await bob.send(xml('presence', { to: jid('alice'), id: 'd2' }, xml('status', null, 'to the bare jid')));
  await bob.presence((p) => p.attrs.id === 'd2' && p.attrs.type === 'error', 'directed presence to the bare JID refused');
  // A probe is answered as for an offline user.
  await alice.send(xml('presence', { to: jid('bob'), type: 'probe' }));
  const ans = await alice.presence((p) => (p.attrs.from ?? '').startsWith(jid('bob')), 'probe answer');
  assert.deepEqual([ans.attrs.from, ans.attrs.type], [jid('bob'), 'unavailable']);
  // An avatar update: the new hash goes to his own resources only.
  await ok(bob, vcardWithPhoto('Bob'));
  await bob2.presence((p) => p.attrs.from === `${jid('bob')}/phone` && (p.getChild('x', UPDATE)?.getChildText('photo')?.length ?? 0) === 40, 'own resource sees the hash');
  // A later broadcast does not go to whoever the refused directed presence named.
  await bob.send(xml('presence', null, xml('show', null, 'dnd')));
  await bob2.presence((p) => p.attrs.from === `${jid('bob')}/phone` && p.getChildText('show') === 'dnd', 'own resource sees dnd');
  await noneSince(alice.received, start, showsOnline('bob'), 300, 'presence of invisible bob');
  assert.ok(!alice.received.slice(start).some((p) => p.toString().includes('just for alice') || p.toString().includes('to the bare jid')));

  // Visible again: bob/phone's current presence, once, even when the client sends it again;
  // bob/laptop stays invisible.
  await ok(bob, visible());
  const back = await alice.presence(availableFrom(`${jid('bob')}/phone`), 'bob/phone visible');
  assert.equal(back.getChildText('show'), 'dnd');
  await bob.send(xml('presence', null, xml('show', null, 'dnd')));
  await sleep(400);
  assert.equal(alice.received.slice(start).filter(availableFrom(`${jid('bob')}/phone`)).length, 1, 'once');
  assert.equal(alice.received.slice(start).filter(showsOnline('bob')).filter((p) => p.attrs.from === `${jid('bob')}/laptop`).length, 0, 'the other resource stays hidden');
  await alice.send(xml('presence', { to: jid('bob'), type: 'probe' }));
  await alice.presence((p) => p.attrs.from === `${jid('bob')}/phone` && p.attrs.type === undefined && p !== back, 'probe answer once visible');
});

test('over BOSH (XEP-0186): presence changes, a directed presence and an avatar update of an invisible user reach nobody; visible, once', async () => {
  const carol = await login('carol', 'phone');
  const bosh = new RawBosh(`${ts.httpUrl}/http-bind`);
  await bosh.login('dan', 'secret', { resource: 'web', create: { wait: '1' } });
  const dan = `${jid('dan')}/web`;
  await carol.presence(availableFrom(dan), 'dan online');
  const got: XmlElement[] = [];
  const send = async (payload: string) => {
    const r: BoshReply = await bosh.send({}, payload);
    got.push(...r.body.elements());
  };
  const until = async (pred: (el: XmlElement) => boolean, what: string) => {
    for (let i = 0; i < 10; i++) {
      const hit = got.find(pred);
      if (hit) return hit;
      await send('');
    }
    throw new Error(`no ${what}: ${got.map(String).join('\n')}`);
  };
  await send(`<iq xmlns='jabber:client' type='set' id='inv'><invisible xmlns='${INVISIBLE}'/></iq>`);
  await until((el) => el.name === 'iq' && el.attrs.id === 'inv' && el.attrs.type === 'result', 'invisible result');
  await carol.presence(unavailableFrom(dan), 'dan gone');
  const start = carol.received.length;
  await send("<presence xmlns='jabber:client'><show>xa</show><status>hidden on the web</status></presence>");
  await send(`<presence xmlns='jabber:client' to='${jid('carol')}/phone' id='d1'><status>hello carol</status></presence>`);
  const refused = await until((el) => el.name === 'presence' && el.attrs.id === 'd1', 'directed presence refused');
  assert.equal(refused.attrs.type, 'error');
  await send(`<iq xmlns='jabber:client' type='set' id='vc'><vCard xmlns='vcard-temp'><FN>Dan</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>${PNG}</BINVAL></PHOTO></vCard></iq>`);
  await until((el) => el.name === 'iq' && el.attrs.id === 'vc' && el.attrs.type === 'result', 'vCard stored');
  await send("<presence xmlns='jabber:client'><show>away</show></presence>");
  await noneSince(carol.received, start, showsOnline('dan'), 300, 'presence of invisible dan');

  await send(`<iq xmlns='jabber:client' type='set' id='vis'><visible xmlns='${INVISIBLE}'/></iq>`);
  const back = await carol.presence(availableFrom(dan), 'dan visible');
  assert.equal(back.getChildText('show'), 'away');
  assert.equal(back.getChild('x', UPDATE)?.getChildText('photo')?.length, 40, 'with the new avatar hash');
  await sleep(300);
  assert.equal(carol.received.slice(start).filter(showsOnline('dan')).length, 1, 'once');
  await bosh.send({ type: 'terminate' });
});

test('over WebSocket (XEP-0186): nothing of an invisible user is held for an inactive contact (CSI) or replayed to one that resumes (stream management)', async () => {
  const ws = () => XmlClient.ws(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);
  const { c: dave, id } = await XmlClient.session(ws, 'dave', 'ws');
  raw.push(dave);
  const erin = await login('erin', 'phone');
  await dave.waitFor((el) => el.name === 'presence' && el.attrs.from === `${jid('erin')}/phone`, 'erin online');
  dave.write(`<inactive xmlns='${CSI}'/>`);
  await sleep(50);
  await ok(erin, invisible());
  // Held for the inactive client: only erin's unavailable may be there.
  await erin.send(xml('presence', null, xml('show', null, 'away')));
  await erin.send(xml('presence', { to: `${jid('dave')}/ws`, id: 'd1' }, xml('status', null, 'psst')));
  assert.equal((await erin.presence((p) => p.attrs.id === 'd1', 'directed presence refused')).attrs.type, 'error');
  await sleep(200);
  // The connection dies; what comes meanwhile waits for the resumption.
  const handled = dave.h!;
  const before = dave.received.length;
  dave.cut();
  await sleep(200);
  await erin.send(xml('presence', null, xml('show', null, 'xa'), xml('status', null, 'still hidden')));
  await erin.send(xml('presence', { to: jid('dave'), id: 'd2' }, xml('status', null, 'psst again')));
  assert.equal((await erin.presence((p) => p.attrs.id === 'd2', 'directed presence refused')).attrs.type, 'error');
  await sleep(100);

  const again = await ws();
  raw.push(again);
  await again.login('dave');
  assert.equal((await again.resume(id, handled)).name, 'resumed');
  // Replayed and released: erin's unavailable, never her presence.
  await again.waitFor((el) => el.name === 'presence' && el.attrs.from === `${jid('erin')}/phone` && el.attrs.type === 'unavailable', 'erin unavailable');
  again.write(`<active xmlns='${CSI}'/>`);
  await noneSince([...dave.received.slice(before), ...again.received], 0, showsOnline('erin'), 300, 'presence of invisible erin');
  assert.ok(!dave.received.slice(before).some(showsOnline('erin')));
  again.end();
});

test('over WebSocket (XEP-0126): with a list denying presence-out, presence changes, a directed presence, an avatar update and the other listed resource reach nobody; the list declined, once', async () => {
  const gail = await loginWs('gail', 'ws');
  const h1 = await login('hugo', 'one');
  const h2 = await loginWs('hugo', 'two');
  await gail.presence(availableFrom(`${jid('hugo')}/one`), 'hugo/one online');
  await gail.presence(availableFrom(`${jid('hugo')}/two`), 'hugo/two online');
  await ok(h1, xml('iq', { type: 'set' }, xml('query', { xmlns: PRIVACY }, xml('list', { name: 'invisible' }, xml('item', { action: 'deny', order: '1' }, xml('presence-out'))))));
  for (const h of [h1, h2]) await ok(h, xml('iq', { type: 'set' }, xml('query', { xmlns: PRIVACY }, xml('active', { name: 'invisible' }))));
  await gail.presence(unavailableFrom(`${jid('hugo')}/one`), 'hugo/one gone');
  await gail.presence(unavailableFrom(`${jid('hugo')}/two`), 'hugo/two gone');
  const start = gail.received.length;
  await h1.send(xml('presence', null, xml('show', null, 'away')));
  await h2.presence((p) => p.attrs.from === `${jid('hugo')}/one` && p.getChildText('show') === 'away', 'own resource sees it');
  await h2.send(xml('presence', null, xml('show', null, 'dnd')));
  await h1.presence((p) => p.attrs.from === `${jid('hugo')}/two` && p.getChildText('show') === 'dnd', 'own resource sees the other');
  await h2.send(xml('presence', { to: `${jid('gail')}/ws`, id: 'd1' }));
  assert.equal(errorOf(await h2.presence((p) => p.attrs.id === 'd1', 'directed presence refused')), 'not-acceptable');
  await ok(h1, vcardWithPhoto('Hugo'));
  await h2.presence((p) => p.attrs.from === `${jid('hugo')}/one` && (p.getChild('x', UPDATE)?.getChildText('photo')?.length ?? 0) === 40, 'own resource sees the hash');
  await gail.send(xml('presence', { to: jid('hugo'), type: 'probe' }));
  const ans = await gail.presence((p) => (p.attrs.from ?? '').startsWith(jid('hugo')) && p.attrs.type === 'unavailable' && p.attrs.from === jid('hugo'), 'probe answer');
  assert.ok(ans);
  await noneSince(gail.received, start, showsOnline('hugo'), 300, 'presence of hugo through the list');

  await ok(h1, xml('iq', { type: 'set' }, xml('query', { xmlns: PRIVACY }, xml('active'))));
  const back = await gail.presence(availableFrom(`${jid('hugo')}/one`), 'hugo/one visible');
  assert.equal(back.getChildText('show'), 'away');
  await h1.send(xml('presence', null, xml('show', null, 'away')));
  await sleep(400);
  assert.equal(gail.received.slice(start).filter(showsOnline('hugo')).length, 1, 'hugo/one once, hugo/two not at all');
});

test('while invisible a subscription approval shows the new contact nothing; the user still sees everyone', async () => {
  const kim = await login('kim', 'phone');
  const lou = await login('lou', 'phone');
  await lou.presence(availableFrom(`${jid('kim')}/phone`), 'kim online');
  await ok(kim, invisible());
  await lou.presence(unavailableFrom(`${jid('kim')}/phone`), 'kim gone');
  const start = lou.received.length;
  // alice asks kim for a subscription; kim, invisible, approves it.
  const alice = await login('alice', 'sub');
  await alice.send(xml('presence', { to: jid('kim'), type: 'subscribe' }));
  await kim.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid('alice'), 'request');
  const aliceStart = alice.received.length;
  await kim.send(xml('presence', { to: jid('alice'), type: 'subscribed' }));
  await alice.presence((p) => p.attrs.type === 'subscribed' && p.attrs.from === jid('kim'), 'approval');
  await lou.send(xml('presence', null, xml('status', null, 'lou here')));
  await kim.presence((p) => p.attrs.from === `${jid('lou')}/phone` && p.getChildText('status') === 'lou here', 'kim sees lou');
  await noneSince(alice.received, aliceStart, showsOnline('kim'), 300, 'presence of kim after the approval');
  await noneSince(lou.received, start, showsOnline('kim'), 0, 'presence of kim');
});

test('over TCP with stream management: an invisible session that is resumed stays invisible; what its client sends again after <resumed/> reaches nobody', async () => {
  const tcp = () => XmlClient.tcp(ts.port);
  const { c: gail } = await XmlClient.session(tcp, 'gail', 'watch');
  raw.push(gail);
  const { c: hugo, id } = await XmlClient.session(tcp, 'hugo', 'sm');
  raw.push(hugo);
  await gail.waitFor((el) => el.name === 'presence' && el.attrs.from === `${jid('hugo')}/sm` && el.attrs.type === undefined, 'hugo online');
  hugo.write(`<iq type='set' id='inv'><invisible xmlns='${INVISIBLE}'/></iq>`);
  await hugo.waitFor((el) => el.name === 'iq' && el.attrs.id === 'inv' && el.attrs.type === 'result', 'invisible');
  await gail.waitFor((el) => el.name === 'presence' && el.attrs.from === `${jid('hugo')}/sm` && el.attrs.type === 'unavailable', 'hugo gone');
  const start = gail.received.length;
  const handled = hugo.h!;
  hugo.cut();
  await sleep(200);
  const again = await tcp();
  raw.push(again);
  await again.login('hugo');
  assert.equal((await again.resume(id, handled)).name, 'resumed');
  // The client sends its presence again after resuming (as XEP-0198 clients resend what was not acknowledged).
  again.write('<presence><show>chat</show><status>back, hidden</status></presence>');
  await again.waitFor((el) => el.name === 'presence' && el.attrs.from === `${jid('hugo')}/sm` && el.getChildText('status') === 'back, hidden', 'own presence');
  again.write(`<presence to='${jid('gail')}/watch' id='d1'/>`);
  await again.waitFor((el) => el.name === 'presence' && el.attrs.id === 'd1' && el.attrs.type === 'error', 'directed presence refused');
  await noneSince(gail.received, start, showsOnline('hugo'), 300, 'presence of resumed invisible hugo');
  again.write(`<iq type='set' id='vis'><visible xmlns='${INVISIBLE}'/></iq>`);
  const back = await gail.waitFor((el) => el.name === 'presence' && el.attrs.from === `${jid('hugo')}/sm` && el.attrs.type === undefined, 'hugo visible');
  assert.equal(back.getChildText('status'), 'back, hidden');
  again.end();
  gail.end();
});
