import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signDemoCookie, verifyDemoCookie } from './demo.js';

const SECRET = 'a-demo-secret-of-enough-length-0123456789';
const now = Date.UTC(2026, 0, 1);
const later = Math.floor(now / 1000) + 3600;

test('a demo login cookie signed with the secret names its user until it expires', () => {
  const c = signDemoCookie(SECRET, 'alice', later);
  assert.equal(verifyDemoCookie(SECRET, c, now), 'alice');
  assert.equal(verifyDemoCookie(SECRET, c, (later + 1) * 1000), null);
});

test('a demo login cookie with another secret, another user or a changed expiry is refused', () => {
  const c = signDemoCookie(SECRET, 'alice', later);
  assert.equal(verifyDemoCookie('another-secret-of-enough-length-0123456789', c, now), null);
  assert.equal(verifyDemoCookie(SECRET, c.replace('alice', 'bob'), now), null);
  assert.equal(verifyDemoCookie(SECRET, c.replace(String(later), String(later + 10)), now), null);
  assert.equal(verifyDemoCookie(SECRET, 'garbage', now), null);
});

test('a demo login cookie for a user the demo does not have is refused', () => {
  assert.equal(verifyDemoCookie(SECRET, signDemoCookie(SECRET, 'mallory', later), now), null);
});
