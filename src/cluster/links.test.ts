/**
 * The link handshake and framing between two Links on loopback (no Redis): frames split
 * anywhere are read whole, the wrong secret is refused both ways, a dialer does not talk
 * to another incarnation than the member record it dialed, and a peer that does not
 * authenticate in time or sends too much first is cut off.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { FrameReader, Links, type LinkFrame, type LinksOptions, type NodeRecord } from './links.js';

const SECRET = 'unit-test-cluster-secret-0123456789';
const open: Links[] = [];

after(async () => {
  for (const l of open) await l.close();
});

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function links(nodeId: string, o: Partial<LinksOptions> = {}): Links {
  const l = new Links({
    nodeId,
    host: '127.0.0.1',
    port: 0,
    secret: SECRET,
    queueLimit: 1000,
    log: pino({ level: 'silent' }),
    addressOf: async () => null,
    verifyPeer: async () => true,
    onFrame: () => undefined,
    ...o,
  });
  open.push(l);
  return l;
}

/** An acceptor `b` that records the frames it applies, and its member record. */
async function acceptor(o: Partial<LinksOptions> = {}): Promise<{ b: Links; got: LinkFrame[]; rec: NodeRecord; port: number }> {
  const got: LinkFrame[] = [];
  const b = links('b', { onFrame: (_from, f) => got.push(f), ...o });
  const addr = await b.listen();
  return { b, got, rec: { addr: `127.0.0.1:${addr.port}`, boot: b.boot }, port: addr.port };
}

const msg = (i: number): LinkFrame => ({ t: 'r', x: `<message to='x@example.test' from='y@example.test'><body>${i}</body></message>` });

test('frames split at every byte offset are read whole and in order', () => {
  const bodies = ['{"t":"a","s":1}', '', 'é€😀'.repeat(50)].map((s) => Buffer.from(s));
  const wire = Buffer.concat(bodies.map((b) => Buffer.concat([Buffer.from([0, 0, (b.length >> 8) & 255, b.length & 255]), b])));
  for (let cut = 0; cut <= wire.length; cut++) {
    for (const step of [1, 3, wire.length]) {
      const r = new FrameReader();
      r.max = 1 << 20;
      const out: string[] = [];
      const chunks = [wire.subarray(0, cut), ...Array.from({ length: Math.ceil((wire.length - cut) / step) }, (_, k) => wire.subarray(cut + k * step, cut + (k + 1) * step))];
      for (const c of chunks) r.push(c, (f) => out.push(f.toString()));
      assert.deepEqual(out, bodies.map(String), `cut at ${cut}, then ${step} bytes at a time`);
    }
  }
});

test('a frame longer than the reader allows is refused at its header', () => {
  const r = new FrameReader();
  r.max = 100;
  assert.throws(() => r.push(Buffer.from([0, 0, 0, 101]), () => assert.fail('no frame')), /101 bytes/);
});

test('two nodes with the secret link, in order; a node with another secret gets nothing applied', async () => {
  const { got, rec } = await acceptor();
  const a = links('a', { addressOf: async () => rec });
  for (let i = 0; i < 50; i++) a.send('b', msg(i));
  await until('50 frames applied', () => got.length === 50);
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => ({ ...msg(i), s: i + 1 })));
  await until('all acknowledged', () => a.pending('b') === 0);

  // Another secret: the dialer cannot read b's finished record (nor make its own), so it
  // closes and tries again, and nothing it queued is applied.
  let dials = 0;
  const wrong = links('c', { secret: 'another-secret-of-the-same-length!!', addressOf: async () => (dials++, rec) });
  wrong.send('b', msg(99));
  await until('the node with another secret tried three times', () => dials >= 3);
  assert.equal(got.length, 50);
  assert.equal(wrong.pending('b'), 1);
});

test('a dialer does not send to a node answering as another incarnation; it reads the member record again', async () => {
  const { got, rec } = await acceptor();
  const asked: boolean[] = [];
  const a = links('a', {
    addressOf: async (_node, fresh) => {
      asked.push(fresh);
      // The cached record is stale (an older boot); the fresh one is right.
      return fresh ? rec : { addr: rec.addr, boot: '0123456789abcdef' };
    },
  });
  a.send('b', msg(1));
  await until('the frame arrived after the record was read again', () => got.length === 1);
  assert.deepEqual(asked.slice(0, 2), [false, true]);
});

test('an acceptor refuses a peer that is not a current member', async () => {
  const seen: Array<[string, string]> = [];
  const { b, got, rec } = await acceptor({ verifyPeer: async (node, boot) => (seen.push([node, boot]), false) });
  const a = links('a', { addressOf: async () => rec });
  a.send('b', msg(1));
  await until('b refused a', () => b.refused > 0);
  assert.deepEqual(seen[0], ['a', a.boot]);
  assert.equal(got.length, 0);
});

function raw(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
    s.once('error', reject);
  });
}

function closed(s: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

test('a peer that does not authenticate in time is closed', async () => {
  const { port } = await acceptor({ preAuthMs: 200 });
  const s = await raw(port);
  s.write(Buffer.from([0, 0])); // half a header, then nothing
  await closed(s, 3000);
});

test('a peer that sends more than the pre-authentication budget before authenticating is closed', async () => {
  const { b, port } = await acceptor({ preAuthBytes: 512 });
  const s = await raw(port);
  const body = Buffer.from(JSON.stringify({ v: 1, node: 'a', boot: '0123456789abcdef', link: 'x', to: 'b', nonce: Buffer.alloc(32).toString('base64'), pad: 'p'.repeat(600) }));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  s.write(Buffer.concat([head, body]));
  await closed(s, 3000);
  assert.ok(b.refused > 0);
});
