/**
 * Client State Indication (XEP-0352) over TCP, WebSocket and BOSH: an inactive client
 * gets presence updates held back (only the latest per sender resource), sent together
 * when it becomes active or before a message; messages and IQs are never delayed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { XmlClient } from './helpers/xml-client.js';
import { RawBosh, type BoshReply } from './helpers/bosh.js';
import { Jid } from '../src/xmpp/jid.js';
import type { XmlElement } from '../src/xml/element.js';

const CSI = 'urn:xmpp:csi:0';
const MAX_HELD = 3;

let ts: TestServer;
const open: XmlClient[] = [];

before(async () => {
  ts = await startTestServer({ listen: { c2s: { requireTls: false } }, csi: { maxHeld: MAX_HELD }, bosh: { presenceDelay: '50ms' } });
  for (const u of ['tina', 'wes', 'bea', 'ari', 'cal', 'dee', 'eli', 'fay', 'gus']) await ts.addUser(u);
  // Everyone watched sees ari, cal, dee and eli (mutual subscriptions).
  const roster = ts.server.core.service('roster');
  for (const watcher of ['tina', 'wes', 'bea']) {
    for (const contact of ['ari', 'cal', 'dee', 'eli']) {
      const both = (jid: string) => ({ jid, name: null, subscription: 'both' as const, groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true });
      await roster.update(Jid.of(watcher, DOMAIN), `${contact}@${DOMAIN}`, () => both(`${contact}@${DOMAIN}`));
      await roster.update(Jid.of(contact, DOMAIN), `${watcher}@${DOMAIN}`, () => both(`${watcher}@${DOMAIN}`));
    }
  }
});

after(async () => {
  for (const c of open) c.cut();
  await ts.stop();
});

async function online(user: string, connect: () => Promise<XmlClient>, resource = 'r'): Promise<XmlClient> {
  const c = await connect();
  open.push(c);
  await c.login(user);
  await c.bind(resource);
  c.write('<presence/>');
  await c.waitFor((el) => el.name === 'presence' && el.attrs.from === `${user}@${DOMAIN}/${resource}`, 'own presence');
  return c;
}
const tcp = () => XmlClient.tcp(ts.port);
const ws = () => XmlClient.ws(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);

const presenceFrom = (user: string) => (el: XmlElement) => el.name === 'presence' && (el.attrs.from ?? '').startsWith(`${user}@`);
const shows = (c: XmlClient, user: string) =>
  c.received.filter(presenceFrom(user)).map((p) => p.attrs.type ?? p.getChildText('show') ?? 'available');
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const [name, connect] of [
  ['TCP', tcp],
  ['WebSocket', ws],
] as const) {
  test(`over ${name}: presence waits while inactive (latest per sender), messages do not, and <active/> sends what waited`, async () => {
    const watcher = await online(name === 'TCP' ? 'tina' : 'wes', connect);
    const ari = await online('ari', tcp, name);
    const cal = await online('cal', tcp, name);
    await watcher.waitFor(presenceFrom('ari'), 'ari online');
    await watcher.waitFor(presenceFrom('cal'), 'cal online');
    const before = { ari: shows(watcher, 'ari').length, cal: shows(watcher, 'cal').length };

    watcher.write(`<inactive xmlns='${CSI}'/>`);
    await pause(50);
    for (const show of ['away', 'xa', 'dnd']) ari.write(`<presence><show>${show}</show></presence>`);
    cal.write('<presence><show>away</show></presence>');
    await pause(200);
    assert.equal(shows(watcher, 'ari').length, before.ari, 'no presence of ari while inactive');
    assert.equal(shows(watcher, 'cal').length, before.cal, 'no presence of cal while inactive');

    // An IQ is not delayed and does not release presence.
    cal.write(`<iq type='get' id='v1' to='${watcher.received.find((e) => e.name === 'iq')!.attrs.to}'><query xmlns='jabber:iq:version'/></iq>`);
    await watcher.waitFor((el) => el.name === 'iq' && el.attrs.id === 'v1', 'IQ at once');
    assert.equal(shows(watcher, 'ari').length, before.ari, 'still held after an IQ');

    // A message goes out at once, after the held presence (latest per sender only).
    ari.write(`<message to='${name === 'TCP' ? 'tina' : 'wes'}@${DOMAIN}' type='chat'><body>hi</body></message>`);
    const msg = await watcher.waitFor((el) => el.name === 'message', 'message');
    assert.deepEqual(shows(watcher, 'ari').slice(before.ari), ['dnd'], 'only the latest of ari');
    assert.deepEqual(shows(watcher, 'cal').slice(before.cal), ['away']);
    const order = watcher.received.indexOf(msg);
    for (const p of watcher.received.filter((el) => presenceFrom('ari')(el) || presenceFrom('cal')(el))) assert.ok(watcher.received.indexOf(p) < order, 'presence before the message');

    // Still inactive: held again; <active/> releases it.
    cal.write('<presence><show>chat</show></presence>');
    // Back to back: the router handles one session's presence in order.
    cal.write('<presence type="unavailable"/>');
    await pause(200);
    assert.equal(shows(watcher, 'cal').length, before.cal + 1, 'held again');
    watcher.write(`<active xmlns='${CSI}'/>`);
    await watcher.waitFor((el) => presenceFrom('cal')(el) && el.attrs.type === 'unavailable', 'held presence on active');
    assert.deepEqual(shows(watcher, 'cal').slice(before.cal), ['away', 'unavailable'], 'chat was replaced by unavailable');
    // Active again: presence flows at once.
    ari.write('<presence/>');
    await watcher.waitFor((el) => presenceFrom('ari')(el) && el.getChild('show') === undefined, 'live presence');
    for (const c of [watcher, ari, cal]) c.end();
  });
}

test('<csi/> is offered after authentication', async () => {
  const c = await tcp();
  open.push(c);
  const features = await c.login('gus');
  assert.ok(features.getChild('csi', CSI));
  assert.ok(!c.received[0]!.getChild('csi', CSI));
  c.end();
});

test('at most maxHeld senders are held: one more sends everything held', async () => {
  const watcher = await online('tina', tcp, 'cap');
  const contacts = await Promise.all(['ari', 'cal', 'dee', 'eli'].map((u) => online(u, tcp, 'cap')));
  for (const u of ['ari', 'cal', 'dee', 'eli']) await watcher.waitFor((el) => presenceFrom(u)(el) && el.attrs.from!.endsWith('/cap'), `${u} online`);
  watcher.write(`<inactive xmlns='${CSI}'/>`);
  await pause(50);
  const counted = () => watcher.received.filter((el) => el.name === 'presence' && el.getChildText('show') === 'away').length;
  for (const c of contacts.slice(0, MAX_HELD)) c.write('<presence><show>away</show></presence>');
  await pause(200);
  assert.equal(counted(), 0, 'held up to the cap');
  contacts[MAX_HELD]!.write('<presence><show>away</show></presence>');
  await watcher.waitFor((el) => el.name === 'presence' && el.getChildText('show') === 'away', 'flushed at the cap');
  await pause(50);
  assert.equal(counted(), MAX_HELD + 1, 'everything held went out');
  for (const c of [watcher, ...contacts]) c.end();
});

test('subscription requests are not held for an inactive client', async () => {
  const watcher = await online('fay', tcp);
  watcher.write(`<inactive xmlns='${CSI}'/>`);
  const asker = await online('gus', tcp);
  asker.write(`<presence to='fay@${DOMAIN}' type='subscribe'/>`);
  await watcher.waitFor((el) => el.name === 'presence' && el.attrs.type === 'subscribe', 'subscribe at once');
  watcher.end();
  asker.end();
});

test('over BOSH: presence waits while inactive and goes out before a message', async () => {
  const bosh = new RawBosh(`${ts.httpUrl}/http-bind`);
  await bosh.login('bea', 'secret', { resource: 'web', create: { wait: '1' } });
  let r: BoshReply = await bosh.send({}, `<inactive xmlns='${CSI}'/>`);
  const dee = await online('dee', tcp, 'bosh');
  dee.write('<presence><show>away</show></presence>');
  dee.write('<presence><show>dnd</show></presence>');
  // Empty polls (the session waits 1 s): no presence of dee comes while bea is inactive.
  const seen: XmlElement[] = [];
  for (let i = 0; i < 2; i++) {
    seen.push(...r.body.elements());
    r = await bosh.send();
  }
  seen.push(...r.body.elements());
  assert.equal(seen.filter(presenceFrom('dee')).length, 0, 'held (beyond the BOSH presence delay)');
  dee.write(`<message to='bea@${DOMAIN}' type='chat'><body>ping</body></message>`);
  const got: XmlElement[] = [];
  for (let i = 0; i < 10 && !got.some((e) => e.name === 'message'); i++) {
    r = await bosh.send();
    got.push(...r.body.elements());
  }
  const fromDee = got.filter(presenceFrom('dee'));
  assert.deepEqual(
    fromDee.map((p) => p.getChildText('show') ?? 'available'),
    ['dnd'],
    'one presence, the latest',
  );
  assert.ok(got.indexOf(fromDee[0]!) < got.findIndex((e) => e.name === 'message'), 'before the message');
  await bosh.send({ type: 'terminate' });
  dee.end();
});
