/**
 * The HTTP listener's own behaviour: the lean path for BOSH, hand-over of other requests
 * to node:http on the same connection, keep-alive, pipelining order, slow clients.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { RawClient } from './helpers/client.js';

let ts: TestServer;

before(async () => {
  ts = await startTestServer({ listen: { http: { requestTimeout: '1s', keepAliveTimeout: '2s' } } });
});
after(() => ts.stop());

const open = (): Promise<RawClient> => RawClient.connect(ts.httpPort);

const post = (body: string) => `POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const create = (rid: number) => `<body xmlns='http://jabber.org/protocol/httpbind' rid='${rid}' to='${DOMAIN}' wait='1' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>`;

test('BOSH, then another path, then BOSH again on one keep-alive connection', async () => {
  const c = await open();
  c.write(post(create(10)));
  assert.match(await c.take(/<\/body>/), /^HTTP\/1\.1 200 OK[\s\S]*sid='/);
  c.write('GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(await c.take(/not found\n/), /^HTTP\/1\.1 404/);
  c.write(post(create(20)));
  assert.match(await c.take(/<\/body>/), /^HTTP\/1\.1 200 OK[\s\S]*sid='/);
  c.close();
});

test('pipelined requests are answered in order', async () => {
  const c = await open();
  c.write(post(create(30)) + 'OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\n\r\n');
  const out = await c.take(/HTTP\/1\.1 204[\s\S]*\r\n\r\n/);
  assert.ok(out.indexOf('HTTP/1.1 200') < out.indexOf('HTTP/1.1 204'), out);
  c.close();
});

test('requests pipelined behind held BOSH requests are handed to node:http without polling timers', async () => {
  const conns = await Promise.all(Array.from({ length: 10 }, () => open()));
  const sids: string[] = [];
  for (const [i, c] of conns.entries()) {
    c.write(post(create(1000 * (i + 1))));
    sids.push(/sid='([^']+)'/.exec(await c.take(/<\/body>/))![1]!);
  }
  // Count the intervals the server starts while every connection has a held BOSH request
  // (wait=1s) with a request for another path pipelined behind it.
  const realSetInterval = globalThis.setInterval;
  let intervals = 0;
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    intervals++;
    return realSetInterval(...args);
  }) as typeof setInterval;
  try {
    for (const [i, c] of conns.entries()) {
      const poll = `<body xmlns='http://jabber.org/protocol/httpbind' rid='${1000 * (i + 1) + 1}' sid='${sids[i]}'/>`;
      c.write(post(poll) + 'GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n');
    }
    for (const c of conns) {
      const out = await c.take(/not found\n/, 5000);
      // The held request is answered first (when its wait ends), then the other path.
      assert.ok(out.indexOf('HTTP/1.1 200') >= 0 && out.indexOf('HTTP/1.1 200') < out.indexOf('HTTP/1.1 404'), out);
    }
  } finally {
    globalThis.setInterval = realSetInterval;
  }
  // No per-connection polling (it was a 5 ms setInterval per such connection).
  assert.equal(intervals, 0);
  for (const c of conns) c.close();
});

test('a request head that never ends is cut after the request timeout', { timeout: 15_000 }, async () => {
  const c = await open();
  c.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  // The server cuts it (we never close it): the test's timeout is the only clock.
  await c.whenClosed;
});

test('a body that never arrives in full is cut after the request timeout', async () => {
  const c = await open();
  c.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<body');
  await c.whenClosed;
});

test('an oversized head gets 431 and the connection closes', async () => {
  const c = await open();
  c.write(`POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}`);
  assert.match(await c.take(/431/), /^HTTP\/1\.1 431/);
  await c.whenClosed;
});

test('a declared body above the limit gets 413 without being read', async () => {
  const c = await open();
  c.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n');
  assert.match(await c.take(/policy-violation/), /^HTTP\/1\.1 413/);
  await c.whenClosed;
});

test('Connection: close is honoured', async () => {
  const c = await open();
  const body = create(40);
  c.write(`POST /http-bind HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  const out = await c.take(/<\/body>/);
  assert.match(out, /Connection: close/);
  await c.whenClosed;
});

test('an idle keep-alive connection is closed after the keep-alive timeout', { timeout: 15_000 }, async () => {
  const c = await open();
  c.write('OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\n\r\n');
  await c.take(/204/);
  // Kept open for a while: it outlives a connection opened now and cut by the request
  // timeout (1s), which is shorter than the keep-alive timeout (2s).
  const slow = await open();
  slow.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  const order: string[] = [];
  await Promise.all([c.whenClosed.then(() => order.push('idle')), slow.whenClosed.then(() => order.push('slow'))]);
  assert.deepEqual(order, ['slow', 'idle']);
});
