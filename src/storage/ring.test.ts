import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashRing, hash32 } from './ring.js';

const KEYS = Array.from({ length: 30_000 }, (_, i) => `user${i}@example.com`);

function spread(ring: HashRing): Map<string, number> {
  const counts = new Map<string, number>();
  for (const k of KEYS) {
    const s = ring.lookup(k);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return counts;
}

test('hash32 gives the pinned values (a change would move every user)', () => {
  // Computed once from the implementation; never update these without a migration plan.
  assert.equal(hash32(''), 0xab3e7c0b);
  assert.equal(hash32('a'), 0x1a80b1b3);
  assert.equal(hash32('alice@example.com'), 0x4fb166e8);
  assert.equal(hash32('user1@example.com'), 0xa003c164);
  assert.equal(hash32('user2@example.com'), 0x13629705);
  assert.equal(hash32('s1#0'), 0x94f4dc45);
  assert.equal(hash32('müller@example.com'), 0xf53a72c5);
});

test('lookups on a fixed ring give the pinned shards (the points per weight are part of placement)', () => {
  const ring = new HashRing([{ name: 's1', weight: 1 }, { name: 's2', weight: 1 }, { name: 's3', weight: 1 }]);
  const placed = Object.fromEntries(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((u) => [u, ring.lookup(`${u}@example.com`)]));
  assert.deepEqual(placed, { alice: 's2', bob: 's2', carol: 's1', dave: 's3', erin: 's3', frank: 's2' });
});

test('three equal shards each get a third of the keys, within 10 %', () => {
  const counts = spread(new HashRing([{ name: 's1', weight: 1 }, { name: 's2', weight: 1 }, { name: 's3', weight: 1 }]));
  assert.deepEqual([...counts.keys()].sort(), ['s1', 's2', 's3']);
  for (const [name, n] of counts) assert.ok(Math.abs(n - 10_000) <= 1_000, `${name} has ${n} keys`);
});

test('adding a fourth shard moves about a quarter of the keys, all of them to the new shard', () => {
  const three = new HashRing([{ name: 's1', weight: 1 }, { name: 's2', weight: 1 }, { name: 's3', weight: 1 }]);
  const four = new HashRing([{ name: 's1', weight: 1 }, { name: 's2', weight: 1 }, { name: 's3', weight: 1 }, { name: 's4', weight: 1 }]);
  let moved = 0;
  for (const k of KEYS) {
    const before = three.lookup(k);
    const after = four.lookup(k);
    if (before === after) continue;
    moved++;
    assert.equal(after, 's4', `${k} moved from ${before} to ${after}`);
  }
  assert.ok(Math.abs(moved - 7_500) <= 750, `${moved} keys moved`);
});

test('a shard of weight 2 gets about twice the keys of a shard of weight 1', () => {
  const counts = spread(new HashRing([{ name: 'big', weight: 2 }, { name: 'small', weight: 1 }]));
  const ratio = counts.get('big')! / counts.get('small')!;
  assert.ok(ratio > 1.8 && ratio < 2.2, `ratio ${ratio}`);
});

test('a member of weight 0 owns no key', () => {
  const ring = new HashRing([{ name: 's1', weight: 1 }, { name: 'off', weight: 0 }, { name: 's2', weight: 1 }]);
  const counts = spread(ring);
  assert.equal(counts.get('off'), undefined);
  assert.deepEqual(ring.members.map((m) => m.name), ['s1', 's2']);
});

test('the order of the members does not change any lookup', () => {
  const a = new HashRing([{ name: 's1', weight: 1 }, { name: 's2', weight: 2 }, { name: 's3', weight: 1 }]);
  const b = new HashRing([{ name: 's3', weight: 1 }, { name: 's1', weight: 1 }, { name: 's2', weight: 2 }]);
  for (const k of KEYS) assert.equal(a.lookup(k), b.lookup(k), k);
  assert.ok(a.sameAs(b));
});

test('a lookup on an empty ring throws', () => {
  for (const ring of [new HashRing([]), new HashRing([{ name: 's1', weight: 0 }])]) {
    assert.ok(ring.empty);
    assert.throws(() => ring.lookup('alice@example.com'), /no shard/);
  }
});
