/** Which node holds which external component, on Redis: claims, conflicts, takeovers, releases. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ComponentDirectory } from './component-directory.js';

const URL = process.env.PARLEY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const redis = new Redis(URL);
const prefixes: string[] = [];

function setup(): { prefix: string; dir: (node: string) => ComponentDirectory & { notified: string[] } } {
  const prefix = `parley-test-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  return {
    prefix,
    dir: (nodeId) => {
      const notified: string[] = [];
      return Object.assign(new ComponentDirectory({ redis, prefix, nodeId, notify: (h) => notified.push(h) }), { notified });
    },
  };
}

after(async () => {
  for (const p of prefixes) {
    const keys = await redis.keys(`${p}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

test('the first claim wins; a claim of a host a live node holds names that node; the holder may claim again', async () => {
  const { prefix, dir } = setup();
  const a = dir('a');
  const b = dir('b');
  const live = () => true;
  assert.equal(await a.claim('gw.example.test', live), null);
  assert.deepEqual(a.notified, ['gw.example.test']);
  assert.equal(await redis.hget(`${prefix}:components`, 'gw.example.test'), 'a');
  assert.equal(await b.claim('gw.example.test', live), 'a');
  assert.equal(b.nodeOf('gw.example.test'), 'a');
  assert.equal(await a.claim('gw.example.test', live), null);
});

test('an entry of a node that is not live is taken over', async () => {
  const { prefix, dir } = setup();
  await dir('dead').claim('gw.example.test', () => true);
  const b = dir('b');
  assert.equal(await b.claim('gw.example.test', (n) => n !== 'dead'), null);
  assert.equal(await redis.hget(`${prefix}:components`, 'gw.example.test'), 'b');
});

test('a release removes only the releasing node\'s entry; others read the change', async () => {
  const { prefix, dir } = setup();
  const a = dir('a');
  const b = dir('b');
  await a.claim('gw.example.test', () => true);
  await b.release('gw.example.test'); // not b's: nothing happens
  assert.equal(await redis.hget(`${prefix}:components`, 'gw.example.test'), 'a');
  assert.equal(await b.refresh('gw.example.test'), 'a');
  await a.release('gw.example.test');
  assert.equal(await redis.hget(`${prefix}:components`, 'gw.example.test'), null);
  assert.equal(await b.refresh('gw.example.test'), undefined);
  assert.equal(b.nodeOf('gw.example.test'), undefined);
});

test('a dead node\'s hosts are forgotten by every node and deleted by the one that declared it dead', async () => {
  const { prefix, dir } = setup();
  const dead = dir('dead');
  await dead.claim('one.example.test', () => true);
  await dead.claim('two.example.test', () => true);
  const owner = dir('owner');
  const other = dir('other');
  await owner.loadAll();
  await other.loadAll();
  assert.deepEqual((await other.dropNode('dead', false)).sort(), ['one.example.test', 'two.example.test']);
  assert.equal(other.nodeOf('one.example.test'), undefined);
  assert.equal(await redis.hlen(`${prefix}:components`), 2);
  await owner.dropNode('dead', true);
  assert.equal(await redis.hlen(`${prefix}:components`), 0);
  assert.deepEqual(owner.notified.sort(), ['one.example.test', 'two.example.test']);
});

test('at start a node releases what a previous run of it left, and keeps what is connected', async () => {
  const { prefix, dir } = setup();
  const before = dir('n1');
  await before.claim('left.example.test', () => true);
  await before.claim('kept.example.test', () => true);
  const again = dir('n1');
  await again.loadAll();
  assert.deepEqual(await again.releaseLeftovers(['kept.example.test']), ['left.example.test']);
  assert.deepEqual(await redis.hgetall(`${prefix}:components`), { 'kept.example.test': 'n1' });
});

test('after Redis lost its data a node writes its hosts again', async () => {
  const { prefix, dir } = setup();
  const a = dir('a');
  await a.claim('gw.example.test', () => true);
  await redis.del(`${prefix}:components`);
  await a.republish(['gw.example.test']);
  assert.equal(await redis.hget(`${prefix}:components`, 'gw.example.test'), 'a');
});
