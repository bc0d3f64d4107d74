/**
 * Limits at the connection level (docs/limits.md): stanza size (TCP and WebSocket),
 * BOSH body size, unauthenticated connections per IP address (TCP, WebSocket, BOSH),
 * BOSH sessions per IP address. Each limit is hit by a real client, which gets the
 * defined error; the counter moves; another client (another user, or another address:
 * 127.0.0.2, loopback too on Linux) is not affected.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { STREAM_HEADER } from './helpers/client.js';
import { Conn, boshCreate, login, postFrom, waitUntil } from './helpers/limits.js';

const servers: TestServer[] = [];
const conns: Conn[] = [];
const sockets: WebSocket[] = [];

async function server(overrides: Record<string, unknown>, users: string[] = []): Promise<TestServer> {
  const ts = await startTestServer({ listen: { c2s: { requireTls: false } }, ...overrides });
  servers.push(ts);
  for (const u of users) await ts.addUser(u);
  return ts;
}

async function open(port: number, localAddress = '127.0.0.1'): Promise<Conn> {
  const c = await Conn.open(port, localAddress);
  conns.push(c);
  return c;
}

/** A WebSocket with the xmpp sub-protocol; resolves once open, or with the HTTP status of a refused upgrade. */
function ws(url: string, localAddress = '127.0.0.1'): Promise<{ ws: WebSocket; messages: string[]; closed: () => boolean } | { status: number }> {
  return new Promise((resolve, reject) => {
    const s = new WebSocket(url, ['xmpp'], { localAddress });
    sockets.push(s);
    const messages: string[] = [];
    let closed = false;
    s.on('message', (d) => messages.push(d.toString()));
    s.on('close', () => (closed = true));
    s.once('open', () => resolve({ ws: s, messages, closed: () => closed }));
    s.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    s.once('error', (e) => (closed ? undefined : reject(e)));
  });
}

const WS_OPEN = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${DOMAIN}' version='1.0'/>`;

after(async () => {
  for (const c of conns) c.close();
  for (const s of sockets) s.terminate();
  for (const s of servers) await s.stop();
});

