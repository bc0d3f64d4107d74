import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryReplayGuard } from './replay-guard.js';

test('the in-memory replay guard accepts a key once until it expires, and stays bounded', async () => {
  const g = new MemoryReplayGuard(2);
  const t0 = 1_000_000;
  assert.equal(await g.claim('a', 1000, t0), true);
  assert.equal(await g.claim('a', 1000, t0 + 999), false, 'a replay within the TTL');
  assert.equal(await g.claim('a', 1000, t0 + 1000), true, 'good again once expired');
  assert.equal(await g.claim('b', 1000, t0 + 1000), true);
  assert.equal(await g.claim('c', 1000, t0 + 1000), true);
  assert.equal(g.size, 2, 'the oldest claim is forgotten beyond the bound');
});
