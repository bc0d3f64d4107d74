/**
 * Fuzz target: the portal API (src/portal/api.ts) on a running test server.
 * Properties, for random JSON bodies (types, fields, values), raw bytes, methods, paths
 * and headers: never a 5xx; always JSON; every 4xx names `error` and `problem`; a request
 * without the right secret is refused with 401 and applied neither then nor later (its
 * event id is still new when sent again with the secret).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import fc from 'fast-check';
import { signRequest } from '../../../src/portal/tokens.js';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { bytes, type FuzzTarget } from '../harness.js';

const SECRET = 'portal-fuzz-secret-0123456789abcdef';
const USERS = ['ann', 'ben', 'cid'];
let server: TestServer | null = null;
let seq = 0;

interface Reply {
  status: number;
  type: string;
  text: string;
}

/** node:http with the path given verbatim (not rawHttp's URL, which would normalise the fuzzed paths). */
function send(method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server!.httpPort, method, path, headers: { ...headers, 'Content-Length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...USERS, 'ann@example.test', 'nobody', '', ' ', 'ANN', 'a@b@c', 'ann/res', '\u0000', 'x'.repeat(2000), 'image/png', 'aGVsbG8=', '!!!'),
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.constantFrom('friends', 'ann', 1, null), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('type', 'data', 'x', '__proto__'), fc.constantFrom('image/png', 'aGVsbG8=', 1, null, ''), { maxKeys: 3 }),
);
const fieldName = fc.constantFrom('user', 'friend', 'groups', 'userName', 'friendName', 'nickname', 'fullName', 'avatar', 'reason', 'subject', 'body', 'to', 'users', 'resource', 'ttl', 'email', 'url', '__proto__', 'constructor', 'id', 'type');
const eventType = fc.constantFrom('friendship.added', 'friendship.removed', 'user.created', 'user.deleted', 'user.banned', 'user.unbanned', 'profile.changed', 'notification', 'broadcast', 'nope', '');

const jsonBody = fc
  .record({
    id: fc.oneof(fc.constant('fresh'), value),
    type: fc.oneof(eventType, value),
    fields: fc.array(fc.tuple(fieldName, value), { maxLength: 5 }),
  })
  .map((b) => {
    const o: Record<string, unknown> = {};
    if (b.id !== undefined) o.id = b.id === 'fresh' ? `fz-${process.pid}-${++seq}` : b.id;
    o.type = b.type;
    for (const [k, v] of b.fields) Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true });
    return JSON.stringify(o);
  });

/** A body: text, or bytes as numbers; `BIG` stands for a body over the 256 KiB limit (keeps the corpus small). */
const rawBody = fc.oneof(
  { weight: 6, arbitrary: jsonBody },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 1, arbitrary: bytes(80) },
  { weight: 1, arbitrary: fc.constantFrom('', '{', '[]', 'null', '"x"', '{"a":1}{', '\ufeff{}', 'BIG') },
);
const BIG = '{"id":"x","type":"broadcast","body":"' + 'b'.repeat(300 * 1024) + '"}';
const bodyBytes = (b: string | number[]) => (typeof b === 'string' ? Buffer.from(b === 'BIG' ? BIG : b) : Buffer.from(b));

const auth = fc.constantFrom('bearer', 'bearer', 'bearer', 'signed', 'none', 'wrong-bearer', 'lower-bearer', 'basic', 'bad-signature', 'old-signature', 'garbage-timestamp');
const path = fc.constantFrom('/api/v1/events', '/api/v1/events', '/api/v1/prebind', '/api/v1/tokens', '/api/v1/events/', '/api/v1/nope', '/api//v1/events', '/api/v1/events?x=1', '/api/%zz', '/api/v1/../v1/events');
const method = fc.constantFrom('POST', 'POST', 'POST', 'PUT', 'GET', 'DELETE', 'PATCH', 'OPTIONS');
const contentType = fc.constantFrom('application/json', 'text/plain', 'application/json; charset=latin1', '');

