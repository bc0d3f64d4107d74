/**
 * External components (XEP-0114) on one node, with the real library @xmpp/component: an
 * echo component that users message and send IQs to; the handshake's refusals (wrong
 * secret, unknown host, a second connection); spoofed `from` addresses; a configured
 * component that is not connected; the domain's disco#items; the recipients' privacy
 * rules on what a component sends; and the stream's bounds (raw sockets).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, RawClient, xml, type Element, type TestClient } from './helpers/client.js';
import { until } from './helpers/until.js';
import { XmlElement } from '../src/xml/element.js';
import { Jid } from '../src/xmpp/jid.js';
import { openComponent, startEchoComponent, xml as cxml, type EchoComponent } from './fixtures/echo-component.js';

const HOST = 'echo.example.test';
const SECRET = 'echo-component-secret-0123456789abcdef';
/** Configured, never connected. */
const IDLE = 'idle.example.test';
const IDLE_SECRET = 'idle-component-secret-0123456789abcdef';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const jid = (u: string) => `${u}@${DOMAIN}`;

let ts: TestServer;
let port: number;
const clients: TestClient[] = [];
const components: EchoComponent[] = [];

let logins = 0;
async function login(user: string): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username: user, resource: `r${++logins}` });
  clients.push(c);
  return c;
}

async function component(host = HOST, secret = SECRET): Promise<EchoComponent> {
  const c = await startEchoComponent({ port, host, secret });
  components.push(c);
  return c;
}

function errorCondition(el: Element): string | undefined {
  return el.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text')?.name;
}

before(async () => {
  ts = await startTestServer({
    // The smallest send buffer allowed, so that a component that does not read hits it soon.
    listen: { component: { port: 0, maxSendBuffer: 65536 } },
    components: [
      { host: HOST, secret: SECRET, name: 'Echo component' },
      { host: IDLE, secret: IDLE_SECRET },
    ],
  });
  port = ts.server.port('component');
  for (const u of ['alice', 'bob', 'carol']) await ts.addUser(u);
});

after(async () => {
  for (const c of components) await c.stop();
  for (const c of clients) await c.stop();
  await ts.stop();
});

test('a user messages the echo component and gets the echo back, from the host and from a JID of it', async () => {
  const echo = await component();
  try {
    const alice = await login('alice');
    await alice.send(xml('message', { to: HOST, type: 'chat', id: 'm1' }, xml('body', {}, 'hello component')));
    const back = await alice.message(HOST);
    assert.equal(back.attrs.from, HOST);
    assert.equal(back.getChildText('body'), 'hello component');
    // The component saw the user's full JID as the sender, in its own namespace.
    const got = await echo.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'hello component', 'the message');
    assert.equal(got.attrs.from, alice.jid);
    assert.equal(got.attrs.to, HOST);

    await alice.send(xml('message', { to: `room@${HOST}/nick`, type: 'chat' }, xml('body', {}, 'to a JID of the host')));
    const back2 = await alice.message(`room@${HOST}/nick`);
    assert.equal(back2.getChildText('body'), 'to a JID of the host');

    const stats = ts.server.core.stats;
    assert.ok(stats.componentStanzasIn.message >= 2 && stats.componentStanzasOut.message >= 2);
    assert.equal(ts.server.core.components.connected, 1);
  } finally {
    await echo.stop();
  }
});

test('IQs to the component are answered by it: disco#info and a version get; an IQ it does not handle gets its error', async () => {
  const echo = await component();
  try {
    const alice = await login('alice');
    const info = await alice.iq(xml('iq', { to: HOST, type: 'get' }, xml('query', { xmlns: DISCO_INFO })));
    assert.equal(info.attrs.type, 'result', info.toString());
    assert.equal(info.attrs.from, HOST);
    const identity = info.getChild('query', DISCO_INFO)?.getChild('identity');
    assert.equal(identity?.attrs.category, 'component');
    assert.equal(identity?.attrs.name, 'Echo component');

    const version = await alice.iq(xml('iq', { to: HOST, type: 'get' }, xml('query', { xmlns: 'jabber:iq:version' })));
    assert.equal(version.attrs.type, 'result', version.toString());
    assert.equal(version.getChild('query', 'jabber:iq:version')?.getChildText('name'), 'echo-component');

    const unknown = await alice.iq(xml('iq', { to: HOST, type: 'get' }, xml('query', { xmlns: 'urn:example:nothing' })));
    assert.equal(unknown.attrs.type, 'error');
    assert.equal(errorCondition(unknown), 'service-unavailable');
  } finally {
    await echo.stop();
  }
});

