/**
 * What a hostile page can do with Parley's HTTP listener, seen from outside: every
 * response has a fixed, safe Content-Type, nosniff and (where no page is served) a CSP
 * that runs nothing; CORS is the server's own origin plus the configured ones, and a
 * request from any other origin is refused before it has an effect. The same attacks in
 * a real browser are in browser-xss.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, RawClient, xml, type TestClient } from './helpers/client.js';
import { RawBosh, post, HTTPBIND } from './helpers/bosh.js';

const NO_PAGE_CSP = "default-src 'none'; frame-ancestors 'none'";
const TOKEN = 'admin-token-for-http-security-0123456789';
const SECRET = 'portal-secret-for-http-security-0123456789';
const EVIL = 'https://evil.example';

let ts: TestServer;
let url: string;
const clients: TestClient[] = [];

before(async () => {
  ts = await startTestServer({
    demo: { enabled: true },
    admin: { token: TOKEN },
    portal: { secret: SECRET },
  });
  url = `${ts.httpUrl}/http-bind`;
  for (const u of ['mallory', 'victim', 'trent']) await ts.addUser(u);
});

after(async () => {
  for (const c of clients) await c.stop();
  await ts.stop();
});

/** A raw HTTP/1.1 exchange on a fresh connection (the shared RawClient, latin1 so lengths are bytes); resolves with the head and body text. */
async function raw(request: string): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  const c = await RawClient.connect(ts.httpPort, { encoding: 'latin1' });
  c.write(request);
  const got: { answer?: { status: number; headers: Map<string, string>; body: string } } = {};
  const parse = (): boolean => {
    const buf = c.text;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return false;
    const lines = buf.slice(0, end).split('\r\n');
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) headers.set(l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim());
    const length = Number(headers.get('content-length') ?? 0);
    if (buf.length < end + 4 + length) return false;
    got.answer = { status: Number(lines[0]!.split(' ')[1]), headers, body: buf.slice(end + 4, end + 4 + length) };
    return true;
  };
  await c.when(() => parse() || c.closed, 10_000, () => `no whole answer: ${c.text}`);
  c.close();
  if (!got.answer) throw new Error(`the connection closed before a whole answer: ${c.text}`);
  return got.answer;
}

function assertSafe(what: string, type: string | null | undefined, nosniff: string | null | undefined, csp: string | null | undefined): void {
  assert.ok(type, `${what}: a Content-Type`);
  assert.match(type, /^(text\/xml; charset=utf-8|text\/plain(; .*)?|application\/json(; charset=utf-8)?|application\/openmetrics-text.*)$/, `${what}: ${type}`);
  assert.equal(nosniff, 'nosniff', `${what}: nosniff`);
  assert.equal(csp, NO_PAGE_CSP, `${what}: CSP`);
}

describe('safe headers', () => {
  test('BOSH answers text/xml with nosniff and the no-page CSP, whatever content the session asked for', async () => {
    for (const content of ['text/html', 'application/xhtml+xml', 'image/svg+xml; charset=utf-8']) {
      const b = new RawBosh(url);
      const created = await b.create({ content, wait: '1' });
      assertSafe(`creation with content=${content}`, created.headers.get('content-type'), created.headers.get('x-content-type-options'), created.headers.get('content-security-policy'));
      const poll = await b.send();
      assertSafe(`poll with content=${content}`, poll.headers.get('content-type'), poll.headers.get('x-content-type-options'), poll.headers.get('content-security-policy'));
      await b.send({ type: 'terminate' });
    }
  });

  test('BOSH on the node:http path (a chunked request) has the same headers', async () => {
    const body = `<body xmlns='${HTTPBIND}' rid='5000' to='${DOMAIN}' wait='1' hold='1' ver='1.6' content='text/html'/>`;
    // A chunked body is not for the lean path: node:http serves this BOSH request.
    const chunked = await raw(`POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    assert.equal(chunked.status, 200, chunked.body);
    assert.match(chunked.body, /sid='/);
    assertSafe('chunked BOSH', chunked.headers.get('content-type'), chunked.headers.get('x-content-type-options'), chunked.headers.get('content-security-policy'));
  });

  test('the lean path refusals (431, 413, 400) carry nosniff and the CSP', async () => {
    const big = await raw(`POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}`);
    assert.equal(big.status, 431);
    assertSafe('431', big.headers.get('content-type'), big.headers.get('x-content-type-options'), big.headers.get('content-security-policy'));
    const huge = await raw('POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n');
    assert.equal(huge.status, 413);
    assertSafe('413', huge.headers.get('content-type'), huge.headers.get('x-content-type-options'), huge.headers.get('content-security-policy'));
    const bad = await raw('POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n');
    assert.equal(bad.status, 400);
    assertSafe('400', bad.headers.get('content-type'), bad.headers.get('x-content-type-options'), bad.headers.get('content-security-policy'));
  });

  test('the portal API, the admin API, /metrics, the health paths and unknown paths have fixed types, nosniff and the no-page CSP', async () => {
    const requests: Array<[string, RequestInit]> = [
      ['/http-bind', {}],
      ['/xmpp-websocket', {}],
      ['/api/v1/events', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } }],
      ['/api/v1/events', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${SECRET}` } }],
      ['/admin/v1/status', { headers: { Authorization: `Bearer ${TOKEN}` } }],
      ['/admin/v1/status', {}],
      ['/metrics', {}],
      ['/health/live', {}],
      ['/health/ready', {}],
      ['/health/live', { method: 'POST' }],
      ['/no/such/page', {}],
    ];
    for (const [path, init] of requests) {
      const res = await fetch(`${ts.httpUrl}${path}`, init);
      await res.arrayBuffer();
      assertSafe(`${init.method ?? 'GET'} ${path} (${res.status})`, res.headers.get('content-type'), res.headers.get('x-content-type-options'), res.headers.get('content-security-policy'));
    }
  });

  test('the demo portal pages send a strict CSP of their own and carry no inline script or style', async () => {
    const res = await fetch(`${ts.httpUrl}/`);
    const html = await res.text();
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /<style/, 'no inline style');
    assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handler');
    for (const [path, type] of [
      ['/demo/portal.js', /^text\/javascript/],
      ['/demo/portal.css', /^text\/css/],
      ['/widget/parley-widget.css', /^text\/css/],
    ] as const) {
      const r = await fetch(`${ts.httpUrl}${path}`);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', type, path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      await r.arrayBuffer();
    }
  });
});

