import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HAPROXY_DEFAULTS, haproxyConfig } from './haproxy-config.js';
import { needHaproxy } from '../../test/helpers/tools.js';

// Compiled to dist/src/ops/: the repository root is three levels up.
const DEPLOY = new URL('../../../deploy/haproxy.cfg', import.meta.url);

test('deploy/haproxy.cfg is haproxyConfig() with the defaults', () => {
  assert.equal(readFileSync(DEPLOY, 'utf8'), haproxyConfig(HAPROXY_DEFAULTS));
});

test('every node appears in each backend, the BOSH one with its cookie and the c2s one checked on its HTTP port', () => {
  const cfg = haproxyConfig({
    nodes: [
      { name: 'a', host: '10.0.0.1', c2sPort: 5222, httpPort: 5280 },
      { name: 'b', host: '10.0.0.2', c2sPort: 5222, httpPort: 5280 },
    ],
    checkInterval: 200,
  });
  for (const name of ['a', 'b']) {
    const host = name === 'a' ? '10.0.0.1' : '10.0.0.2';
    assert.match(cfg, new RegExp(`backend c2s\\n[^]*server ${name} ${host}:5222 check port 5280 check-send-proxy send-proxy-v2\\n[^]*\\nbackend bosh`));
    assert.match(cfg, new RegExp(`backend bosh\\n[^]*server ${name} ${host}:5280 cookie ${name} check send-proxy-v2\\n[^]*\\nbackend websocket`));
    assert.match(cfg, new RegExp(`backend websocket\\n[^]*server ${name} ${host}:5280 check send-proxy-v2\\n`));
    assert.match(cfg, new RegExp(`backend internal\\n[^]*server ${name} ${host}:5280 check send-proxy-v2\\n`));
  }
  assert.match(cfg, /default-server inter 200ms fall 3 rise 2\n/);
});

test('the public HTTP frontend passes only the public paths; the API, admin, metrics and health are on the internal one', () => {
  const cfg = haproxyConfig();
  // The frontend's directives, comments left out.
  const frontend = (name: string): string =>
    (new RegExp(`\\nfrontend ${name}\\n((?:    .*\\n)+)`).exec(cfg)?.[1] ?? '')
      .split('\n')
      .filter((l) => !l.trim().startsWith('#'))
      .join('\n');
  const pub = frontend('http');
  assert.match(pub, /http-request deny deny_status 404 unless public\n/);
  assert.match(pub, /acl public path \/http-bind \/http-bind\/ \/bosh \/bosh\/ \/xmpp-websocket /);
  assert.match(pub, /acl public path_beg \/widget\/ \/demo\/ \/\.well-known\/host-meta\n/);
  for (const inside of ['/api', '/admin', '/metrics', '/health']) assert.ok(!pub.includes(inside), `${inside} on the public frontend`);
  const internal = frontend('internal');
  assert.match(internal, /bind 127\.0\.0\.1:5281\n/);
  assert.match(internal, /acl inside path \/metrics\n/);
  assert.match(internal, /acl inside path_beg \/api\/ \/admin\/ \/health\/\n/);
  assert.match(internal, /http-request deny deny_status 404 unless inside\n/);
  assert.doesNotMatch(haproxyConfig({ internalPort: 0 }), /frontend internal/);
});

test('without proxyProtocol no server line sends PROXY', () => {
  assert.doesNotMatch(haproxyConfig({ proxyProtocol: false }), /send-proxy/);
});

test('the BOSH server timeout exceeds the hold time', () => {
  assert.match(haproxyConfig({ boshHoldSeconds: 120 }), /backend bosh[\s\S]*timeout server 135s/);
});

test('bad or repeated node names are refused', () => {
  const node = { host: '127.0.0.1', c2sPort: 1, httpPort: 2 };
  assert.throws(() => haproxyConfig({ nodes: [] }), /no nodes/);
  assert.throws(() => haproxyConfig({ nodes: [{ ...node, name: 'a b' }] }), /bad node name/);
  assert.throws(() => haproxyConfig({ nodes: [{ ...node, name: 'a' }, { ...node, name: 'a' }] }), /must differ/);
});

test('haproxy accepts the configuration', { skip: needHaproxy() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-haproxy-check-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, haproxyConfig());
    const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/usr/local/sbin` };
    const r = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', env });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.doesNotMatch(out, /WARNING|ALERT/, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
