/**
 * haproxy in front (issue 18, point 2): a private haproxy on the shipped configuration
 * (haproxyConfig(), what deploy/haproxy.cfg is; only ports and addresses differ) in front
 * of one node that trusts it (listen.*.trustedProxies). haproxy connects from its own
 * address, 127.0.0.9 (`source`), and clients from 127.0.0.2, 127.0.0.3... (the whole
 * 127.0.0.0/8 is loopback on Linux), so "another client address" is real.
 *
 * - The public port serves the public paths only; /admin/v1, /metrics, /api/v1 are on
 *   the internal frontend, where allow-lists see the caller's own address.
 * - Per-address limits (failed logins, BOSH sessions) count each client through haproxy.
 * - The admin session list shows the client's address (TCP, BOSH, direct TLS).
 * - A trusted address without a PROXY header is closed; nobody else's PROXY header or
 *   X-Forwarded-For is believed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { startHaproxy, type RunningHaproxy } from './helpers/haproxy.js';
import { needHaproxy } from './helpers/tools.js';
import { boshCreate, Conn, plainAttempt, postFrom } from './helpers/limits.js';
import { rawSocket, wsStream } from './helpers/attacks.js';
import { RawClient, rawHttp, STREAM_HEADER } from './helpers/client.js';
import { buildProxyV2 } from '../src/transports/proxy-protocol.js';

const PROXY = '127.0.0.9';
const TOKEN = 'proxy-test-admin-token-0123456789abcdef';
const PASSWORD = 'secret';

interface Answer {
  status: number;
  text: string;
}

/** An HTTP request from `localAddress` (the shared rawHttp: fetch cannot choose its source address). */
async function http(url: string, opts: { localAddress?: string; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const { status, text } = await rawHttp(url, opts);
  return { status, text };
}

async function attempt(port: number, user: string, password: string, from: string): Promise<string> {
  const { conn, answer } = await plainAttempt(port, user, password, from);
  conn.close();
  if (answer.includes('<success')) return 'success';
  return /<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><([a-z-]+)\/>/.exec(answer)?.[1] ?? answer;
}

describe('haproxy in front of a node that trusts it', { skip: needHaproxy() }, () => {
  let ts: TestServer;
  let hp: RunningHaproxy;
  const conns: Conn[] = [];

  const sessionsOf = async (user: string): Promise<Array<{ transport: string; remoteAddress: string | null }>> => {
    const r = await http(`${ts.httpUrl}/admin/v1/sessions?user=${user}@${DOMAIN}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200, r.text);
    return (JSON.parse(r.text) as { sessions: Array<{ transport: string; remoteAddress: string | null }> }).sessions;
  };

  before(async () => {
    ts = await startTestServer({
      listen: {
        c2s: { requireTls: false, trustedProxies: [PROXY] },
        c2sTls: { trustedProxies: [PROXY] },
        http: { trustedProxies: [`${PROXY}/32`] },
      },
      // No exemption: with loopback exempt every 127.0.0.x client would be.
      limits: { exemptAddresses: [], loginFailuresPerIp: 10, loginFailuresPerAccount: 0, loginDelay: '0s', boshSessionsPerIp: 2 },
      metrics: { allowFrom: ['127.0.0.1/32'] },
      admin: { token: TOKEN },
    });
    for (const u of ['alice', 'bob', 'carol']) await ts.addUser(u, PASSWORD);
    hp = await startHaproxy({ source: PROXY, nodes: [{ name: 'n', host: '127.0.0.1', c2sPort: ts.port, httpPort: ts.httpPort }], checkInterval: 200 });
    // UP means the health checks (PROXY LOCAL headers) were answered.
    for (const b of ['c2s', 'bosh', 'websocket', 'internal']) await hp.waitFor(`${b}/n`, 'UP');
  });

  after(async () => {
    for (const c of conns) c.close();
    await hp?.stop();
    await ts?.stop();
  });

  test('through the public port /admin/v1/status, /metrics and /api/v1/ are not served, BOSH is', async () => {
    const pub = `http://127.0.0.1:${hp.httpPort}`;
    const auth = { Authorization: `Bearer ${TOKEN}` };
    assert.equal((await http(`${pub}/admin/v1/status`, { headers: auth })).status, 404);
    assert.equal((await http(`${pub}/admin/v1/sessions`, { headers: auth })).status, 404);
    assert.equal((await http(`${pub}/metrics`)).status, 404);
    assert.equal((await http(`${pub}/api/v1/events`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status, 404);
    assert.equal((await http(`${pub}/health/ready`)).status, 404);
    assert.equal((await http(`${pub}/http-bind`)).status, 200);
    // The node itself would have answered: the refusal is haproxy's routing.
    assert.equal((await http(`${ts.httpUrl}/admin/v1/status`, { headers: auth })).status, 200);
  });

  test('the internal frontend serves them, and /metrics\' allow-list sees the caller\'s own address through it', async () => {
    const inside = `http://127.0.0.1:${hp.internalPort}`;
    assert.equal((await http(`${inside}/metrics`, { localAddress: '127.0.0.1' })).status, 200);
    const other = await http(`${inside}/metrics`, { localAddress: '127.0.0.2' });
    assert.equal(other.status, 403);
    assert.match(other.text, /not served to 127\.0\.0\.2/);
    // A forged X-Forwarded-For from the client changes nothing (haproxy's PROXY header names the client).
    assert.equal((await http(`${inside}/metrics`, { localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': '127.0.0.1' } })).status, 403);
    assert.equal((await http(`${inside}/admin/v1/status`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status, 200);
    assert.equal((await http(`${inside}/http-bind`)).status, 404, 'the internal frontend serves the inside paths only');
  });

  test('ten failed logins from one client address through haproxy trip the per-address limit; another client address is unaffected', async () => {
    for (let i = 0; i < 10; i++) assert.equal(await attempt(hp.c2sPort, 'alice', 'wrong', '127.0.0.2'), 'not-authorized', `attempt ${i + 1}`);
    // Refused without checking the password.
    assert.equal(await attempt(hp.c2sPort, 'alice', PASSWORD, '127.0.0.2'), 'temporary-auth-failure');
    assert.equal(await attempt(hp.c2sPort, 'alice', PASSWORD, '127.0.0.3'), 'success');
  });

  test('BOSH sessions per address count each client through haproxy', async () => {
    const url = `http://127.0.0.1:${hp.httpPort}/http-bind`;
    for (let i = 0; i < 2; i++) {
      const r = await postFrom(url, boshCreate(1000 + i, DOMAIN), '127.0.0.4');
      assert.match(r.text, /sid=/, r.text);
    }
    assert.match((await postFrom(url, boshCreate(1010, DOMAIN), '127.0.0.4')).text, /type='terminate' condition='policy-violation'/);
    assert.match((await postFrom(url, boshCreate(1020, DOMAIN), '127.0.0.5')).text, /sid=/);
  });

  test('the admin session list shows the client\'s address, for TCP through haproxy and a WebSocket through it works', async () => {
    const { conn, answer } = await plainAttempt(hp.c2sPort, 'bob', PASSWORD, '127.0.0.6');
    conns.push(conn);
    assert.match(answer, /<success/);
    conn.write(STREAM_HEADER);
    await conn.until(/<bind/);
    conn.write(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`);
    await conn.until(/id='b1'/);
    assert.deepEqual((await sessionsOf('bob')).map((s) => [s.transport, s.remoteAddress]), [['tcp', '127.0.0.6']]);
    const ws = await wsStream(`ws://127.0.0.1:${hp.httpPort}/xmpp-websocket`, '127.0.0.7');
    ws.ws.close();
  });

  test('direct TLS from a trusted proxy: the PROXY header comes before the handshake, and the session has the client\'s address', async () => {
    const raw = await RawClient.connect(ts.tlsPort, { localAddress: PROXY });
    raw.write(buildProxyV2({ command: 'proxy', source: { address: '192.0.2.33', port: 40000 }, destination: { address: '127.0.0.1', port: ts.tlsPort } }));
    const tls = await raw.startTls({ servername: DOMAIN, ALPNProtocols: ['xmpp-client'] });
    tls.write(STREAM_HEADER);
    await tls.until(/<\/stream:features>/, 10_000);
    tls.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0carol\0${PASSWORD}`).toString('base64')}</auth>`);
    await tls.take(/<success/, 10_000);
    tls.write(STREAM_HEADER);
    await tls.until(/<bind/, 10_000);
    tls.write(`<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
    await tls.until(/id='b2'/, 10_000);
    assert.deepEqual((await sessionsOf('carol')).map((s) => s.remoteAddress), ['192.0.2.33']);
    tls.close();

    // Another address on the same listener: plain direct TLS, no PROXY read.
    const direct = await (await RawClient.connect(ts.tlsPort, { localAddress: '127.0.0.2' })).startTls({ servername: DOMAIN, ALPNProtocols: ['xmpp-client'] });
    assert.equal(direct.tls!.alpnProtocol, 'xmpp-client');
    direct.write(STREAM_HEADER);
    await direct.until(/<\/stream:features>/, 10_000);
    direct.close();
  });

  test('a connection from the trusted proxy without a PROXY header is closed unanswered, on c2s and HTTP', async () => {
    const c2s = await Conn.open(ts.port, PROXY);
    c2s.write(STREAM_HEADER);
    await c2s.untilClosed();
    assert.equal(c2s.text, '');
    const web = await rawSocket(ts.httpPort, PROXY);
    web.write('GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => web.once('close', r));
    assert.equal(web.received(), '');
  });

  test('a PROXY header or X-Forwarded-For from anyone else is not believed', async () => {
    const forged = buildProxyV2({ command: 'proxy', source: { address: '127.0.0.1', port: 1 }, destination: { address: '127.0.0.1', port: ts.httpPort } });
    // HTTP: the header is bytes of a bad request, not an address.
    const web = await rawSocket(ts.httpPort, '127.0.0.2');
    web.write(Buffer.concat([forged, Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')]));
    await new Promise((r) => web.once('close', r));
    assert.match(web.received(), /^HTTP\/1\.1 400 /);
    // XMPP: the stream is not well-formed.
    const c2s = await Conn.open(ts.port, '127.0.0.2');
    c2s.socket.write(Buffer.concat([forged, Buffer.from(STREAM_HEADER)]));
    await c2s.untilClosed();
    assert.doesNotMatch(c2s.text, /<stream:features/);
    // X-Forwarded-For straight from a client.
    assert.equal((await http(`${ts.httpUrl}/metrics`, { localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': '127.0.0.1' } })).status, 403);
  });

  test('X-Forwarded-For from a trusted proxy: the right-most address that is not a trusted proxy is the client', async () => {
    const ask = async (xff: string): Promise<string> => {
      const s = await rawSocket(ts.httpPort, PROXY);
      // LOCAL: the proxy speaking for itself, so its own address stands, and X-Forwarded-For is read.
      s.write(Buffer.concat([buildProxyV2({ command: 'local' }), Buffer.from(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ${xff}\r\nConnection: close\r\n\r\n`)]));
      await new Promise((r) => s.once('close', r));
      return /^HTTP\/1\.1 (\d+)/.exec(s.received())?.[1] ?? s.received();
    };
    assert.equal(await ask('127.0.0.1'), '200');
    assert.equal(await ask('127.0.0.2'), '403');
    // The left entry is the client's own claim; the proxy appended the right one.
    assert.equal(await ask('127.0.0.1, 127.0.0.2'), '403');
    // A trusted hop is walked past.
    assert.equal(await ask(`127.0.0.1, ${PROXY}`), '200');
  });
});
