import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadShardMap, parseShardMap } from './shard-map.js';

/** Asserts a ConfigError whose message names `path`. */
function rejects(input: unknown, path: string): void {
  assert.throws(
    () => parseShardMap(input),
    (e: Error & { code?: string }) => {
      assert.equal(e.name, 'ConfigError');
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.ok(e.message.includes(`shard map: ${path}:`), `"${e.message}" names ${path}`);
      return true;
    },
  );
}

function withFile(text: string, fn: (file: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'parley-shard-map-'));
  try {
    const file = join(dir, 'shards.yaml');
    writeFileSync(file, text);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a valid map merges the defaults into every shard and the directory defaults to the first shard', () => {
  const map = parseShardMap({
    defaults: { host: '10.0.0.1', password: 'secret' },
    shards: {
      s1: { database: 'parley_s1' },
      s2: { database: 'parley_s2', port: 3307, weight: 2 },
      s3: { database: 'parley_s3', host: '10.0.0.3', draining: true },
    },
  });
  assert.equal(map.directory, 's1');
  assert.deepEqual(map.shards, [
    { name: 's1', host: '10.0.0.1', port: 3306, user: 'root', password: 'secret', database: 'parley_s1', weight: 1, draining: false },
    { name: 's2', host: '10.0.0.1', port: 3307, user: 'root', password: 'secret', database: 'parley_s2', weight: 2, draining: false },
    { name: 's3', host: '10.0.0.3', port: 3306, user: 'root', password: 'secret', database: 'parley_s3', weight: 1, draining: true },
  ]);
});

test('an explicit directory naming a shard is kept', () => {
  const map = parseShardMap({ directory: 'b', shards: { a: { database: 'x' }, b: { database: 'y' } } });
  assert.equal(map.directory, 'b');
});

test('an unknown key is refused, naming its path', () => {
  rejects({ shards: { s1: { database: 'a' } }, shardz: {} }, 'shardz');
  rejects({ defaults: { hots: 'x' }, shards: { s1: { database: 'a' } } }, 'defaults.hots');
  rejects({ shards: { s1: { database: 'a', wieght: 2 } } }, 'shards.s1.wieght');
});

test('a bad port is refused, naming the shard’s port', () => {
  rejects({ shards: { s1: { database: 'a', port: 70000 } } }, 'shards.s1.port');
  rejects({ shards: { s1: { database: 'a', port: 'x' } } }, 'shards.s1.port');
  rejects({ defaults: { port: 0 }, shards: { s1: { database: 'a' } } }, 'defaults.port');
});

test('a shard without a database is refused', () => {
  rejects({ shards: { s1: { database: 'a' }, s2: { host: 'h' } } }, 'shards.s2.database');
  rejects({ shards: { s1: null } }, 'shards.s1.database');
});

test('two shards on the same host:port/database are refused', () => {
  rejects({ shards: { s1: { database: 'a' }, s2: { database: 'a', host: '127.0.0.1' } } }, 'shards.s2.database');
});

test('a bad shard name is refused', () => {
  rejects({ shards: { 'bad name': { database: 'a' } } }, 'shards.bad name');
  rejects({ shards: { ['x'.repeat(65)]: { database: 'a' } } }, `shards.${'x'.repeat(65)}`);
});

test('a directory naming a missing shard is refused', () => {
  rejects({ directory: 's9', shards: { s1: { database: 'a' } } }, 'directory');
});

test('a map where no shard takes new users is refused', () => {
  rejects({ shards: { s1: { database: 'a', draining: true }, s2: { database: 'b', draining: true } } }, 'shards');
  rejects({ shards: { s1: { database: 'a', weight: 0 } } }, 'shards');
  rejects({ shards: {} }, 'shards');
});

test('loadShardMap reads a file and names it in errors of values', () => {
  withFile('directory: s1\nshards:\n  s1: { database: parley_a }\n  s2: { database: parley_b, port: 3307 }\n', (file) => {
    const map = loadShardMap(file);
    assert.deepEqual(map.shards.map((s) => [s.name, s.port]), [['s1', 3306], ['s2', 3307]]);
  });
  withFile('shards:\n  s1: { database: parley_a, port: -1 }\n', (file) => {
    assert.throws(() => loadShardMap(file), (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && e.message.includes(`${file}: shards.s1.port`));
  });
});

test('loadShardMap names file:line of a YAML syntax error', () => {
  withFile('directory: s1\nshards:\n  s1: { database: a }\n    s2: { database: b }\n', (file) => {
    assert.throws(
      () => loadShardMap(file),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CONFIG_INVALID');
        assert.ok(e.message.includes(`${file}:4:`), e.message);
        return true;
      },
    );
  });
  withFile('shards:\n  s1: { database: a }\n  s1: { database: b }\n', (file) => {
    assert.throws(() => loadShardMap(file), (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && e.message.includes(`${file}:3:`));
  });
});

test('loadShardMap on a missing file is a ConfigError naming the file', () => {
  assert.throws(
    () => loadShardMap('/nonexistent/shards.yaml'),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && e.message.includes('/nonexistent/shards.yaml'),
  );
});
