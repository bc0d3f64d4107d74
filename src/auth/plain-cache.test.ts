import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VerifiedPasswordCache } from './plain-cache.js';

const key = Buffer.from('stored-key-1');

test('a remembered login is recognised for the same user, password and stored key only', () => {
  const c = new VerifiedPasswordCache(10, 60_000);
  c.remember('alice', 'secret', key);
  assert.equal(c.has('alice', 'secret', key), true);
  assert.equal(c.has('alice', 'Secret', key), false);
  assert.equal(c.has('bob', 'secret', key), false);
  assert.equal(c.has('alice', 'secret', Buffer.from('stored-key-2')), false, 'a password change invalidates');
});

test('entries expire and the cache is bounded', async () => {
  const c = new VerifiedPasswordCache(2, 20);
  c.remember('a', 'x', key);
  c.remember('b', 'x', key);
  c.remember('c', 'x', key);
  assert.equal(c.size, 2);
  assert.equal(c.has('a', 'x', key), false, 'the oldest went first');
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(c.has('c', 'x', key), false, 'expired');
});

test('a cache of size 0 remembers nothing', () => {
  const c = new VerifiedPasswordCache(0, 60_000);
  c.remember('a', 'x', key);
  assert.equal(c.has('a', 'x', key), false);
});