describe('CORS', () => {
  const create = (rid: number) => `<body xmlns='${HTTPBIND}' rid='${rid}' to='${DOMAIN}' wait='1' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>`;

  test("a foreign page's text/plain form POST is refused before it creates a session", async () => {
    const before = ts.server.bosh!.stats.sessionsCreated;
    // What a form with enctype=text/plain sends: a "simple" request, no preflight.
    const r = await post(url, create(7000), { headers: { Origin: EVIL, 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    assert.equal(ts.server.bosh!.stats.sessionsCreated, before, 'no session was created');
    const nul = await post(url, create(7001), { headers: { Origin: 'null', 'Content-Type': 'text/plain' } });
    assert.equal(nul.status, 403, 'a sandboxed page (Origin: null) is foreign too');
    assert.equal(ts.server.bosh!.stats.sessionsCreated, before);
  });

  test("a foreign page cannot send a stanza on someone's session, nor read its queue", async () => {
    const victim = await connectClient({ port: ts.port, username: 'victim' });
    clients.push(victim);
    const b = new RawBosh(url);
    await b.login('mallory');
    const trent = await connectClient({ port: ts.port, username: 'trent' });
    clients.push(trent);
    await trent.send(xml('message', { to: b.jid, id: 'queued' }, xml('body', null, 'for mallory')));
    await trent.iq(xml('iq', { type: 'get', to: DOMAIN }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    const rid = b.rid;
    const foreign = await post(url, b.body(rid, {}, `<message xmlns='jabber:client' to='victim@${DOMAIN}' id='forged'><body>x</body></message>`), {
      headers: { Origin: EVIL, 'Content-Type': 'text/plain' },
    });
    assert.equal(foreign.status, 403);
    assert.doesNotMatch(foreign.text, /for mallory/, 'the queue was not read');
    // The rid was not consumed and the queued message is still there for the session's own client.
    const own = await b.send();
    assert.equal(b.rid, rid + 1);
    const got = await b.until(own, 'message', (el) => el.attrs.id === 'queued');
    assert.equal(got.getChildText('body'), 'for mallory');
    // The forged message never reached the victim: a later probe comes first and alone.
    await trent.send(xml('message', { to: `victim@${DOMAIN}`, id: 'probe' }, xml('body', null, 'probe')));
    const first = await victim.waitFor((el) => el.name === 'message');
    assert.equal(first.attrs.id, 'probe');
    await b.send({ type: 'terminate' });
  });

  test("by default the server's own origin may use BOSH, and requests without Origin (non-browser clients)", async () => {
    const self = await post(url, create(8000), { headers: { Origin: ts.httpUrl } });
    assert.equal(self.status, 200);
    assert.ok(self.body.attrs.sid, self.text);
    const pre = await fetch(url, { method: 'OPTIONS', headers: { Origin: EVIL, 'Access-Control-Request-Method': 'POST' } });
    assert.equal(pre.status, 403);
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
    const none = await post(url, create(8200));
    assert.equal(none.status, 200);
    assert.ok(none.body.attrs.sid);
  });

  test('a WebSocket handshake from a foreign origin is refused; from the own origin it opens', async () => {
    const open = (origin: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, 'xmpp', { origin });
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('error', () => undefined);
      });
    assert.equal(await open(EVIL), 403);
    assert.equal(await open(ts.httpUrl), 101);
  });

  test('a listed origin gets CORS headers; with listen.http.secure only https://<Host> is the own origin', async () => {
    const secure = await startTestServer({ listen: { http: { secure: true, corsOrigins: ['https://portal.example.test'] } } });
    try {
      const host = `127.0.0.1:${secure.httpPort}`;
      const u = `${secure.httpUrl}/http-bind`;
      const listed = await post(u, create(8100), { headers: { Origin: 'https://portal.example.test' } });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers.get('access-control-allow-origin'), 'https://portal.example.test');
      const pre = await fetch(u, { method: 'OPTIONS', headers: { Origin: 'https://portal.example.test', 'Access-Control-Request-Method': 'POST' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'https://portal.example.test');
      assert.equal((await post(u, create(8200), { headers: { Origin: EVIL } })).status, 403);
      assert.equal((await post(u, create(9000), { headers: { Origin: `http://${host}` } })).status, 403);
      assert.equal((await post(u, create(9100), { headers: { Origin: `https://${host}` } })).status, 200);
      assert.equal((await post(u, create(9200), { headers: { Origin: `https://127.0.0.1:1` } })).status, 403);
    } finally {
      await secure.stop();
    }
  });
});
