import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardedClientAddress, trustedProxiesOf } from './client-address.js';
import { ConfigError } from './errors.js';

const trusted = trustedProxiesOf(['10.0.0.0/24', '2001:db8::5'], 'listen.http.trustedProxies');

test('X-Forwarded-For is ignored from a peer that is not a trusted proxy, and without trusted proxies', () => {
  assert.equal(forwardedClientAddress('198.51.100.1', '127.0.0.1', trusted), '198.51.100.1');
  assert.equal(forwardedClientAddress('10.0.0.5', '127.0.0.1', null), '10.0.0.5');
  assert.equal(forwardedClientAddress('10.0.0.5', undefined, trusted), '10.0.0.5');
});

test('from a trusted proxy, the right-most address that is not a trusted proxy is the client', () => {
  assert.equal(forwardedClientAddress('10.0.0.5', '203.0.113.9', trusted), '203.0.113.9');
  assert.equal(forwardedClientAddress('10.0.0.5', '127.0.0.1, 203.0.113.9', trusted), '203.0.113.9');
  assert.equal(forwardedClientAddress('10.0.0.5', '127.0.0.1, 203.0.113.9, 10.0.0.7', trusted), '203.0.113.9');
  assert.equal(forwardedClientAddress('::ffff:10.0.0.5', '2001:db8::9', trusted), '2001:db8::9');
  assert.equal(forwardedClientAddress('2001:db8::5', ' 192.0.2.1 ', trusted), '192.0.2.1');
});

test('a hop that is not an address ends the walk at the last believable address', () => {
  assert.equal(forwardedClientAddress('10.0.0.5', '203.0.113.9, unknown', trusted), '10.0.0.5');
  assert.equal(forwardedClientAddress('10.0.0.5', '203.0.113.9:4000', trusted), '10.0.0.5');
  assert.equal(forwardedClientAddress('10.0.0.5', 'garbage, 10.0.0.6', trusted), '10.0.0.6');
  assert.equal(forwardedClientAddress('10.0.0.5', '', trusted), '10.0.0.5');
});

test('a bad trustedProxies entry is a ConfigError naming the key', () => {
  assert.throws(() => trustedProxiesOf(['haproxy.local'], 'listen.c2s.trustedProxies'), (e: unknown) => e instanceof ConfigError && e.path === 'listen.c2s.trustedProxies');
  assert.equal(trustedProxiesOf([], 'listen.c2s.trustedProxies'), null);
});
