/**
 * Roster and presence (RFC 6121) through real clients: roster get/set/remove with
 * pushes, the subscription handshake, presence broadcast and probes, stored requests.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { until } from './helpers/until.js';
import { Jid } from '../src/xmpp/jid.js';

let ts: TestServer;
const open: TestClient[] = [];
const R = 'jabber:iq:roster';

async function login(username: string, resource = 'test', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence });
  open.push(c);
  return c;
}

const jid = (u: string) => `${u}@${DOMAIN}`;

async function rosterOf(c: TestClient): Promise<Element[]> {
  const r = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: R })));
  assert.equal(r.attrs.type, 'result');
  return r.getChild('query', R)!.getChildren('item');
}

function rosterPush(c: TestClient, contact: string, pred: (item: Element) => boolean = () => true): Promise<Element> {
  return c
    .waitFor(
      (el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', R)?.getChild('item')?.attrs.jid === contact && pred(el.getChild('query', R)!.getChild('item')!),
      5000,
      `roster push for ${contact}`,
    )
    .then((el) => el.getChild('query', R)!.getChild('item')!);
}

before(async () => {
  ts = await startTestServer();
  for (const u of ['romeo', 'juliet', 'nurse', 'tybalt', 'benvolio', 'mercutio', 'paris', 'friar', 'lady', 'prince', 'sampson', 'gregory', 'abram', 'balthasar']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

test('a new roster is empty, and a set is pushed and then returned by get', async () => {
  const c = await login('nurse');
  assert.deepEqual(await rosterOf(c), []);
  const push = rosterPush(c, jid('tybalt'));
  const r = await c.iq(
    xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('tybalt'), name: 'Tybalt' }, xml('group', null, 'Capulets')))),
  );
  assert.equal(r.attrs.type, 'result');
  const pushed = await push;
  assert.equal(pushed.attrs.subscription, 'none');
  assert.equal(pushed.attrs.name, 'Tybalt');
  const items = await rosterOf(c);
  assert.equal(items.length, 1);
  assert.equal(items[0]!.attrs.name, 'Tybalt');
  assert.equal(items[0]!.getChildText('group'), 'Capulets');
});

test('a roster change is pushed to every resource that asked for the roster', async () => {
  const a = await login('benvolio', 'one');
  const b = await login('benvolio', 'two');
  await rosterOf(a);
  await rosterOf(b);
  const pushA = rosterPush(a, jid('mercutio'));
  const pushB = rosterPush(b, jid('mercutio'));
  await a.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('mercutio') }))));
  await pushA;
  await pushB;
});

test('removing an item pushes subscription remove; removing an unknown one is item-not-found', async () => {
  const c = await login('paris');
  await rosterOf(c);
  await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('friar') }))));
  const push = rosterPush(c, jid('friar'), (i) => i.attrs.subscription === 'remove');
  const r = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('friar'), subscription: 'remove' }))));
  assert.equal(r.attrs.type, 'result');
  await push;
  assert.deepEqual(await rosterOf(c), []);
  const again = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('friar'), subscription: 'remove' }))));
  assert.ok(again.getChild('error')?.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
});

test('bad roster sets are refused with the RFC conditions', async () => {
  const c = await login('paris', 'bad');
  const two = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('a') }), xml('item', { jid: jid('b') }))));
  assert.ok(two.getChild('error')?.getChild('bad-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  const dup = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('a') }, xml('group', null, 'g'), xml('group', null, 'g')))));
  assert.ok(dup.getChild('error')?.getChild('bad-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  const empty = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: R }, xml('item', { jid: jid('a') }, xml('group', null, '')))));
  assert.ok(empty.getChild('error')?.getChild('not-acceptable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  const other = await c.iq(xml('iq', { type: 'get', to: jid('friar') }, xml('query', { xmlns: R })));
  assert.ok(other.getChild('error')?.getChild('forbidden', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
});

test('the subscription handshake ends in both, with pushes and presence on each side', async () => {
  const romeo = await login('romeo');
  const juliet = await login('juliet');
  await rosterOf(romeo);
  await rosterOf(juliet);

  // Romeo asks.
  const pendingPush = rosterPush(romeo, jid('juliet'), (i) => i.attrs.ask === 'subscribe');
  await romeo.send(xml('presence', { to: jid('juliet'), type: 'subscribe' }));
  await pendingPush;
  const request = await juliet.presence((p) => p.attrs.type === 'subscribe');
  assert.equal(request.attrs.from, jid('romeo'));

  // Juliet approves: Romeo is subscribed to her and sees her presence.
  const romeoTo = rosterPush(romeo, jid('juliet'), (i) => i.attrs.subscription === 'to' && i.attrs.ask === undefined);
  const julietFrom = rosterPush(juliet, jid('romeo'), (i) => i.attrs.subscription === 'from');
  await juliet.send(xml('presence', { to: jid('romeo'), type: 'subscribed' }));
  await romeoTo;
  await julietFrom;
  await romeo.presence((p) => p.attrs.type === 'subscribed' && p.attrs.from === jid('juliet'));
  await romeo.presence((p) => p.attrs.from === `${jid('juliet')}/test` && p.attrs.type === undefined, 'juliet available');

  // And the other way round.
  await juliet.send(xml('presence', { to: jid('romeo'), type: 'subscribe' }));
  await romeo.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid('juliet'));
  const both1 = rosterPush(romeo, jid('juliet'), (i) => i.attrs.subscription === 'both');
  const both2 = rosterPush(juliet, jid('romeo'), (i) => i.attrs.subscription === 'both');
  await romeo.send(xml('presence', { to: jid('juliet'), type: 'subscribed' }));
  await both1;
  await both2;
  await juliet.presence((p) => p.attrs.from === `${jid('romeo')}/test` && p.attrs.type === undefined, 'romeo available');

  // Presence changes are broadcast to subscribers.
  await romeo.send(xml('presence', null, xml('show', null, 'away'), xml('status', null, 'under the balcony')));
  const away = await juliet.presence((p) => p.getChildText('show') === 'away');
  assert.equal(away.getChildText('status'), 'under the balcony');

  // Going offline is seen once as unavailable.
  await romeo.stop();
  await juliet.presence((p) => p.attrs.type === 'unavailable' && p.attrs.from === `${jid('romeo')}/test`, 'romeo unavailable');

  // Logging in again: Romeo gets Juliet's presence through the probe at initial presence.
  const romeo2 = await login('romeo', 'again');
  await romeo2.presence((p) => p.attrs.from === `${jid('juliet')}/test`, 'juliet presence after login');
  await juliet.presence((p) => p.attrs.from === `${jid('romeo')}/again`, 'romeo back');
});

test('a subscription request to an offline user is stored and delivered at login', async () => {
  const lady = await login('lady');
  await lady.send(xml('presence', { to: jid('prince'), type: 'subscribe', id: 'sub1' }, xml('status', null, 'may I?')));
  await until('the request is stored for prince', async () => (await ts.server.core.service('roster').getItem(Jid.of('prince', DOMAIN), jid('lady')))?.askInStanza != null);
  const prince = await login('prince');
  const req = await prince.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid('lady'));
  assert.equal(req.getChildText('status'), 'may I?');
  // Not in the roster until approved.
  assert.deepEqual(await rosterOf(prince), []);
  await prince.send(xml('presence', { to: jid('lady'), type: 'subscribed' }));
  await lady.presence((p) => p.attrs.type === 'subscribed');
  const items = await rosterOf(prince);
  assert.equal(items[0]?.attrs.subscription, 'from');
});

test('a subscription request repeated while pending is not delivered again; the stored one still comes at login', async () => {
  const abram = await login('abram');
  let balthasar = await login('balthasar');
  const requests = () => balthasar.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid('abram'), 'the request');
  const first = requests();
  await abram.send(xml('presence', { to: jid('balthasar'), type: 'subscribe', id: 'first' }));
  assert.equal((await first).attrs.id, 'first');
  // RFC 6121 A.3.1: "None + Pending In" takes a new subscribe without delivering it.
  await abram.send(xml('presence', { to: jid('balthasar'), type: 'subscribe', id: 'again' }));
  await balthasar.expectNone((p) => p.attrs.type === 'subscribe' && p.attrs.id === 'again', 300, 'the repeated request');
  await balthasar.stop();
  balthasar = await login('balthasar', 'later');
  assert.equal((await requests()).attrs.id, 'first', 'the stored request is the first one');
});

test('a subscriber is told when the subscription is cancelled, and no longer sees presence', async () => {
  const s = await login('sampson');
  const g = await login('gregory');
  await rosterOf(s);
  await rosterOf(g);
  await s.send(xml('presence', { to: jid('gregory'), type: 'subscribe' }));
  await g.presence((p) => p.attrs.type === 'subscribe');
  await g.send(xml('presence', { to: jid('sampson'), type: 'subscribed' }));
  await s.presence((p) => p.attrs.from === `${jid('gregory')}/test` && p.attrs.type === undefined);
  // Gregory cancels Sampson's subscription: Sampson sees unsubscribed, then unavailable.
  await g.send(xml('presence', { to: jid('sampson'), type: 'unsubscribed' }));
  await s.presence((p) => p.attrs.type === 'unsubscribed' && p.attrs.from === jid('gregory'));
  await s.presence((p) => p.attrs.type === 'unavailable' && p.attrs.from === `${jid('gregory')}/test`);
  await rosterPush(s, jid('gregory'), (i) => i.attrs.subscription === 'none');
  await g.send(xml('presence', null, xml('status', null, 'secret')));
  await s.expectNone((p) => p.name === 'presence' && p.getChildText('status') === 'secret', 300, 'presence after unsubscribed');
});

test('a probe from someone who is not subscribed gets nothing', async () => {
  const a = await login('friar', 'probe');
  await a.send(xml('presence', { to: jid('lady'), type: 'probe' }));
  await a.expectNone((p) => p.name === 'presence' && p.attrs.from?.startsWith(jid('lady')) === true, 300, 'presence leaked to a probe');
});
