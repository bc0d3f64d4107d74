import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, loadConfigFile, parseConfig } from './load.js';
import { ConfigError } from '../support/errors.js';
import { describeSchema } from './schema-dsl.js';
import { CONFIG_SCHEMA } from '../modules/index.js';

function withFile(text: string, fn: (file: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
  try {
    const file = join(dir, 'parley.yaml');
    writeFileSync(file, text);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('with no file the built-in defaults just work', () => {
  const { config } = loadConfig(undefined, CONFIG_SCHEMA);
  assert.equal(config.domain, 'localhost');
  assert.equal(config.storage.driver, 'sqlite');
  assert.equal(config.listen.c2s.port, 5222);
  assert.equal(config.listen.c2s.requireTls, true);
  assert.equal(config.listen.c2sTls.port, 5223);
  assert.equal(config.listen.http.port, 5280);
  assert.equal(config.limits.maxStanzaSize, 65536);
});

test('the documented keys are read from YAML', () => {
  withFile(
    `domain: example.test
dataDir: ./state
storage: { driver: sqlite }
listen:
  c2s:    { host: 127.0.0.1, port: 15222, requireTls: false }
  c2sTls: { host: 127.0.0.1, port: 15223 }
  http:   { host: 127.0.0.1, port: 15280, secure: true }
limits: { maxStanzaSize: 128KiB, authTimeout: 30s }
`,
    (file) => {
      const { config } = loadConfigFile(file, CONFIG_SCHEMA);
      assert.equal(config.domain, 'example.test');
      assert.equal(config.dataDir, join(file, '..', 'state'));
      assert.equal(config.listen.c2s.requireTls, false);
      assert.equal(config.listen.http.secure, true);
      assert.equal(config.limits.maxStanzaSize, 128 * 1024);
      assert.equal(config.limits.authTimeout, 30_000);
    },
  );
});

test('an unknown key stops loading and names its path', () => {
  const e = configError(() => parseConfig({ listen: { c2s: { prot: 1 } } }, CONFIG_SCHEMA));
  assert.equal(e.path, 'listen.c2s.prot');
  assert.match(e.reason, /unknown key/);
});

test('a value of the wrong type names the key and the reason', () => {
  const e = configError(() => parseConfig({ listen: { c2s: { port: 'abc' } } }, CONFIG_SCHEMA));
  assert.equal(e.path, 'listen.c2s.port');
  assert.match(e.reason, /integer/);
});

test('an out-of-range port is refused', () => {
  assert.equal(configError(() => parseConfig({ listen: { http: { port: 70000 } } }, CONFIG_SCHEMA)).path, 'listen.http.port');
});

test('a bad domain is refused', () => {
  assert.equal(configError(() => parseConfig({ domain: 'Not A Domain' }, CONFIG_SCHEMA)).path, 'domain');
});

test('a bad duration and a bad size are refused with their paths', () => {
  assert.equal(configError(() => parseConfig({ limits: { authTimeout: 'soon' } }, CONFIG_SCHEMA)).path, 'limits.authTimeout');
  assert.equal(configError(() => parseConfig({ limits: { maxStanzaSize: '12 parsecs' } }, CONFIG_SCHEMA)).path, 'limits.maxStanzaSize');
});

test('an unknown storage driver is refused', () => {
  assert.equal(configError(() => parseConfig({ storage: { driver: 'oracle' } }, CONFIG_SCHEMA)).path, 'storage.driver');
});

test('YAML syntax errors name the file and line', () => {
  withFile('domain: [unclosed\n', (file) => {
    const e = configError(() => loadConfigFile(file, CONFIG_SCHEMA));
    assert.match(e.message, /parley\.yaml:\d+:\d+/);
  });
});

test('a missing file is a clear error', () => {
  const e = configError(() => loadConfigFile('/nonexistent/parley.yaml', CONFIG_SCHEMA));
  assert.match(e.message, /cannot read/);
});

test('every key has a doc line in the generated reference', () => {
  const lines = describeSchema(CONFIG_SCHEMA.root);
  assert.ok(lines.some((l) => l.startsWith('- `listen.c2s.requireTls` (boolean, default true): ')));
  for (const l of lines) assert.match(l, /: \S/, `no doc: ${l}`);
});
