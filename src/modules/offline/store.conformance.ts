/**
 * Storage conformance of modules/offline: offline messages.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlOfflineStore } from './store-sql.js';
import { HOST, type ConformanceSuite } from '../../storage/conformance/suite.js';

export const suite: ConformanceSuite = {
  name: 'offline',
  cases: {
    async 'push keeps order, stops at the limit, fetch and remove'(storage) {
      const o = new SqlOfflineStore(storage);
      for (let i = 0; i < 5; i++) assert.equal(await o.push(HOST, 'bob', `<message id="m${i}"/>`, 5, `k${i}`), 'stored');
      assert.equal(await o.push(HOST, 'bob', '<message id="m5"/>', 5, 'k5'), 'full');
      assert.equal(await o.count(HOST, 'bob'), 5);
      const first = await o.fetch(HOST, 'bob', 3);
      assert.deepEqual(first.map((m) => m.stanza), ['<message id="m0"/>', '<message id="m1"/>', '<message id="m2"/>']);
      assert.ok(first.every((m) => m.createdAt > 0));
      await o.remove(HOST, 'bob', first.map((m) => m.id));
      assert.deepEqual((await o.fetch(HOST, 'bob', 10)).map((m) => m.stanza), ['<message id="m3"/>', '<message id="m4"/>']);
      assert.equal(await o.count(HOST, 'alice'), 0);
    },
    async 'fetch by ids returns only existing messages of that user, and clear empties one user only'(storage) {
      const o = new SqlOfflineStore(storage);
      for (let i = 0; i < 4; i++) await o.push(HOST, 'bob', `<message id="b${i}"/>`, 10, `k${i}`);
      await o.push(HOST, 'carl', '<message id="c0"/>', 10, 'k0');
      const all = await o.fetch(HOST, 'bob', 10);
      const carl = await o.fetch(HOST, 'carl', 10);
      const picked = await o.fetchByIds(HOST, 'bob', [all[2]!.id, all[0]!.id, 999_999, carl[0]!.id]);
      assert.deepEqual(picked.map((m) => m.stanza), ['<message id="b0"/>', '<message id="b2"/>'], 'oldest first, not another user’s');
      assert.deepEqual(await o.fetchByIds(HOST, 'bob', []), []);
      await o.clear(HOST, 'bob');
      assert.equal(await o.count(HOST, 'bob'), 0);
      assert.equal(await o.count(HOST, 'carl'), 1);
    },
    async 'a message pushed again with its key is stored once (a retried write, a resend), even at the limit'(storage) {
      const o = new SqlOfflineStore(storage);
      assert.equal(await o.push(HOST, 'dora', '<message id="d0"/>', 2, 'same'), 'stored');
      assert.equal(await o.push(HOST, 'dora', '<message id="d0"/>', 2, 'same'), 'stored');
      assert.equal(await o.count(HOST, 'dora'), 1);
      assert.equal(await o.push(HOST, 'dora', '<message id="d1"/>', 2, 'other'), 'stored');
      assert.equal(await o.push(HOST, 'dora', '<message id="d1"/>', 2, 'other'), 'stored', 'there already: not "full"');
      assert.equal(await o.push(HOST, 'dora', '<message id="d2"/>', 2, 'third'), 'full');
      assert.equal(await o.push(HOST, 'erik', '<message id="d0"/>', 2, 'same'), 'stored', 'keys are per user');
      assert.equal(await o.count(HOST, 'dora'), 2);
    },
  },
};
