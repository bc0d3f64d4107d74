import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { DirectoryLostError, PlainEntry, RedisSessionDirectory } from './session-directory.js';

const URL = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const prefixes: string[] = [];
const open: RedisSessionDirectory[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function dir(prefix: string, nodeId: string): RedisSessionDirectory {
  const d = new RedisSessionDirectory({ url: URL, prefix, nodeId, make: (full, node) => new PlainEntry(full, node) });
  open.push(d);
  return d;
}

function newPrefix(): string {
  const p = `parley-test-${randomBytes(4).toString('hex')}`;
  prefixes.push(p);
  return p;
}

async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

const view = (d: RedisSessionDirectory, bare: string) =>
  d
    .resolve(bare)
    .map((e) => `${e.full.slice(e.full.indexOf('/') + 1)}@${e.node}:${e.state.priority}:${e.state.available ? 'a' : 'u'}`)
    .sort()
    .join(' ');

after(async () => {
  for (const d of open) await d.stop().catch(() => {});
  const r = new Redis(URL);
  for (const p of prefixes) {
    const keys = await r.keys(`${p}:*`);
    if (keys.length) await r.del(...keys);
  }
  r.disconnect();
});

test('sessions bound on one node resolve on the others from memory (each keeps only the others\' sessions); changes and removals follow in order', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  const b = dir(p, 'B');
  await a.start();
  await b.start();
  await a.set('ann@x.test/phone', { priority: 5, available: true });
  await a.set('ann@x.test/web', { priority: 0, available: true });
  await b.set('ann@x.test/desk', { priority: 1, available: true });
  await until('b sees ann on A', () => view(b, 'ann@x.test') === 'phone@A:5:a web@A:0:a');
  await until('a sees ann on B', () => view(a, 'ann@x.test') === 'desk@B:1:a');
  assert.deepEqual(b.locate('ann@x.test/phone')?.state, { priority: 5, available: true });
  // 200 quick changes arrive in order: the last one wins.
  for (let i = 0; i < 200; i++) await a.set('ann@x.test/phone', { priority: i, available: i % 2 === 0 });
  await until('the last change', () => b.locate('ann@x.test/phone')?.state.priority === 199);
  assert.equal(b.locate('ann@x.test/phone')?.state.available, false);
  await a.remove('ann@x.test/web');
  await until('web gone', () => view(b, 'ann@x.test') === 'phone@A:199:u');
  assert.equal(b.resolve('nobody@x.test').length, 0);
});

test('a node that starts late loads what the others hold; a gap in the changes reloads that node', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  await a.start();
  for (let i = 0; i < 50; i++) await a.set(`u${i}@x.test/r`, { priority: 0, available: true });
  const late = dir(p, 'C');
  await late.start();
  assert.equal(late.sessionsOf('A').length, 50, 'loaded at start');
  // A change published with a sequence number past the next one: C reloads A's hash.
  const r = new Redis(URL);
  await r.hset(`${p}:sessions:A`, 'extra@x.test/r', JSON.stringify({ p: 3, a: true }), '#seq', '1000');
  await r.publish(`${p}:sessions`, JSON.stringify({ node: 'A', seq: 1000, op: 'set', jid: 'extra@x.test/r', e: { priority: 3, available: true } }));
  r.disconnect();
  await until('reloaded', () => late.locate('extra@x.test/r')?.state.priority === 3);
  assert.equal(late.sessionsOf('A').length, 51);
});

test('a dead node: every survivor forgets its sessions, the one that declared it dead deletes them and gets the JIDs once', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  const b = dir(p, 'B');
  const c = dir(p, 'C');
  for (const d of [a, b, c]) await d.start();
  await a.set('ann@x.test/r1', { priority: 0, available: true });
  await a.set('bob@x.test/r1', { priority: 0, available: true });
  await b.set('ann@x.test/r2', { priority: 0, available: true });
  await until('c sees a and b', () => c.sessionsOf('A').length === 2 && c.sessionsOf('B').length === 1);
  await until('b sees a', () => b.sessionsOf('A').length === 2);
  // A dies (no stop(): its hash stays); C declared it dead, B only heard of it.
  const gone = await c.dropNode('A', true);
  assert.deepEqual(gone.sort(), ['ann@x.test/r1', 'bob@x.test/r1']);
  assert.deepEqual((await b.dropNode('A', false)).sort(), ['ann@x.test/r1', 'bob@x.test/r1']);
  assert.equal(view(c, 'ann@x.test'), 'r2@B:0:a');
  assert.equal(view(b, 'ann@x.test'), '', 'b keeps only other nodes\' sessions, and A\'s are gone');
  const r = new Redis(URL);
  assert.equal(await r.exists(`${p}:sessions:A`), 0, 'the hash is deleted');
  r.disconnect();
  // A later node does not see A's sessions again.
  const d = dir(p, 'D');
  await d.start();
  assert.equal(view(d, 'ann@x.test'), 'r2@B:0:a');
});

