/**
 * Message Carbons (XEP-0280) through real clients, one resource over TCP and one over
 * WebSocket: received and sent copies, messages to the bare JID and to full JIDs,
 * <private/> and <no-copy/>, disabling, messages between a user's own resources.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { connectWebSocket, errorCondition, forwardedMessage, stanzaId, CARBONS } from './helpers/mam.js';

let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;

async function tcp(username: string, resource: string): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource });
  open.push(c);
  return c;
}

async function ws(username: string, resource: string): Promise<TestClient> {
  const c = await connectWebSocket({ httpPort: ts.httpPort, username, resource });
  open.push(c);
  return c;
}

async function enable(c: TestClient, on = true): Promise<void> {
  const r = await c.iq(xml('iq', { type: 'set' }, xml(on ? 'enable' : 'disable', { xmlns: CARBONS })));
  assert.equal(r.attrs.type, 'result');
}

const body = (text: string) => (el: Element) => el.name === 'message' && el.getChildText('body') === text;
const carbon = (kind: 'received' | 'sent', text: string) => (el: Element) =>
  el.name === 'message' && el.getChild(kind, CARBONS) !== undefined && forwardedMessage(el)?.getChildText('body') === text;

before(async () => {
  ts = await startTestServer();
  for (const u of ['romeo', 'juliet', 'nurse', 'tybalt', 'benvolio']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

test('the server announces carbons', async () => {
  const c = await tcp('benvolio', 'disco');
  const r = await c.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  assert.ok(r.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === CARBONS));
});

test('received and sent copies reach the other resource, with the archive ids of each side', async () => {
  const phone = await tcp('romeo', 'phone');
  const web = await ws('romeo', 'web');
  const juliet = await tcp('juliet', 'balcony');
  await enable(phone);
  await enable(web);

  // To a full JID: the other resource gets a received copy.
  await juliet.send(xml('message', { to: `${jid('romeo')}/phone`, type: 'chat', id: 'j1' }, xml('body', null, 'wherefore')));
  const original = await phone.waitFor(body('wherefore'));
  const copy = await web.waitFor(carbon('received', 'wherefore'));
  assert.equal(copy.attrs.from, jid('romeo'));
  assert.equal(copy.attrs.to, web.jid);
  const inner = forwardedMessage(copy)!;
  assert.equal(inner.attrs.from, juliet.jid);
  assert.equal(inner.attrs.to, `${jid('romeo')}/phone`);
  assert.equal(inner.attrs.id, 'j1');
  assert.equal(stanzaId(inner, jid('romeo')), stanzaId(original, jid('romeo')));
  await phone.expectNone(carbon('received', 'wherefore'), 100);

  // Sent from one resource: the other gets a sent copy carrying the sender's archive id.
  await web.send(xml('message', { to: jid('juliet'), type: 'chat', id: 'r1' }, xml('body', null, 'by yonder')));
  const atJuliet = await juliet.waitFor(body('by yonder'));
  const sent = await phone.waitFor(carbon('sent', 'by yonder'));
  assert.equal(sent.attrs.from, jid('romeo'));
  const sentInner = forwardedMessage(sent)!;
  assert.equal(sentInner.attrs.from, web.jid);
  assert.equal(sentInner.attrs.to, jid('juliet'));
  assert.equal(stanzaId(sentInner, jid('juliet')), undefined);
  // Both archives use the same archive id for the message.
  assert.equal(stanzaId(sentInner, jid('romeo')), stanzaId(atJuliet, jid('juliet')));
  await web.expectNone(carbon('sent', 'by yonder'), 100);
});

test('a message to the bare JID goes to the top resource and is copied to the other', async () => {
  const low = await tcp('nurse', 'low');
  const high = await ws('nurse', 'high');
  const tybalt = await tcp('tybalt', 'sword');
  await high.send(xml('presence', null, xml('priority', null, '5')));
  await tybalt.iq(xml('iq', { type: 'get' }, xml('ping', { xmlns: 'urn:xmpp:ping' }))); // let the presence settle
  await high.iq(xml('iq', { type: 'get' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  await enable(low);
  await enable(high);
  await tybalt.send(xml('message', { to: jid('nurse'), type: 'chat' }, xml('body', null, 'to bare')));
  await high.waitFor(body('to bare'));
  const c = await low.waitFor(carbon('received', 'to bare'));
  assert.equal(forwardedMessage(c)!.attrs.to, jid('nurse'));
  await low.expectNone(body('to bare'), 100);
  // Chat states are copied too (eligible without a body when of type chat).
  await tybalt.send(xml('message', { to: jid('nurse'), type: 'chat' }, xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await low.waitFor((el) => el.getChild('received', CARBONS) !== undefined && forwardedMessage(el)?.getChild('active') !== undefined);
});

test('<private/>, <no-copy/>, headlines and disabled resources get no copies', async () => {
  const a = await tcp('benvolio', 'a');
  const b = await ws('benvolio', 'b');
  const other = await tcp('tybalt', 'other');
  await enable(a);
  await enable(b);
  await other.send(xml('message', { to: `${jid('benvolio')}/a`, type: 'chat' }, xml('body', null, 'private'), xml('private', { xmlns: CARBONS })));
  await other.send(xml('message', { to: `${jid('benvolio')}/a`, type: 'chat' }, xml('body', null, 'nocopy'), xml('no-copy', { xmlns: 'urn:xmpp:hints' })));
  await other.send(xml('message', { to: `${jid('benvolio')}/a`, type: 'headline' }, xml('body', null, 'headline')));
  await a.send(xml('message', { to: jid('tybalt'), type: 'chat' }, xml('body', null, 'sent private'), xml('private', { xmlns: CARBONS })));
  await a.waitFor(body('private'));
  await a.waitFor(body('nocopy'));
  await a.waitFor(body('headline'));
  await other.waitFor(body('sent private'));
  await enable(b, false);
  await other.send(xml('message', { to: `${jid('benvolio')}/a`, type: 'chat' }, xml('body', null, 'after disable')));
  await a.waitFor(body('after disable'));
  await b.expectNone((el) => el.name === 'message', 200, 'carbon copy');
  // Enabling is only for one's own session.
  const foreign = await other.iq(xml('iq', { type: 'set', to: jid('benvolio') }, xml('enable', { xmlns: CARBONS })));
  assert.equal(errorCondition(foreign), 'service-unavailable');
});

test('between two resources of one user only a third one gets a copy, as sent', async () => {
  const one = await tcp('juliet', 'one');
  const two = await ws('juliet', 'two');
  const three = await tcp('juliet', 'three');
  for (const c of [one, two, three]) await enable(c);
  await one.send(xml('message', { to: `${jid('juliet')}/two`, type: 'chat' }, xml('body', null, 'note to self')));
  await two.waitFor(body('note to self'));
  await three.waitFor(carbon('sent', 'note to self'));
  await three.expectNone(carbon('received', 'note to self'), 100);
  await two.expectNone(carbon('sent', 'note to self'), 0);
  await one.expectNone((el) => forwardedMessage(el)?.getChildText('body') === 'note to self', 0);
});
