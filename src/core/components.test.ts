/** The component handshake digest (XEP-0114 §3) and the configuration of components. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { handshakeMatches } from './components.js';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../support/errors.js';

const SECRET = 'component-secret-0123456789abcdef0123';

test('the handshake is hex SHA-1 of the stream id and the secret, in either case; anything else fails', () => {
  const digest = createHash('sha1').update('stream-id' + SECRET).digest('hex');
  assert.ok(handshakeMatches('stream-id', SECRET, digest));
  assert.ok(handshakeMatches('stream-id', SECRET, digest.toUpperCase()));
  assert.ok(handshakeMatches('stream-id', SECRET, ` ${digest}\n`));
  assert.ok(!handshakeMatches('other-id', SECRET, digest));
  assert.ok(!handshakeMatches('stream-id', SECRET + 'x', digest));
  assert.ok(!handshakeMatches('stream-id', SECRET, digest.slice(1)));
  assert.ok(!handshakeMatches('stream-id', SECRET, ''));
});

function refusal(input: unknown): ConfigError {
  try {
    parseConfig(input);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('the configuration was accepted');
}

test('components: a host and a secret of 32 characters or more, the host a DNS name other than the domain and listed once', () => {
  const ok = parseConfig({ domain: 'example.com', components: [{ host: 'gw.example.com', secret: SECRET, name: 'Gateway' }] });
  assert.deepEqual(ok.components, [{ host: 'gw.example.com', secret: SECRET, name: 'Gateway' }]);
  assert.deepEqual(ok.listen.component, { host: '127.0.0.1', port: 5347, maxSendBuffer: 16 * 1024 * 1024 });
  const cases: Array<[unknown, string]> = [
    [[{ secret: SECRET }], 'components[0].host'],
    [[{ host: 'gw.example.com' }], 'components[0].secret'],
    [[{ host: 'gw.example.com', secret: 'short' }], 'components[0].secret'],
    [[{ host: 'Not a host', secret: SECRET }], 'components[0].host'],
    [[{ host: 'example.com', secret: SECRET }], 'components[0].host'],
    [[{ host: 'gw.example.com', secret: SECRET }, { host: 'gw.example.com', secret: SECRET }], 'components[1].host'],
    [[{ host: 'gw.example.com', secret: 'replace-me-with-32-or-more-random-characters' }], 'components[0].secret'],
    [[{ host: 'gw.example.com', secret: SECRET, port: 1 }], 'components[0].port'],
  ];
  for (const [components, path] of cases) assert.equal(refusal({ domain: 'example.com', components }).path, path, JSON.stringify(components));
});