test('after Redis loses everything, nodes write their live sessions again and the others reload them', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  const b = dir(p, 'B');
  await a.start();
  await b.start();
  await a.set('ann@x.test/r1', { priority: 2, available: true });
  await until('b sees ann', () => view(b, 'ann@x.test') === 'r1@A:2:a');
  const r = new Redis(URL);
  const keys = await r.keys(`${p}:*`);
  await r.del(...keys);
  r.disconnect();
  // The node still has its sessions in memory: it writes them again.
  await a.republish([
    { jid: 'ann@x.test/r1', priority: 2, available: true },
    { jid: 'cat@x.test/r9', priority: 0, available: false },
  ]);
  await until('b reloaded a', () => view(b, 'cat@x.test') === 'r9@A:0:u' && view(b, 'ann@x.test') === 'r1@A:2:a');
  const late = dir(p, 'C');
  await late.start();
  assert.equal(late.sessionsOf('A').length, 2);
});

test('after Redis loses everything, a change is refused until the node writes all its sessions again, and the others forget none of them meanwhile', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  const b = dir(p, 'B');
  await a.start();
  await b.start();
  await a.set('ann@x.test/r1', { priority: 0, available: true });
  await a.set('bob@x.test/r1', { priority: 0, available: true });
  await until('b sees both', () => b.sessionsOf('A').length === 2);
  const r = new Redis(URL);
  const keys = await r.keys(`${p}:*`);
  await r.del(...keys);
  // A has not noticed yet: a change would leave a hash holding only itself.
  await assert.rejects(a.set('cat@x.test/r1', { priority: 0, available: true }), DirectoryLostError);
  assert.equal(await r.exists(`${p}:sessions:A`), 0, 'no partial hash was written');
  // B reloads A meanwhile (a gap in A's changes, a restart of B's subscription): it keeps A's sessions.
  await r.publish(`${p}:sessions`, JSON.stringify({ node: 'A', seq: 10_000, op: 'set', jid: 'dan@x.test/r1', e: { priority: 0, available: true } }));
  await sleep(100);
  assert.deepEqual(b.sessionsOf('A').sort(), ['ann@x.test/r1', 'bob@x.test/r1']);
  await a.republish([
    { jid: 'ann@x.test/r1', priority: 0, available: true },
    { jid: 'cat@x.test/r1', priority: 0, available: true },
  ]);
  await until('b has A as written again', () => b.sessionsOf('A').sort().join() === 'ann@x.test/r1,cat@x.test/r1');
  await a.set('dan@x.test/r1', { priority: 0, available: true });
  await until('and its changes after', () => b.locate('dan@x.test/r1') !== undefined);
  r.disconnect();
});

test('changes published while a node\'s subscription was down are read once it is back', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  const b = dir(p, 'B');
  await a.start();
  await b.start();
  const r = new Redis(URL);
  try {
    const list = (await r.client('LIST')) as string;
    const id = list.split('\n').find((l) => l.includes(`name=${p}:B:directory`))?.match(/id=(\d+)/)?.[1];
    assert.ok(id, 'B\'s subscriber connection');
    await r.client('KILL', 'ID', id);
    // Published while B reconnects: B does not hear it, and no later change shows a gap.
    await a.set('eve@x.test/r1', { priority: 1, available: true });
    await until('b reloaded after resubscribing', () => b.locate('eve@x.test/r1')?.state.priority === 1);
  } finally {
    r.disconnect();
  }
});

test('sync() returns once every change published before it is in the replica', async () => {
  const p = newPrefix();
  const a = dir(p, 'A');
  const b = dir(p, 'B');
  await a.start();
  await b.start();
  const r = new Redis(URL);
  try {
    const base = Number(await r.hget(`${p}:sessions:A`, '#seq'));
    for (let i = 0; i < 20; i++) {
      // A change written the way node A writes it, then at once B's sync.
      await r.hset(`${p}:sessions:A`, `f${i}@x.test/r`, JSON.stringify({ p: 0, a: true }), '#seq', String(base + i + 1));
      await r.publish(`${p}:sessions`, JSON.stringify({ node: 'A', seq: base + i + 1, op: 'set', jid: `f${i}@x.test/r`, e: { priority: 0, available: true } }));
      await b.sync();
      assert.ok(b.locate(`f${i}@x.test/r`), `change ${i} is in B's replica once sync() returned`);
    }
  } finally {
    r.disconnect();
  }
});
