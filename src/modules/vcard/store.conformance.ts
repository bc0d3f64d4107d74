/**
 * Storage conformance of modules/vcard: vCards with their photo hash.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlVcardStore } from './store-sql.js';
import { HOST, type ConformanceSuite } from '../../storage/conformance/suite.js';

export const suite: ConformanceSuite = {
  name: 'vcard',
  cases: {
    async 'a vCard is stored, replaced, read with its hash, and removed'(storage) {
      const s = new SqlVcardStore(storage);
      assert.equal(await s.get(HOST, 'ann'), null);
      assert.equal(await s.photoHash(HOST, 'ann'), null);
      await s.set(HOST, 'ann', { xml: "<vCard xmlns='vcard-temp'><FN>Ann</FN></vCard>", photoHash: '' });
      assert.deepEqual(await s.get(HOST, 'ann'), { xml: "<vCard xmlns='vcard-temp'><FN>Ann</FN></vCard>", photoHash: '' });
      assert.equal(await s.photoHash(HOST, 'ann'), '');
      // The same content twice is still a successful write.
      await s.set(HOST, 'ann', { xml: "<vCard xmlns='vcard-temp'><FN>Ann</FN></vCard>", photoHash: '' });
      await s.set(HOST, 'ann', { xml: "<vCard xmlns='vcard-temp'><FN>Anne</FN></vCard>", photoHash: 'a'.repeat(40) });
      assert.equal((await s.get(HOST, 'ann'))?.xml, "<vCard xmlns='vcard-temp'><FN>Anne</FN></vCard>");
      assert.equal(await s.photoHash(HOST, 'ann'), 'a'.repeat(40));
      assert.equal(await s.get(HOST, 'bob'), null);
      await s.remove(HOST, 'ann');
      assert.equal(await s.get(HOST, 'ann'), null);
    },

    async 'vCards of different users and hosts are apart'(storage) {
      const s = new SqlVcardStore(storage);
      await s.set(HOST, 'ann', { xml: '<vCard/>', photoHash: '' });
      await s.set('other.test', 'ann', { xml: '<vCard><FN>x</FN></vCard>', photoHash: 'b'.repeat(40) });
      assert.equal(await s.photoHash(HOST, 'ann'), '');
      assert.equal(await s.photoHash('other.test', 'ann'), 'b'.repeat(40));
    },
  },
};
