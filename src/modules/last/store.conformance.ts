/**
 * Storage conformance of modules/last: last activity.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlLastActivityStore } from './store-sql.js';
import { HOST, type ConformanceSuite } from '../../storage/conformance/suite.js';

export const suite: ConformanceSuite = {
  name: 'last',
  cases: {
    async 'the last logout is stored, replaced and kept apart per user and host'(storage) {
      const s = new SqlLastActivityStore(storage);
      assert.equal(await s.get(HOST, 'ann'), null);
      await s.set(HOST, 'ann', { at: 1_800_000_000_000, status: 'Goodbye' });
      assert.deepEqual(await s.get(HOST, 'ann'), { at: 1_800_000_000_000, status: 'Goodbye' });
      await s.set(HOST, 'ann', { at: 1_800_000_000_000, status: 'Goodbye' }); // the same twice
      await s.set(HOST, 'ann', { at: 1_800_000_360_000, status: '' });
      assert.deepEqual(await s.get(HOST, 'ann'), { at: 1_800_000_360_000, status: '' });
      // Writes that finish out of order: an earlier time does not replace a later one.
      await s.set(HOST, 'ann', { at: 1_800_000_300_000, status: 'stale' });
      assert.deepEqual(await s.get(HOST, 'ann'), { at: 1_800_000_360_000, status: '' });
      await s.set(HOST, 'ann', { at: 1_800_000_360_000, status: 'Bye' }); // as late, with a status
      assert.deepEqual(await s.get(HOST, 'ann'), { at: 1_800_000_360_000, status: 'Bye' });
      await s.set(HOST, 'ann', { at: 1_800_000_360_000, status: '' });
      assert.deepEqual(await s.get(HOST, 'ann'), { at: 1_800_000_360_000, status: 'Bye' });
      assert.equal(await s.get(HOST, 'bob'), null);
      assert.equal(await s.get('other.test', 'ann'), null);
    },
  },
};