test('the component sends to users and to the server: a message reaches a user, an IQ to the domain is answered', async () => {
  const echo = await component();
  try {
    const bob = await login('bob');
    await echo.send(cxml('message', { from: `bot@${HOST}`, to: jid('bob'), type: 'chat' }, cxml('body', {}, 'from the component')));
    const m = await bob.message(`bot@${HOST}`);
    assert.equal(m.getChildText('body'), 'from the component');
    assert.equal(m.attrs.xmlns ?? 'jabber:client', 'jabber:client');

    await echo.send(cxml('iq', { from: HOST, to: DOMAIN, type: 'get', id: 'c-ping' }, cxml('ping', { xmlns: 'urn:xmpp:ping' })));
    const pong = await echo.waitFor((el) => el.name === 'iq' && el.attrs.id === 'c-ping', 'the ping result');
    assert.equal(pong.attrs.type, 'result');
    assert.equal(pong.attrs.from, DOMAIN);

    // A message to a user who does not exist bounces back to the component.
    await echo.send(cxml('message', { from: `bot@${HOST}`, to: jid('nobody'), type: 'chat', id: 'c-nobody' }, cxml('body', {}, 'anyone?')));
    const bounced = await echo.waitFor((el) => el.name === 'message' && el.attrs.id === 'c-nobody', 'the bounce');
    assert.equal(bounced.attrs.type, 'error');
    assert.equal(errorCondition(bounced), 'service-unavailable');
  } finally {
    await echo.stop();
  }
});

test('directed presence reaches the component, and so does the unavailable presence when the user goes offline', async () => {
  const echo = await component();
  try {
    const dave = await connectClient({ port: ts.port, username: 'bob', resource: 'directed' });
    await dave.send(xml('presence', { to: `room@${HOST}/nick` }));
    const p = await echo.waitFor((el) => el.name === 'presence' && el.attrs.from === dave.jid && el.attrs.type === undefined, 'the directed presence');
    assert.equal(p.attrs.to, `room@${HOST}/nick`);
    await dave.stop();
    await echo.waitFor((el) => el.name === 'presence' && el.attrs.from === dave.jid && el.attrs.type === 'unavailable', 'the unavailable presence');
  } finally {
    await echo.stop();
  }
});

test('the domain\'s disco#items lists the components with their names', async () => {
  const alice = await login('alice');
  const items = await alice.iq(xml('iq', { to: DOMAIN, type: 'get' }, xml('query', { xmlns: DISCO_ITEMS })));
  assert.equal(items.attrs.type, 'result', items.toString());
  const list = items.getChild('query', DISCO_ITEMS)!.getChildren('item').map((i) => ({ jid: i.attrs.jid, name: i.attrs.name }));
  assert.deepEqual(list, [
    { jid: HOST, name: 'Echo component' },
    { jid: IDLE, name: undefined },
  ]);
});

test('a stanza to a configured component that is not connected bounces with service-unavailable; an unknown domain with remote-server-not-found', async () => {
  const alice = await login('alice');
  await alice.send(xml('message', { to: IDLE, type: 'chat', id: 'idle-1' }, xml('body', {}, 'anyone there?')));
  const err = await alice.waitFor((el) => el.name === 'message' && el.attrs.id === 'idle-1', 5000, 'the bounce');
  assert.equal(err.attrs.type, 'error');
  assert.equal(errorCondition(err), 'service-unavailable');

  const iq = await alice.iq(xml('iq', { to: `x@${IDLE}`, type: 'get' }, xml('query', { xmlns: DISCO_INFO })));
  assert.equal(errorCondition(iq), 'service-unavailable');

  // A host whose module is not loaded is any unknown domain.
  await alice.send(xml('message', { to: 'echo-module.example.test', type: 'chat', id: 'remote-1' }, xml('body', {}, '?')));
  const remote = await alice.waitFor((el) => el.name === 'message' && el.attrs.id === 'remote-1', 5000, 'the bounce');
  assert.equal(errorCondition(remote), 'remote-server-not-found');
});

