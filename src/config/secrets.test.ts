import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, parseConfig } from './load.js';
// The example file has every section, the modules' too: the full schema reads it.
import { CONFIG_SCHEMA } from '../modules/index.js';
import { ConfigError } from '../support/errors.js';

// Compiled to dist/src/config/: the repository root is three levels up.
const EXAMPLE = fileURLToPath(new URL('../../../deploy/parley.example.yaml', import.meta.url));
const BIN = fileURLToPath(new URL('../../../bin/parley.js', import.meta.url));

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('the configuration was accepted');
}

test('an admin.token or portal.secret shorter than 32 characters is refused with the key named', () => {
  for (const key of ['admin.token', 'portal.secret'] as const) {
    const [section, name] = key.split('.') as [string, string];
    const e = refusal(() => parseConfig({ [section]: { [name]: 'x'.repeat(31) } }));
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.equal(e.path, key);
    assert.doesNotThrow(() => parseConfig({ [section]: { [name]: 'x'.repeat(32) } }));
  }
});

test('the example configuration with its secret lines uncommented does not start: the placeholder is named', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const admin = /^# (admin: \{ token: .*\})/m.exec(text);
  const portal = /^# (portal: \{ secret: .*\})/m.exec(text);
  assert.ok(admin && portal, 'the example shows admin.token and portal.secret');
  const dir = mkdtempSync(join(tmpdir(), 'parley-secrets-'));
  try {
    for (const [key, line] of [['admin.token', admin[0]], ['portal.secret', portal[0]]] as const) {
      const file = join(dir, `${key}.yaml`);
      // Free ports, should it start after all.
      writeFileSync(file, text.replace(line, line.slice(2)).replace(/port: \d+/g, 'port: 0').replace('dataDir: ./data', `dataDir: ${join(dir, 'data')}`));
      const e = refusal(() => loadConfigFile(file, CONFIG_SCHEMA));
      assert.equal(e.path, key);
      assert.match(e.reason, /placeholder/);
    }
    // And `parley start` stops on it, naming the key.
    const file = join(dir, 'admin.token.yaml');
    const r = spawnSync(process.execPath, [BIN, 'start', '--config', file], { encoding: 'utf8', timeout: 20_000 });
    assert.notEqual(r.status, 0);
    assert.match(`${r.stdout}${r.stderr}`, /admin\.token/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
