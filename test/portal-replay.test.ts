/**
 * Replays of signed portal API requests (docs/api.md, issue 18 point 6), from the outside:
 * a captured `POST /api/v1/tokens` or `/api/v1/prebind` sent again with its signature
 * spelled another way (a trailing or leading U+00A0, a tab, upper case, another prefix),
 * written byte for byte on a raw socket; and an unmodified replay to another node of a
 * cluster (two servers sharing Redis, with a prefix of this test's own, removed after).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, CLUSTER_SECRET, type TestServer } from './helpers/server.js';
import { rawSocket, sleep } from './helpers/attacks.js';
import { signRequest } from '../src/portal/tokens.js';

const SECRET = 'portal-replay-secret-0123456789abcdef';
const REDIS = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';

interface Signed {
  path: string;
  body: string;
  timestamp: string;
  signature: string;
}

function signed(path: string, body: unknown): Signed {
  const text = JSON.stringify(body);
  const t = Math.floor(Date.now() / 1000);
  return { path, body: text, timestamp: String(t), signature: signRequest(SECRET, 'POST', path, t, text) };
}

/**
 * Sends the request on a raw socket, header values written as given (latin1: U+00A0 is
 * the single byte 0xA0, as a client library would put it on the wire); resolves with the
 * status and the JSON body.
 */
async function send(port: number, r: Signed, signature = r.signature, timestamp = r.timestamp): Promise<{ status: number; body: Record<string, unknown> }> {
  const s = await rawSocket(port);
  s.setEncoding('latin1');
  const head =
    `POST ${r.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(r.body)}\r\n` +
    `X-Parley-Timestamp: ${timestamp}\r\nX-Parley-Signature: ${signature}\r\nConnection: close\r\n\r\n`;
  s.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(r.body, 'utf8')]));
  const deadline = Date.now() + 10_000;
  while (!s.destroyed && !s.readableEnded) {
    if (Date.now() > deadline) throw new Error(`no answer: ${s.received()}`);
    await sleep(10);
  }
  s.destroy();
  const text = s.received();
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const rest = text.slice(text.indexOf("\r\n\r\n") + 4);
  const json = /^transfer-encoding: chunked/im.test(text.slice(0, text.indexOf("\r\n\r\n"))) ? rest.replace(/^[0-9a-f]+\r\n/, "").replace(/\r\n0\r\n\r\n$/, "").replace(/\r\n$/, "") : rest;
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(json) as Record<string, unknown>;
  } catch {
    body = { text: json };
  }
  return { status, body };
}

describe('one node', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({ portal: { secret: SECRET } });
    for (const u of ['ann', 'ben']) await ts.addUser(u);
  });
  after(() => ts.stop());

  test('a used signed request sent again with its signature spelled another way (U+00A0, tab, case, prefix) is refused', async () => {
    for (const r of [signed('/api/v1/tokens', { user: 'ann', ttl: 60 }), signed('/api/v1/prebind', { user: 'ben' })]) {
      const first = await send(ts.httpPort, r);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const variants = [
        r.signature,
        `${r.signature}\u00a0`,
        `\u00a0${r.signature}`,
        `${r.signature}\u00a0\u00a0`,
        `${r.signature} `,
        `${r.signature}\t`,
        `v1=${r.signature.slice(3).toUpperCase()}`,
        `V1=${r.signature.slice(3)}`,
        `v1= ${r.signature.slice(3)}`,
      ];
      for (const v of variants) {
        const again = await send(ts.httpPort, r, v);
        assert.equal(again.status, 401, `${r.path} replayed with ${JSON.stringify(v)}: ${JSON.stringify(again.body)}`);
      }
    }
  });

  test('a fresh signature or timestamp not in canonical form is refused, not normalized', async () => {
    const r = signed('/api/v1/tokens', { user: 'ann', ttl: 61 });
    for (const v of [`${r.signature}\u00a0`, `${r.signature},${r.signature}`, r.signature.toUpperCase()]) {
      const got = await send(ts.httpPort, r, v);
      assert.equal(got.status, 401, JSON.stringify(v));
      assert.equal(got.body.problem, 'wrong signature');
    }
    const zero = await send(ts.httpPort, r, r.signature, `0${r.timestamp}`);
    assert.equal(zero.status, 401);
    assert.equal(zero.body.problem, 'X-Parley-Timestamp must be Unix seconds');
    assert.equal((await send(ts.httpPort, r)).status, 200, 'the canonical form is accepted once');
  });
});

describe('a cluster of two nodes sharing Redis', () => {
  const prefix = `parley-test-replay-${randomBytes(4).toString('hex')}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-replay-'));
  const nodes: TestServer[] = [];
  before(async () => {
    for (const id of ['rp1', 'rp2']) {
      nodes.push(await startTestServer({ dataDir, portal: { secret: SECRET }, cluster: { driver: 'redis', url: REDIS, prefix, nodeId: id, secret: CLUSTER_SECRET, heartbeat: '100ms', lease: '600ms', drainTimeout: '0s' } }));
    }
    await nodes[0]!.addUser('cat');
  });
  after(async () => {
    for (const n of nodes) await n.stop({ keepData: true });
    rmSync(dataDir, { recursive: true, force: true });
    const r = new Redis(REDIS);
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
  });

  test('a signed request used on one node is refused, unmodified, by the other', async () => {
    for (const r of [signed('/api/v1/tokens', { user: 'cat', ttl: 60 }), signed('/api/v1/prebind', { user: 'cat' })]) {
      const first = await send(nodes[0]!.httpPort, r);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const other = await send(nodes[1]!.httpPort, r);
      assert.equal(other.status, 401, `${r.path} replayed to the other node: ${JSON.stringify(other.body)}`);
      assert.match(String(other.body.problem), /replay/);
      assert.equal((await send(nodes[0]!.httpPort, r)).status, 401, 'and to the first node again');
    }
    const r = new Redis(REDIS);
    const keys = await r.keys(`${prefix}:replay:*`);
    r.disconnect();
    assert.equal(keys.length, 2, 'one key per used signature, under the cluster prefix');
    const ttl = await (async () => {
      const c = new Redis(REDIS);
      const t = await c.pttl(keys[0]!);
      c.disconnect();
      return t;
    })();
    assert.ok(ttl > 0 && ttl <= 2 * nodes[0]!.config.portal.api.maxSkew, `the key expires by itself (pttl ${ttl})`);
  });
});