test('a wrong secret ends the stream with not-authorized (counted); nothing is routed for it', async () => {
  const before = ts.server.core.stats.componentAuthFailures;
  const bad = openComponent({ port, host: HOST, secret: 'not-the-secret-0123456789abcdef01234' });
  components.push(bad);
  assert.equal(await bad.outcome, 'not-authorized');
  assert.equal(ts.server.core.stats.componentAuthFailures, before + 1);
  assert.equal(ts.server.core.components.connected, 0);
});

test('a stream for a host that is not a configured component gets host-unknown', async () => {
  const stranger = openComponent({ port, host: 'stranger.example.test', secret: SECRET });
  components.push(stranger);
  assert.equal(await stranger.outcome, 'host-unknown');
});

test('a second connection for a connected host is refused with conflict; the first one keeps working', async () => {
  const first = await component();
  try {
    const second = openComponent({ port, host: HOST, secret: SECRET });
    components.push(second);
    assert.equal(await second.outcome, 'conflict');
    const alice = await login('alice');
    await alice.send(xml('message', { to: HOST, type: 'chat' }, xml('body', {}, 'still there?')));
    assert.equal((await alice.message(HOST)).getChildText('body'), 'still there?');
  } finally {
    await first.stop();
  }
  // Once it left, the host is free again.
  await until('the component is gone', () => ts.server.core.components.connected === 0);
  const again = await component();
  await again.stop();
});

test('a stanza from a JID outside the component\'s host ends its stream with invalid-from, and nothing of it is delivered', async () => {
  const bob = await login('bob');
  const carol = await login('carol');
  for (const spoofed of [jid('alice'), `${jid('alice')}/phone`, DOMAIN, `bot@${IDLE}`, 'elsewhere.example']) {
    const c = await component();
    await c.send(cxml('message', { from: spoofed, to: jid('bob'), type: 'chat' }, cxml('body', {}, `spoofed as ${spoofed}`)));
    assert.equal(await waitError(c), 'invalid-from', spoofed);
    await c.stop();
    await until('the component is gone', () => ts.server.core.components.connected === 0);
  }
  // Stanzas are routed in order: what carol sends now reaches bob after anything spoofed would have.
  await carol.send(xml('message', { to: jid('bob'), type: 'chat' }, xml('body', {}, 'marker')));
  await bob.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'marker', 5000, 'the marker');
  assert.equal(bob.received.filter((el) => el.getChildText('body')?.startsWith('spoofed') === true).length, 0);
});

test('what a component sends meets the recipient\'s privacy rules: a user who blocked the host gets nothing from it', async () => {
  const echo = await component();
  try {
    const carol = await login('carol');
    const blocked = await carol.iq(xml('iq', { type: 'set' }, xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: HOST }))));
    assert.equal(blocked.attrs.type, 'result', blocked.toString());
    await echo.send(cxml('message', { from: `bot@${HOST}`, to: jid('carol'), type: 'chat', id: 'to-blocker' }, cxml('body', {}, 'blocked?')));
    const refused = await echo.waitFor((el) => el.name === 'message' && el.attrs.id === 'to-blocker', 'the refusal');
    assert.equal(refused.attrs.type, 'error');
    // And the blocker's own messages to the host are refused before they leave.
    await carol.send(xml('message', { to: HOST, type: 'chat', id: 'from-blocker' }, xml('body', {}, 'hi')));
    const own = await carol.waitFor((el) => el.name === 'message' && el.attrs.id === 'from-blocker', 5000, 'the refusal');
    assert.equal(errorCondition(own), 'not-acceptable');
    assert.equal(carol.received.filter((el) => el.getChildText('body') === 'blocked?').length, 0);
    await carol.iq(xml('iq', { type: 'set' }, xml('unblock', { xmlns: 'urn:xmpp:blocking' })));
  } finally {
    await echo.stop();
  }
});

test('metrics: connected components, and component stanzas in and out by kind', async () => {
  const echo = await component();
  try {
    await until('connected', () => ts.server.core.components.connected === 1);
    const text = await (await fetch(`${ts.httpUrl}/metrics`)).text();
    assert.match(text, /^parley_components_connected 1$/m);
    assert.match(text, /^parley_component_stanzas_in_total\{kind="message"\} \d+$/m);
    assert.match(text, /^parley_component_stanzas_out_total\{kind="iq"\} \d+$/m);
    assert.match(text, /^parley_component_auth_failures_total [1-9]\d*$/m);
  } finally {
    await echo.stop();
  }
});

// ------------------------------------------------------------------ raw streams

