import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedTokenBuckets, SlidingWindowCounter } from './limits.js';

test('a token bucket allows its burst, then its rate, per key', () => {
  const b = new KeyedTokenBuckets();
  const t0 = 1_000_000;
  for (let i = 0; i < 3; i++) assert.ok(b.take('a', 2, 3, t0));
  assert.ok(!b.take('a', 2, 3, t0));
  assert.ok(b.take('b', 2, 3, t0), 'another key has its own bucket');
  assert.ok(b.take('a', 2, 3, t0 + 500), 'one token back after 1/rate seconds');
  assert.ok(!b.take('a', 2, 3, t0 + 500));
  assert.ok(b.take('x', 0, 1, t0) && b.take('x', 0, 1, t0), 'rate 0 is off');
});

test('token buckets are bounded (LRU) and full ones are swept', () => {
  const b = new KeyedTokenBuckets(2);
  const t0 = 1_000_000;
  b.take('a', 1, 1, t0);
  b.take('b', 1, 1, t0);
  b.take('c', 1, 1, t0);
  assert.equal(b.size, 2);
  assert.ok(b.take('a', 1, 1, t0), 'a forgotten key starts full (more lenient, never stricter)');
  b.sweep(1, 1, t0 + 5000);
  assert.equal(b.size, 0);
});

test('a sliding window counts events of the last window, weighting the previous one', () => {
  const w = new SlidingWindowCounter();
  const t0 = 1_000_000;
  for (let i = 0; i < 4; i++) w.add('k', 1000, t0);
  assert.equal(w.count('k', 1000, t0 + 999), 4);
  assert.equal(w.count('k', 1000, t0 + 1500), 2, 'half of the previous window overlaps');
  assert.equal(w.count('k', 1000, t0 + 2500), 0);
  w.add('k', 1000, t0 + 2600);
  w.reset('k');
  assert.equal(w.count('k', 1000, t0 + 2600), 0);
});

test('sliding windows are bounded (LRU) and empty ones are swept', () => {
  const w = new SlidingWindowCounter(2);
  const t0 = 1_000_000;
  w.add('a', 1000, t0);
  w.add('b', 1000, t0);
  w.add('c', 1000, t0);
  assert.equal(w.size, 2);
  assert.equal(w.count('a', 1000, t0), 0);
  w.sweep(1000, t0 + 2000);
  assert.equal(w.size, 0);
});
