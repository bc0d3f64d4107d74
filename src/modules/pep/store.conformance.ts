/**
 * Storage conformance of modules/pep: PEP nodes and items.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlPepStore } from './store-sql.js';
import { defaultConfig } from './node-config.js';
import { HOST, type ConformanceSuite } from '../../storage/conformance/suite.js';

const defaults = defaultConfig(20);
const item = (id: string) => ({ id, payload: `<x xmlns='urn:test' n='${id}'/>` });

export const suite: ConformanceSuite = {
  name: 'pep',
  cases: {
    async 'nodes are created once, listed, configured and deleted; the node limit holds'(storage) {
      const s = new SqlPepStore(storage, defaults);
      assert.equal(await s.getNode(HOST, 'ann', 'n1'), null);
      assert.equal(await s.createNode(HOST, 'ann', 'n1', defaults, 2), 'created');
      assert.equal(await s.createNode(HOST, 'ann', 'n1', defaults, 2), 'exists');
      assert.equal(await s.createNode(HOST, 'ann', 'n2', { ...defaults, accessModel: 'open' }, 2), 'created');
      assert.equal(await s.createNode(HOST, 'ann', 'n3', defaults, 2), 'full');
      assert.deepEqual((await s.listNodes(HOST, 'ann')).map((n) => [n.node, n.config.accessModel]), [['n1', 'presence'], ['n2', 'open']]);
      assert.equal(await s.configureNode(HOST, 'ann', 'n1', { ...defaults, accessModel: 'whitelist', maxItems: 3 }), true);
      assert.equal((await s.getNode(HOST, 'ann', 'n1'))?.accessModel, 'whitelist');
      assert.equal((await s.getNode(HOST, 'ann', 'n1'))?.maxItems, 3);
      assert.equal(await s.configureNode(HOST, 'ann', 'nope', defaults), false);
      await s.publish(HOST, 'ann', 'n1', item('a'), 3);
      assert.equal(await s.deleteNode(HOST, 'ann', 'n1'), true);
      assert.equal(await s.deleteNode(HOST, 'ann', 'n1'), false);
      assert.deepEqual(await s.items(HOST, 'ann', 'n1'), []);
      assert.deepEqual(await s.listNodes(HOST, 'bob'), []);
    },

    async 'items keep publish order, a republished id becomes the newest, and max items trims the oldest'(storage) {
      const s = new SqlPepStore(storage, defaults);
      await s.createNode(HOST, 'ann', 'n', defaults, 10);
      for (const id of ['a', 'b', 'c']) await s.publish(HOST, 'ann', 'n', item(id), 3);
      assert.deepEqual((await s.items(HOST, 'ann', 'n')).map((i) => i.id), ['a', 'b', 'c']);
      await s.publish(HOST, 'ann', 'n', { id: 'a', payload: "<x xmlns='urn:test' n='a2'/>" }, 3);
      const all = await s.items(HOST, 'ann', 'n');
      assert.deepEqual(all.map((i) => i.id), ['b', 'c', 'a']);
      assert.equal(all[2]!.payload, "<x xmlns='urn:test' n='a2'/>");
      assert.ok(all.every((i) => i.createdAt > 0));
      await s.publish(HOST, 'ann', 'n', item('d'), 3);
      assert.deepEqual((await s.items(HOST, 'ann', 'n')).map((i) => i.id), ['c', 'a', 'd']);
      assert.deepEqual((await s.items(HOST, 'ann', 'n', { max: 2 })).map((i) => i.id), ['a', 'd']);
      assert.deepEqual((await s.items(HOST, 'ann', 'n', { ids: ['d', 'c', 'zz'] })).map((i) => i.id), ['c', 'd']);
      assert.deepEqual(await s.items(HOST, 'ann', 'n', { ids: [] }), []);
      // Lowering max items through configuration drops the oldest.
      await s.configureNode(HOST, 'ann', 'n', { ...defaults, maxItems: 1 });
      assert.deepEqual((await s.items(HOST, 'ann', 'n')).map((i) => i.id), ['d']);
    },

    async 'the account quota counts items and payload bytes over all nodes, after replacement and trimming'(storage) {
      const s = new SqlPepStore(storage, defaults);
      for (const n of ['q1', 'q2']) await s.createNode(HOST, 'quo', n, defaults, 10);
      const quota = { items: 3, bytes: 200 };
      const sized = (id: string, bytes: number) => ({ id, payload: `<x xmlns='urn:test'>${'ż'.repeat(Math.floor(bytes / 2))}</x>` });
      assert.equal(await s.publish(HOST, 'quo', 'q1', item('a'), 5, quota), true);
      assert.equal(await s.publish(HOST, 'quo', 'q2', item('b'), 5, quota), true);
      assert.equal(await s.publish(HOST, 'quo', 'q2', item('c'), 5, quota), true);
      // A fourth item: refused, nothing stored.
      assert.equal(await s.publish(HOST, 'quo', 'q1', item('d'), 5, quota), false);
      assert.deepEqual((await s.items(HOST, 'quo', 'q1')).map((i) => i.id), ['a']);
      // Replacing an item, or publishing into a node whose max items drops the oldest, adds nothing.
      assert.equal(await s.publish(HOST, 'quo', 'q1', { id: 'a', payload: "<x xmlns='urn:test' n='a2'/>" }, 5, quota), true);
      assert.equal(await s.publish(HOST, 'quo', 'q2', item('e'), 2, quota), true);
      assert.deepEqual((await s.items(HOST, 'quo', 'q2')).map((i) => i.id), ['c', 'e']);
      // Bytes: multibyte payloads count in bytes.
      assert.equal(await s.retract(HOST, 'quo', 'q2', 'c'), true);
      assert.equal(await s.publish(HOST, 'quo', 'q2', sized('big', 400), 5, quota), false);
      assert.equal(await s.publish(HOST, 'quo', 'q2', sized('mid', 120), 5, quota), true);
      assert.equal(await s.publish(HOST, 'quo', 'q1', { id: 'a', payload: sized('a', 120).payload }, 5, quota), false);
      assert.equal((await s.items(HOST, 'quo', 'q1'))[0]!.payload, "<x xmlns='urn:test' n='a2'/>");
      // Deleting frees it.
      assert.equal(await s.deleteNode(HOST, 'quo', 'q2'), true);
      assert.equal(await s.publish(HOST, 'quo', 'q1', { id: 'a', payload: sized('a', 120).payload }, 5, quota), true);
      assert.equal(await s.publish(HOST, 'quo', 'q1', item('f'), 5, quota), true);
      await s.removeUser(HOST, 'quo');
    },

    async 'last items per node, retract, purge and removal of a user'(storage) {
      const s = new SqlPepStore(storage, defaults);
      for (const n of ['n1', 'n2', 'n3']) await s.createNode(HOST, 'ann', n, defaults, 10);
      await s.publish(HOST, 'ann', 'n1', item('a'), 5);
      await s.publish(HOST, 'ann', 'n1', item('b'), 5);
      await s.publish(HOST, 'ann', 'n2', item('c'), 5);
      await s.createNode(HOST, 'bob', 'n1', defaults, 10);
      await s.publish(HOST, 'bob', 'n1', item('z'), 5);
      const last = await s.lastItems(HOST, 'ann', ['n1', 'n2', 'n3']);
      assert.deepEqual([...last.entries()].map(([n, i]) => [n, i.id]).sort(), [['n1', 'b'], ['n2', 'c']]);
      assert.equal((await s.lastItems(HOST, 'ann', [])).size, 0);
      assert.equal(await s.retract(HOST, 'ann', 'n1', 'b'), true);
      assert.equal(await s.retract(HOST, 'ann', 'n1', 'b'), false);
      assert.equal((await s.lastItems(HOST, 'ann', ['n1'])).get('n1')?.id, 'a');
      await s.purge(HOST, 'ann', 'n1');
      assert.deepEqual(await s.items(HOST, 'ann', 'n1'), []);
      assert.notEqual(await s.getNode(HOST, 'ann', 'n1'), null);
      await s.removeUser(HOST, 'ann');
      assert.deepEqual(await s.listNodes(HOST, 'ann'), []);
      assert.deepEqual(await s.items(HOST, 'ann', 'n2'), []);
      assert.deepEqual((await s.items(HOST, 'bob', 'n1')).map((i) => i.id), ['z']);
    },
  },
};