function authHeaders(kind: string, m: string, p: string, body: Buffer): Record<string, string> {
  const ts = Math.floor(Date.now() / 1000);
  const pathOnly = p.split('?')[0]!.replace(/\/+$/, '');
  switch (kind) {
    case 'bearer':
      return { Authorization: `Bearer ${SECRET}` };
    case 'signed':
      return { 'X-Parley-Timestamp': String(ts), 'X-Parley-Signature': signRequest(SECRET, m, pathOnly, ts, body.toString('utf8')) };
    case 'wrong-bearer':
      return { Authorization: `Bearer ${SECRET}x` };
    case 'lower-bearer':
      return { Authorization: `bearer ${SECRET.slice(0, -1)}` };
    case 'basic':
      return { Authorization: `Basic ${Buffer.from('portal:' + SECRET).toString('base64')}` };
    case 'bad-signature':
      return { 'X-Parley-Timestamp': String(ts), 'X-Parley-Signature': 'v1=' + 'ab'.repeat(32) };
    case 'old-signature':
      return { 'X-Parley-Timestamp': String(ts - 3600), 'X-Parley-Signature': signRequest(SECRET, m, pathOnly, ts - 3600, body.toString('utf8')) };
    case 'garbage-timestamp':
      return { 'X-Parley-Timestamp': '1e9', 'X-Parley-Signature': 'x' };
    default:
      return {};
  }
}

const input = fc.record({ body: rawBody, auth, path, method, contentType });
type Input = typeof input extends fc.Arbitrary<infer T> ? T : never;

async function check(i: Input): Promise<void> {
  const body = bodyBytes(i.body);
  const headers: Record<string, string> = authHeaders(i.auth, i.method, i.path, body);
  if (i.contentType) headers['Content-Type'] = i.contentType;
  const r = await send(i.method, i.path, headers, body);
  assert.ok(r.status >= 200 && r.status < 500, `status ${r.status}: ${r.text.slice(0, 300)}`);
  assert.match(r.type, /^application\/json/);
  const parsed = JSON.parse(r.text) as Record<string, unknown>;
  if (r.status >= 400) {
    assert.equal(typeof parsed.error, 'string', `no error in ${r.text}`);
    assert.equal(typeof parsed.problem, 'string', `no problem in ${r.text}`);
    if ('field' in parsed) assert.equal(typeof parsed.field, 'string');
  }
  const authorized = i.auth === 'bearer' || i.auth === 'signed';
  // The body is read (bounded) before the credentials are checked: too large is 413.
  if (!authorized && i.method !== 'GET' && i.method !== 'OPTIONS') assert.ok(r.status === 401 || r.status === 413, `unauthenticated request answered ${r.status}`);
  if (!authorized && r.status === 401 && i.method === 'POST' && i.path === '/api/v1/events') {
    // Not applied: the same event id is new when sent with the secret.
    let ev: Record<string, unknown> | null = null;
    try {
      ev = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    if (!ev || typeof ev !== 'object' || typeof ev.id !== 'string' || !String(ev.id).startsWith('fz-')) return;
    const again = await send('POST', i.path, { Authorization: `Bearer ${SECRET}`, 'Content-Type': 'application/json' }, body);
    if (again.status === 200) assert.notEqual((JSON.parse(again.text) as { duplicate?: boolean }).duplicate, true, 'an unauthenticated event was applied');
  }
}

export const apiTarget: FuzzTarget = {
  name: 'api',
  async setup() {
    server = await startTestServer({ portal: { secret: SECRET } });
    for (const u of USERS) await server.addUser(u);
  },
  async teardown() {
    await server?.stop();
    server = null;
  },
  properties: [
    {
      name: 'random requests never get a 5xx, always JSON with error and problem on 4xx, and nothing without the secret',
      arbitrary: input,
      check: async (i: Input) => check(i),
      runs: 250,
    },
  ],
};