const HEADER = (to: string, ns = 'jabber:component:accept') => `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'>`;

async function rawHandshake(raw: RawClient, secret = SECRET): Promise<void> {
  const header = await raw.take(/<stream:stream [^>]*>/);
  const id = /id='([^']+)'/.exec(header)![1]!;
  raw.write(`<handshake>${createHash('sha1').update(id + secret).digest('hex')}</handshake>`);
  await raw.take(/<handshake\/>/);
}

test('raw: the handshake digest is accepted in upper case; the server names the component host in its header', async () => {
  const raw = await RawClient.connect(port);
  try {
    raw.write(HEADER(HOST));
    const header = await raw.until(/<stream:stream [^>]*>/);
    assert.match(header, /from='echo\.example\.test'/);
    assert.match(header, /xmlns='jabber:component:accept'/);
    const id = /id='([^']+)'/.exec(header)![1]!;
    raw.write(`<handshake>${createHash('sha1').update(id + SECRET).digest('hex').toUpperCase()}</handshake>`);
    await raw.until(/<handshake\/>/);
  } finally {
    raw.close();
    await until('the component is gone', () => ts.server.core.components.connected === 0);
  }
});

test('raw: a stanza before the handshake, a wrong stream namespace, a stanza over the size limit and a missing to each end the stream', async () => {
  const early = await RawClient.connect(port);
  early.write(HEADER(HOST) + `<message from='${HOST}' to='${jid('bob')}'><body>early</body></message>`);
  assert.match(await early.until(/<\/stream:stream>/), /<not-authorized/);
  await early.untilClosed();

  const wrongNs = await RawClient.connect(port);
  wrongNs.write(HEADER(HOST, 'jabber:client'));
  assert.match(await wrongNs.until(/<\/stream:stream>/), /<invalid-namespace/);
  await wrongNs.untilClosed();

  const big = await RawClient.connect(port);
  await (async () => {
    big.write(HEADER(HOST));
    await rawHandshake(big);
    big.write(`<message from='${HOST}' to='${jid('bob')}'><body>${'x'.repeat(ts.config.limits.maxStanzaSize + 10)}</body></message>`);
    assert.match(await big.until(/<\/stream:stream>/), /<policy-violation/);
    await big.untilClosed();
  })();

  const noTo = await RawClient.connect(port);
  noTo.write(HEADER(HOST));
  await rawHandshake(noTo);
  noTo.write(`<message from='${HOST}'><body>where to?</body></message>`);
  assert.match(await noTo.until(/<\/stream:stream>/), /<improper-addressing/);
  await noTo.untilClosed();
  await until('the components are gone', () => ts.server.core.components.connected === 0);
});

test('raw: a component that does not read is cut off at its send buffer (counted); what comes for it while its stream ends bounces', async () => {
  const alice = await login('alice');
  const raw = await RawClient.connect(port);
  raw.write(HEADER(HOST));
  await rawHandshake(raw);
  raw.socket.pause();
  const core = ts.server.core;
  const before = core.stats.componentOverflows;
  const from = Jid.parse(alice.jid);
  const to = Jid.parse(`bot@${HOST}`);
  const message = (id: string) => new XmlElement('message', { from: alice.jid, to: to.full, type: 'chat', id }, [new XmlElement('body', null, ['x'.repeat(32 * 1024)])]);
  // Until the kernel's buffers are full too and the server's own buffer passes its bound.
  for (let i = 0; i < 5000 && core.stats.componentOverflows === before; i++) {
    core.router.route(message(`flood-${i}`), from, to);
    if (i % 20 === 19) await new Promise((r) => setImmediate(r));
  }
  assert.equal(core.stats.componentOverflows, before + 1);
  // Its stream is ending (it has until limits.closeTimeout to close its side): what comes now is handed back.
  core.router.route(message('late'), from, to);
  raw.close();
  await until('the component is gone', () => core.components.connected === 0);
  const bounced = await alice.waitFor((el) => el.name === 'message' && el.attrs.id === 'late', 10_000, 'the bounce');
  assert.equal(bounced.attrs.type, 'error');
  assert.equal(errorCondition(bounced), 'service-unavailable');
});

/** The condition of the next stream error the component gets. */
async function waitError(c: EchoComponent): Promise<string> {
  await until('a stream error', () => c.errors.some((e) => e.condition !== undefined));
  return c.errors.find((e) => e.condition !== undefined)!.condition!;
}
