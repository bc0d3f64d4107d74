import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedTokenBuckets, Limits, SlidingWindowCounter, addressBucket } from './limits.js';
import { ServerStats } from '../support/stats.js';
import { parseConfig } from '../config/load.js';

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

test('IPv6 addresses are grouped by limits.ipv6Prefix; IPv4 and IPv4-mapped addresses count one by one', () => {
  assert.equal(addressBucket('2001:db8:1:2::1', 64), addressBucket('2001:db8:1:2:ffff:ffff:ffff:ffff', 64), 'the same /64');
  assert.equal(addressBucket('2001:db8:1:2::1', 64), '2001:db8:1:2:0:0:0:0/64');
  assert.notEqual(addressBucket('2001:db8:1:2::1', 64), addressBucket('2001:db8:1:3::1', 64), 'another /64');
  assert.equal(addressBucket('2001:DB8:1:2::1', 64), addressBucket('2001:db8:1:2:0:0:0:1', 64), 'case and :: do not matter');
  assert.equal(addressBucket('2001:db8:1:2::1', 56), addressBucket('2001:db8:1:ff::1', 56), 'a /56 takes in more');
  assert.notEqual(addressBucket('2001:db8::1', 128), addressBucket('2001:db8::2', 128));
  assert.equal(addressBucket('2001:db8:1:2:1:1:1.2.3.4', 64), '2001:db8:1:2:0:0:0:0/64', 'a dotted tail');
  assert.equal(addressBucket('2001:db8:1:2::1%eth0', 64), '2001:db8:1:2:0:0:0:0/64', 'a zone index is dropped');
  assert.equal(addressBucket('::ffff:192.0.2.7', 64), '192.0.2.7', 'IPv4-mapped is IPv4');
  assert.equal(addressBucket('::FFFF:192.0.2.7', 64), '192.0.2.7');
  assert.equal(addressBucket('192.0.2.7', 64), '192.0.2.7');
  assert.notEqual(addressBucket('192.0.2.7', 64), addressBucket('192.0.2.8', 64), 'IPv4 is not grouped');
  assert.equal(addressBucket('not an address', 64), 'not an address');
});

function limits(over: Record<string, unknown>): Limits {
  const config = parseConfig({ domain: 'example.test', limits: { exemptAddresses: [], ...over } });
  return new Limits(config, new ServerStats());
}

test('failures of an account refuse it from their address (and its /64), only slow it down elsewhere', () => {
  const l = limits({ loginFailuresPerAccount: 3, loginSlowDownAfter: 2, loginFailuresPerIp: 0, loginDelay: '100ms', loginDelayMax: '1s' });
  const t0 = 1_000_000;
  for (let i = 0; i < 3; i++) l.loginFailed('2001:db8:1:2::1', 'alice', t0);
  assert.deepEqual(l.loginVerdict('2001:db8:1:2::1', 'alice', t0), { refuse: true, limit: 'login-attempts-per-account' });
  assert.deepEqual(l.loginVerdict('2001:db8:1:2::beef', 'alice', t0), { refuse: true, limit: 'login-attempts-per-account' }, 'the same /64');
  const elsewhere = l.loginVerdict('2001:db8:9::1', 'alice', t0);
  assert.equal(elsewhere.refuse, false, 'another network is not refused');
  assert.ok(!elsewhere.refuse && elsewhere.delayMs === 200, 'but slowed down (3 failures, 2 past the threshold: 100 ms doubled)');
  assert.equal(l.loginVerdict('2001:db8:1:2::1', 'bob', t0).refuse, false, 'another account from the same address');
  for (let i = 0; i < 20; i++) l.loginFailed(`198.51.100.${i}`, 'alice', t0);
  const capped = l.loginVerdict('203.0.113.1', 'alice', t0);
  assert.ok(!capped.refuse && capped.delayMs === 1000, 'failures from many addresses: capped delay, never a refusal');
  l.loginSucceeded('2001:db8:9::1', 'alice');
  assert.deepEqual(l.loginVerdict('2001:db8:9::1', 'alice', t0), { refuse: false, delayMs: 0, limit: null }, 'a success clears the slow-down');
  assert.equal(l.loginVerdict('2001:db8:1:2::1', 'alice', t0).refuse, true, 'but not the refusal of another address');
});

test('per-address failures and credential checks group an IPv6 /64 and treat ::ffff:a.b.c.d as a.b.c.d', () => {
  const l = limits({ loginFailuresPerIp: 4, loginFailuresPerAccount: 0, saslAttemptsPerIp: 3, ipv6Prefix: 64 });
  const t0 = 1_000_000;
  for (let i = 0; i < 4; i++) l.loginFailed(`2001:db8:1:2::${i + 1}`, `u${i}`, t0);
  assert.deepEqual(l.loginVerdict('2001:db8:1:2::99', null, t0), { refuse: true, limit: 'login-attempts-per-ip' });
  assert.equal(l.loginVerdict('2001:db8:1:3::1', null, t0).refuse, false);
  for (let i = 0; i < 4; i++) l.loginFailed('::ffff:192.0.2.7', null, t0);
  assert.equal(l.loginVerdict('192.0.2.7', null, t0).refuse, true);
  assert.equal(l.loginVerdict('192.0.2.8', null, t0).refuse, false);
  for (let i = 0; i < 3; i++) assert.ok(l.startCredentialCheck(`2001:db8:5:6::${i}`, t0));
  assert.equal(l.startCredentialCheck('2001:db8:5:6::abcd', t0), false, 'the /64 spent its credential checks');
  assert.ok(l.startCredentialCheck('2001:db8:5:7::1', t0));
});
