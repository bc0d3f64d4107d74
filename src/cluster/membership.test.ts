import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisMembership } from './membership.js';

const URL = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const FAST = { heartbeatMs: 100, leaseMs: 400, reapMs: 100 };
const prefixes: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every node of every test, stopped before the keys are deleted. */
const everyNode: RedisMembership[] = [];

function cluster() {
  const prefix = `parley-test-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  const deaths = new Map<string, number>();
  const nodes: RedisMembership[] = [];
  const make = (nodeId?: string, over: { reapMs?: number } = {}) => {
    const m = new RedisMembership({ url: URL, prefix, nodeId, ...FAST, ...over });
    everyNode.push(m);
    m.onDead = (id) => void deaths.set(id, (deaths.get(id) ?? 0) + 1);
    nodes.push(m);
    return m;
  };
  return { prefix, deaths, nodes, make };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

after(async () => {
  // Nodes still running would write their keys again after the clean-up below.
  for (const m of everyNode) await m.crash().catch(() => undefined);
  const r = new Redis(URL);
  for (const p of prefixes) await r.del(`${p}:members`, `${p}:epoch`);
  r.disconnect();
});

test('nodes that join see each other; a node that leaves is gone from every view at once', async () => {
  const c = cluster();
  const [a, b, d] = [c.make('a'), c.make('b'), c.make('d')];
  for (const n of [a, b, d]) await n.join();
  await until('all see three', () => [a, b, d].every((n) => n.members().join() === 'a,b,d'));
  await b.leave();
  await until('b gone', () => [a, d].every((n) => n.members().join() === 'a,d'));
  assert.equal(c.deaths.size, 0, 'a node that leaves is not declared dead');
  await a.leave();
  await d.leave();
});

test('a node that stops heartbeating is declared dead once, by one survivor, within lease + reap', async () => {
  const c = cluster();
  const nodes = ['a', 'b', 'd', 'e'].map((id) => c.make(id));
  for (const n of nodes) await n.join();
  await until('all see four', () => nodes.every((n) => n.members().length === 4));
  await nodes[3]!.crash();
  // Within lease + reap: the bound is the timeout on the event (with room for a loaded machine).
  await until('e declared dead', () => c.deaths.get('e') === 1, FAST.leaseMs + 3 * FAST.reapMs + 2000);
  await until('views drop e', () => nodes.slice(0, 3).every((n) => n.members().join() === 'a,b,d'));
  await sleep(FAST.leaseMs);
  assert.equal(c.deaths.get('e'), 1, 'exactly once across the survivors');
  for (const n of nodes.slice(0, 3)) await n.leave();
});

test('a node declared dead while frozen learns it at its next heartbeat; a live id cannot be taken twice', async () => {
  const c = cluster();
  const a = c.make('a');
  const b = c.make('b');
  let expelled = 0;
  a.onExpelled = () => expelled++;
  await a.join();
  await b.join();
  await assert.rejects(c.make('a').join(), /held by a live node/);
  // What a survivor does to a node silent past its lease: remove it.
  const r = new Redis(URL);
  await r.zrem(`${c.prefix}:members`, 'a');
  await until('a expelled', () => expelled === 1);
  assert.deepEqual(a.members(), [], 'an expelled node forgets the cluster (and must end its sessions)');
  // The id is free again: the node may join anew.
  const a2 = c.make('a');
  await a2.join();
  await until('b sees the new a', () => b.members().join() === 'a,b');
  r.disconnect();
  await a2.leave();
  await b.leave();
  await a.leave();
});

test('churn: 60 joins, leaves and crashes leave no duplicate and no ghost, and every crash is declared dead exactly once', async () => {
  const c = cluster();
  const alive: RedisMembership[] = [];
  const crashed: string[] = [];
  let seq = 0;
  const first = c.make(`n${seq++}`);
  await first.join();
  alive.push(first);
  let rnd = 42;
  const next = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31), rnd / 2 ** 31);
  for (let i = 0; i < 60; i++) {
    const x = next();
    if (alive.length < 2 || (x < 0.5 && alive.length < 7)) {
      const n = c.make(`n${seq++}`);
      await n.join();
      alive.push(n);
    } else {
      const victim = alive.splice(1 + Math.floor(next() * (alive.length - 1)), 1)[0]!;
      if (x < 0.75) await victim.leave();
      else {
        await victim.crash();
        crashed.push(victim.nodeId);
      }
    }
    await sleep(10 + Math.floor(next() * 40));
  }
  const want = alive.map((n) => n.nodeId).sort().join();
  await until(`views settle on ${want}`, () => alive.every((n) => n.members().join() === want), 8000);
  const r = new Redis(URL);
  const stored = await r.zrange(`${c.prefix}:members`, '0', '-1');
  r.disconnect();
  assert.equal(stored.sort().join(), want, 'Redis holds exactly the live nodes');
  assert.equal(new Set(stored).size, stored.length, 'no duplicate');
  await sleep(FAST.leaseMs);
  for (const id of crashed) assert.equal(c.deaths.get(id), 1, `${id} declared dead exactly once`);
  for (const [id] of c.deaths) assert.ok(crashed.includes(id), `${id} declared dead without having crashed`);
  for (const n of alive) await n.leave();
});

test('a node whose own lease ran out (a stalled event loop) reaps itself as expelled, not as someone else to clean up', async () => {
  const c = cluster();
  const a = c.make('a', { reapMs: 60_000 });
  const b = c.make('b', { reapMs: 60_000 }); // only a reaps in this test
  let expelled = 0;
  a.onExpelled = () => expelled++;
  await a.join();
  await b.join();
  // Put a's lease in the past, then let a reap before anyone else does.
  const r = new Redis(URL);
  await r.zadd(`${c.prefix}:members`, String(Date.now() - 1000), 'a');
  r.disconnect();
  await a.reap();
  assert.equal(expelled, 1);
  assert.equal(c.deaths.get('a') ?? 0, 0, 'no onDead for itself');
  await until('b drops a', () => b.members().join() === 'b');
  await a.leave();
  await b.leave();
});

test('Redis losing its data (a restart): every node joins again by itself and calls onReset; nobody is declared dead or seen leaving', async () => {
  const c = cluster();
  const [a, b, d] = [c.make('a'), c.make('b'), c.make('d')];
  const resets = new Set<string>();
  const left: string[] = [];
  for (const n of [a, b, d]) {
    n.onReset = () => void resets.add(n.nodeId);
    n.onChange = (e) => {
      if (e.type !== 'join') left.push(`${n.nodeId} saw ${e.node} ${e.type}`);
    };
    await n.join();
  }
  await until('all see three', () => [a, b, d].every((n) => n.members().join() === 'a,b,d'));
  const r = new Redis(URL);
  await r.del(`${c.prefix}:members`, `${c.prefix}:epoch`); // what a restart without persistence leaves
  await until('every node noticed', () => resets.size === 3);
  await until('the set holds all three again', async () => (await r.zcard(`${c.prefix}:members`)) === 3);
  await sleep(FAST.leaseMs * 2);
  r.disconnect();
  assert.deepEqual(left, []);
  assert.equal(c.deaths.size, 0);
  assert.ok([a, b, d].every((n) => n.members().join() === 'a,b,d'));
  for (const n of [a, b, d]) await n.leave();
});

test('a node whose process stood still past its lease says so until a heartbeat sent afterwards is answered', async () => {
  const c = cluster();
  const a = c.make('a', { reapMs: 60_000 }); // its own reaper would expel it (the test above)
  await a.join();
  assert.equal(a.stalledPastLease(), false);
  // Block the event loop longer than the lease (what SIGSTOP or a long pause does): no timer runs.
  const end = Date.now() + FAST.leaseMs + 200;
  while (Date.now() < end) {
    // busy
  }
  assert.equal(a.stalledPastLease(), true, 'the stall is seen before any timer runs');
  assert.equal(await a.beat(), 'member', 'nobody reaped it meanwhile');
  assert.equal(a.stalledPastLease(), false);
  await a.leave();
});
