/**
 * The HTTP listener's own behaviour: the lean path for BOSH, hand-over of other requests
 * to node:http on the same connection, keep-alive, pipelining order, slow clients.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';

let ts: TestServer;

before(async () => {
  ts = await startTestServer({ listen: { http: { requestTimeout: '1s', keepAliveTimeout: '2s' } } });
});
after(() => ts.stop());

function open(): Promise<{ s: Socket; read(until: RegExp, ms?: number): Promise<string>; closed: Promise<void> }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port: ts.httpPort }, () => {
      let buf = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (buf += d));
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      resolve({
        s,
        closed,
        async read(until, ms = 3000) {
          const deadline = Date.now() + ms;
          while (!until.test(buf)) {
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${until}; got ${buf}`);
            await new Promise((r) => setTimeout(r, 10));
          }
          const out = buf;
          buf = '';
          return out;
        },
      });
    });
  });
}

const post = (body: string) => `POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const create = (rid: number) => `<body xmlns='http://jabber.org/protocol/httpbind' rid='${rid}' to='${DOMAIN}' wait='1' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>`;

test('BOSH, then another path, then BOSH again on one keep-alive connection', async () => {
  const c = await open();
  c.s.write(post(create(10)));
  assert.match(await c.read(/<\/body>/), /^HTTP\/1\.1 200 OK[\s\S]*sid='/);
  c.s.write('GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(await c.read(/not found\n/), /^HTTP\/1\.1 404/);
  c.s.write(post(create(20)));
  assert.match(await c.read(/<\/body>/), /^HTTP\/1\.1 200 OK[\s\S]*sid='/);
  c.s.destroy();
});

test('pipelined requests are answered in order', async () => {
  const c = await open();
  c.s.write(post(create(30)) + 'OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\n\r\n');
  const out = await c.read(/HTTP\/1\.1 204[\s\S]*\r\n\r\n/);
  assert.ok(out.indexOf('HTTP/1.1 200') < out.indexOf('HTTP/1.1 204'), out);
  c.s.destroy();
});

test('requests pipelined behind held BOSH requests are handed to node:http without polling timers', async () => {
  const conns = await Promise.all(Array.from({ length: 10 }, () => open()));
  const sids: string[] = [];
  for (const [i, c] of conns.entries()) {
    c.s.write(post(create(1000 * (i + 1))));
    sids.push(/sid='([^']+)'/.exec(await c.read(/<\/body>/))![1]!);
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
      c.s.write(post(poll) + 'GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n');
    }
    for (const c of conns) {
      const out = await c.read(/not found\n/, 5000);
      // The held request is answered first (when its wait ends), then the other path.
      assert.ok(out.indexOf('HTTP/1.1 200') >= 0 && out.indexOf('HTTP/1.1 200') < out.indexOf('HTTP/1.1 404'), out);
    }
  } finally {
    globalThis.setInterval = realSetInterval;
  }
  // No per-connection polling (it was a 5 ms setInterval per such connection).
  assert.equal(intervals, 0);
  for (const c of conns) c.s.destroy();
});

test('a request head that never ends is cut after the request timeout', { timeout: 15_000 }, async () => {
  const c = await open();
  c.s.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  // The server cuts it (we never close it): the test's timeout is the only clock.
  await c.closed;
});

test('a body that never arrives in full is cut after the request timeout', async () => {
  const c = await open();
  c.s.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<body');
  await c.closed;
});

test('an oversized head gets 431 and the connection closes', async () => {
  const c = await open();
  c.s.write(`POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}`);
  assert.match(await c.read(/431/), /^HTTP\/1\.1 431/);
  await c.closed;
});

test('a declared body above the limit gets 413 without being read', async () => {
  const c = await open();
  c.s.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n');
  assert.match(await c.read(/policy-violation/), /^HTTP\/1\.1 413/);
  await c.closed;
});

test('Connection: close is honoured', async () => {
  const c = await open();
  const body = create(40);
  c.s.write(`POST /http-bind HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  const out = await c.read(/<\/body>/);
  assert.match(out, /Connection: close/);
  await c.closed;
});

test('an idle keep-alive connection is closed after the keep-alive timeout', { timeout: 15_000 }, async () => {
  const c = await open();
  c.s.write('OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\n\r\n');
  await c.read(/204/);
  // Kept open for a while: it outlives a connection opened now and cut by the request
  // timeout (1s), which is shorter than the keep-alive timeout (2s).
  const slow = await open();
  slow.s.write('POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  const order: string[] = [];
  await Promise.all([c.closed.then(() => order.push('idle')), slow.closed.then(() => order.push('slow'))]);
  assert.deepEqual(order, ['slow', 'idle']);
});
