/**
 * Storage conformance of modules/privacy: privacy lists and the default list.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlPrivacyStore } from './store-sql.js';
import type { PrivacyItem } from './store.js';
import { HOST, type ConformanceSuite } from '../../storage/conformance/suite.js';

const deny = (value: string, order: number): PrivacyItem => ({ type: 'jid', value, action: 'deny', order, kinds: [] });
const allowAll = (order: number): PrivacyItem => ({ type: null, value: null, action: 'allow', order, kinds: [] });

export const suite: ConformanceSuite = {
  name: 'privacy',
  cases: {
    async 'lists are created, replaced, listed in name order and removed'(storage) {
      const p = new SqlPrivacyStore(storage);
      assert.deepEqual(await p.load(HOST, 'alice'), { lists: [], defaultName: null });
      await p.putList(HOST, 'alice', { name: 'public', items: [deny('tybalt@x.test', 1), allowAll(2)] });
      const special: PrivacyItem = { type: 'group', value: 'Enemies', action: 'deny', order: 4, kinds: ['message', 'presence-in'] };
      await p.putList(HOST, 'alice', { name: 'Special ünïcode', items: [special] });
      let all = await p.load(HOST, 'alice');
      assert.deepEqual(
        all.lists.map((l) => l.name),
        ['Special ünïcode', 'public'].sort(),
      );
      assert.deepEqual(all.lists.find((l) => l.name === 'Special ünïcode')!.items, [special]);
      await p.putList(HOST, 'alice', { name: 'public', items: [allowAll(7)] });
      all = await p.load(HOST, 'alice');
      assert.deepEqual(all.lists.find((l) => l.name === 'public')!.items, [allowAll(7)], 'a put replaces the whole list');
      assert.deepEqual(await p.load(HOST, 'bob'), { lists: [], defaultName: null }, 'other users see nothing');
      assert.equal(await p.removeList(HOST, 'alice', 'public'), true);
      assert.equal(await p.removeList(HOST, 'alice', 'public'), false);
      assert.deepEqual((await p.load(HOST, 'alice')).lists.map((l) => l.name), ['Special ünïcode']);
    },
    async 'one default list at most; it survives a replace; it can be declined'(storage) {
      const p = new SqlPrivacyStore(storage);
      assert.equal(await p.setDefault(HOST, 'alice', 'nope'), false, 'no such list');
      await p.putList(HOST, 'alice', { name: 'a', items: [allowAll(1)] });
      await p.putList(HOST, 'alice', { name: 'b', items: [allowAll(1)] });
      assert.equal(await p.setDefault(HOST, 'alice', 'a'), true);
      assert.equal((await p.load(HOST, 'alice')).defaultName, 'a');
      assert.equal(await p.setDefault(HOST, 'alice', 'b'), true);
      assert.equal((await p.load(HOST, 'alice')).defaultName, 'b');
      await p.putList(HOST, 'alice', { name: 'b', items: [deny('x@x.test', 3)] });
      assert.equal((await p.load(HOST, 'alice')).defaultName, 'b', 'replacing the default keeps it default');
      assert.equal(await p.setDefault(HOST, 'alice', null), true);
      assert.equal((await p.load(HOST, 'alice')).defaultName, null);
      await p.putDefaultList(HOST, 'alice', { name: 'blocklist', items: [deny('y@x.test', 0)] });
      const all = await p.load(HOST, 'alice');
      assert.equal(all.defaultName, 'blocklist');
      assert.deepEqual(all.lists.find((l) => l.name === 'blocklist')!.items, [deny('y@x.test', 0)]);
      await p.putDefaultList(HOST, 'alice', { name: 'a', items: [deny('z@x.test', 0)] });
      assert.equal((await p.load(HOST, 'alice')).defaultName, 'a', 'putDefaultList moves the default');
      assert.equal(await p.removeList(HOST, 'alice', 'a'), true);
      assert.equal((await p.load(HOST, 'alice')).defaultName, null, 'a removed default is no default');
    },
  },
};