test('a stanza over maxStanzaSize ends a TCP stream with policy-violation; other sessions go on', async () => {
  const ts = await server({ limits: { maxStanzaSize: 1024 } }, ['alice', 'bob']);
  const alice = await login(ts.port, 'alice');
  const bob = await login(ts.port, 'bob');
  conns.push(alice, bob);
  alice.write(`<message to='bob@${DOMAIN}' type='chat'><body>${'x'.repeat(2000)}</body></message>`);
  await alice.until(/<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await alice.untilClosed();
  assert.equal(ts.server.core.stats.limitHits['stanza-size'], 1);
  const at = bob.text.length;
  bob.write(`<iq type='get' id='ping1' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await bob.until(/id='ping1'/, at);
  assert.ok(!bob.closed);
});

test('a stanza over maxStanzaSize ends a WebSocket stream with policy-violation, also when the frame is over the WebSocket payload bound', async () => {
  const ts = await server({ limits: { maxStanzaSize: 1024 } });
  const url = `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`;
  for (const [i, size] of [1500, 8000].entries()) {
    const c = await ws(url);
    assert.ok('ws' in c);
    c.ws.send(WS_OPEN);
    await waitUntil(() => c.messages.some((m) => m.includes('features')), 5000, () => 'stream features');
    c.ws.send(`<message xmlns='jabber:client' to='x@${DOMAIN}'><body>${'y'.repeat(size)}</body></message>`);
    await waitUntil(() => c.messages.some((m) => m.includes('<policy-violation')), 5000, () => `policy-violation after ${size} bytes: ${c.messages.join('\n')}`);
    assert.ok(c.messages.some((m) => m.startsWith('<close')), 'the stream is closed with <close/>');
    await waitUntil(c.closed, 10_000, () => 'the WebSocket to close');
    assert.equal(ts.server.core.stats.limitHits['stanza-size'], i + 1);
  }
  // Another client on the same endpoint is not affected.
  const other = await ws(url);
  assert.ok('ws' in other);
  other.ws.send(WS_OPEN);
  await waitUntil(() => other.messages.some((m) => m.includes('features')), 5000, () => 'stream features');
});

test('a BOSH body over listen.http.maxBodySize gets 413 with terminate policy-violation; other requests pass', async () => {
  const ts = await server({ listen: { http: { maxBodySize: 4096 } } });
  const url = `${ts.httpUrl}/http-bind`;
  const big = `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='${DOMAIN}' wait='1' hold='1' ver='1.6'>${' '.repeat(5000)}</body>`;
  const r = await postFrom(url, big, '127.0.0.1');
  assert.equal(r.status, 413);
  assert.match(r.text, /type='terminate' condition='policy-violation'/);
  assert.equal(ts.server.core.stats.limitHits['bosh-body-size'], 1);
  const ok = await postFrom(url, boshCreate(100, DOMAIN), '127.0.0.1');
  assert.equal(ok.status, 200);
  assert.match(ok.text, /sid='/);
});

test('unauthenticated connections per IP: the next is refused at once on TCP (policy-violation), WebSocket (429) and BOSH (terminate); other addresses and authenticated sessions are not', async () => {
  const ts = await server({ limits: { unauthenticatedPerIp: 2, exemptAddresses: [] } }, ['carol']);
  const hits = () => ts.server.core.stats.limitHits['unauthenticated-per-ip'];
  const a = await open(ts.port);
  const b = await open(ts.port);
  await waitUntil(() => ts.server.core.limits.unauthenticated('127.0.0.1') === 2, 5000, () => 'two connections counted');
  // TCP: a stream error, then the connection ends.
  const c = await open(ts.port);
  await c.until(/<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await c.untilClosed();
  assert.equal(hits(), 1);
  // WebSocket: the upgrade is refused with 429.
  const w = await ws(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);
  assert.deepEqual(w, { status: 429 });
  assert.equal(hits(), 2);
  // BOSH: the session creation is answered with terminate policy-violation.
  const r = await postFrom(`${ts.httpUrl}/http-bind`, boshCreate(200, DOMAIN), '127.0.0.1');
  assert.match(r.text, /type='terminate' condition='policy-violation'/);
  assert.equal(hits(), 3);
  // Another address is not affected.
  const other = await open(ts.port, '127.0.0.2');
  other.write(STREAM_HEADER);
  await other.until(/<\/stream:features>/);
  // A connection that authenticates frees its place.
  a.write(STREAM_HEADER);
  await a.until(/<\/stream:features>/);
  a.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0carol\0secret').toString('base64')}</auth>`);
  await a.until(/<success/);
  const d = await open(ts.port);
  d.write(STREAM_HEADER);
  await d.until(/<\/stream:features>/);
  assert.ok(!d.closed);
  assert.equal(hits(), 3);
  b.close();
});

test('BOSH sessions per IP: the next session is refused with terminate policy-violation; another address creates one', async () => {
  const ts = await server({ limits: { boshSessionsPerIp: 2, exemptAddresses: [] } });
  const url = `${ts.httpUrl}/http-bind`;
  for (const rid of [300, 400]) assert.match((await postFrom(url, boshCreate(rid, DOMAIN), '127.0.0.1')).text, /sid='/);
  const r = await postFrom(url, boshCreate(500, DOMAIN), '127.0.0.1');
  assert.match(r.text, /type='terminate' condition='policy-violation'/);
  assert.equal(ts.server.core.stats.limitHits['bosh-sessions-per-ip'], 1);
  assert.equal(ts.server.core.stats.limitHits['unauthenticated-per-ip'], 0);
  const other = await postFrom(url, boshCreate(600, DOMAIN), '127.0.0.2');
  assert.match(other.text, /sid='/);
});
