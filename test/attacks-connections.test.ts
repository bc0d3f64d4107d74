/**
 * Attacks on connections (issue 10, point 2): slowloris on TCP (bytes trickled), BOSH
 * (HTTP head never finished, body trickled) and WebSocket (upgrade never finished, or an
 * open socket that never sends <open/>), and thousands of unauthenticated connections
 * from several addresses: each is cut by its timeout (limits.authTimeout,
 * listen.http.requestTimeout), the per-IP limit refuses extra ones, memory stays
 * bounded, and a real user still logs in and is served.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { STREAM_HEADER } from './helpers/client.js';
import { Conn, login, waitUntil } from './helpers/limits.js';
import { memory, rawSocket, sleep, wsConnect, type WsConn } from './helpers/attacks.js';

let ts: TestServer;
const conns: Conn[] = [];
const cleanups: Array<() => void> = [];

before(async () => {
  ts = await startTestServer({
    listen: { c2s: { requireTls: false }, http: { requestTimeout: '1s' } },
    limits: { authTimeout: '1s', exemptAddresses: [] },
  });
  await ts.addUser('alice');
});

after(async () => {
  for (const c of conns) c.close();
  for (const f of cleanups) f();
  await ts.stop();
});

/** Writes `text` one byte every `everyMs` until it is all sent or the socket closes; resolves with the bytes sent. */
async function trickle(write: (b: string) => void, isClosed: () => boolean, text: string, everyMs = 100): Promise<number> {
  let i = 0;
  while (i < text.length && !isClosed()) {
    write(text[i++]!);
    await sleep(everyMs);
  }
  return i;
}

async function aliceStillServed(): Promise<void> {
  const c = await login(ts.port, 'alice', 'secret', `r${Math.random().toString(36).slice(2, 8)}`, '127.0.0.20');
  conns.push(c);
  const at = c.text.length;
  c.write(`<iq type='get' id='p1' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until(/id='p1'/, at);
  c.close();
}

test('slowloris on TCP: a stream header trickled a byte at a time is cut by authTimeout', async () => {
  const c = await Conn.open(ts.port, '127.0.0.2');
  conns.push(c);
  const text = STREAM_HEADER + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${'A'.repeat(400)}`;
  const sent = await trickle((b) => c.write(b), () => c.closed, text, 20);
  await c.untilClosed();
  assert.ok(sent < text.length, 'cut before the trickle ended');
  assert.match(c.text, /<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  // A connection that sends nothing at all is cut too.
  const idle = await Conn.open(ts.port, '127.0.0.2');
  conns.push(idle);
  await idle.untilClosed();
  await aliceStillServed();
});

test('slowloris on BOSH: an HTTP head never finished, or a body trickled, is cut by requestTimeout', async () => {
  const heads = [
    'POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nX-a: ' + 'a'.repeat(200),
    // Chunked: node:http's side (headersTimeout).
    'POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<body',
    // The head complete, the body trickled.
    `POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='${DOMAIN}'>${' '.repeat(300)}`,
  ];
  await Promise.all(
    heads.map(async (head, i) => {
      const s = await rawSocket(ts.httpPort, '127.0.0.3');
      cleanups.push(() => s.destroy());
      let closed = false;
      s.on('close', () => (closed = true));
      // The first part at once for the chunked one (node:http sees a request), then a byte every 50 ms.
      if (i === 1) {
        s.write(head);
        await trickle((b) => s.write(b), () => closed, ' '.repeat(400), 50);
      } else await trickle((b) => s.write(b), () => closed, head, 20);
      await waitUntil(() => closed, 15_000, () => `request ${i} to be cut`);
    }),
  );
  assert.equal(ts.server.core.limits.unauthenticated('127.0.0.3'), 0);
});

test('slowloris on WebSocket: an upgrade never finished is cut by requestTimeout; an open socket that never sends <open/> by authTimeout', async () => {
  const s = await rawSocket(ts.httpPort, '127.0.0.4');
  cleanups.push(() => s.destroy());
  let closed = false;
  s.on('close', () => (closed = true));
  const upgrade = 'GET /xmpp-websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\nX-pad: ' + 'p'.repeat(200);
  const sent = await trickle((b) => s.write(b), () => closed, upgrade, 20);
  await waitUntil(() => closed, 15_000, () => 'the upgrade to be cut');
  assert.ok(sent < upgrade.length);
  assert.doesNotMatch(s.received(), /101 Switching/);

  const w = (await wsConnect(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, '127.0.0.4')) as WsConn;
  assert.ok('ws' in w);
  cleanups.push(() => w.ws.terminate());
  await w.untilClosed(15_000);
  assert.equal(ts.server.core.limits.unauthenticated('127.0.0.4'), 0);
  await aliceStillServed();
});

test('thousands of unauthenticated connections from several addresses: the per-IP limit refuses extra ones, memory stays bounded, idle ones are cut, a user still logs in', async () => {
  const perIp = 250;
  const ips = Array.from({ length: 12 }, (_, i) => `127.0.1.${i + 1}`);
  const flood = await startTestServer({
    listen: { c2s: { requireTls: false }, http: { enabled: false }, c2sTls: { enabled: false } },
    limits: { authTimeout: '5s', exemptAddresses: [], unauthenticatedPerIp: perIp },
  });
  await flood.addUser('bob');
  const opened: Conn[] = [];
  try {
    const before = await memory();
    // Every address fills its allowance; half of the connections open a stream, half send nothing.
    await Promise.all(
      ips.map(async (ip) => {
        for (let i = 0; i < perIp; i += 50) {
          const batch = await Promise.all(Array.from({ length: 50 }, () => Conn.open(flood.port, ip)));
          batch.forEach((c, j) => j % 2 === 0 && c.write(STREAM_HEADER));
          opened.push(...batch);
        }
      }),
    );
    await waitUntil(() => ips.every((ip) => flood.server.core.limits.unauthenticated(ip) === perIp), 10_000, () => 'every connection counted');
    const during = await memory();
    const perConn = (during.rss - before.rss) / opened.length;
    console.log(`# ${opened.length} unauthenticated connections: RSS +${((during.rss - before.rss) / 1048576).toFixed(1)} MB, ${(perConn / 1024).toFixed(1)} KiB each (client and server sides)`);
    assert.ok(perConn < 64 * 1024, `${(perConn / 1024).toFixed(1)} KiB per connection`);
    // One more from each address is refused at once.
    for (const ip of ips.slice(0, 3)) {
      const extra = await Conn.open(flood.port, ip);
      opened.push(extra);
      await extra.until(/<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
      await extra.untilClosed();
    }
    assert.ok((flood.server.core.stats.limitHits['unauthenticated-per-ip'] ?? 0) >= 3);
    // A user from another address logs in meanwhile.
    const bob = await login(flood.port, 'bob', 'secret', 'r', '127.0.2.1');
    opened.push(bob);
    // The idle ones are cut by authTimeout, and every place is free again.
    await waitUntil(() => opened.every((c) => c.closed || c === bob), 20_000, () => `all cut (${opened.filter((c) => !c.closed).length} open)`);
    assert.ok(ips.every((ip) => flood.server.core.limits.unauthenticated(ip) === 0));
    assert.ok(!bob.closed, 'the authenticated user stays');
  } finally {
    for (const c of opened) c.close();
    await flood.stop();
  }
});
