/**
 * Storage conformance of auth/user-store: accounts and credentials.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlUserStore } from './user-store-sql.js';
import { makeCredentials } from './credentials.js';
import { HOST, type ConformanceSuite } from '../storage/conformance/suite.js';

export const suite: ConformanceSuite = {
  name: 'users',
  cases: {
    async 'create, exists, credentials, delete'(storage) {
      const users = new SqlUserStore(storage);
      const creds = await makeCredentials('secret');
      assert.equal(await users.create(HOST, 'alice', creds), true);
      assert.equal(await users.create(HOST, 'alice', creds), false, 'a second create is refused');
      assert.equal(await users.exists(HOST, 'alice'), true);
      assert.equal(await users.exists('other.test', 'alice'), false, 'hosts are separate');
      const sha256 = await users.getCredentials(HOST, 'alice', 'SHA-256');
      assert.deepEqual(sha256, creds.sha256);
      const next = await makeCredentials('other');
      assert.equal(await users.setCredentials(HOST, 'alice', next), true);
      assert.deepEqual(await users.getCredentials(HOST, 'alice', 'SHA-1'), next.sha1);
      assert.equal(await users.setCredentials(HOST, 'nobody', next), false);
      assert.equal(await users.delete(HOST, 'alice'), true);
      assert.equal(await users.delete(HOST, 'alice'), false);
      assert.equal(await users.getCredentials(HOST, 'alice', 'SHA-1'), null);
    },
    async 'names differing by accent, case or width are different accounts'(storage) {
      // PRECIS has already mapped case; what is left must compare exactly (binary collation on MySQL).
      const users = new SqlUserStore(storage);
      const creds = await makeCredentials('pw');
      for (const name of ['müller', 'muller', 'Muller', 'ｍuller', "o'brien", 'x;drop table users']) {
        assert.equal(await users.create(HOST, name, creds), true, name);
      }
      assert.equal(await users.count(HOST), 6);
      assert.equal(await users.delete(HOST, 'muller'), true);
      assert.equal(await users.exists(HOST, 'müller'), true);
      assert.equal(await users.exists(HOST, 'Muller'), true);
    },
    async 'bulk create, count and list in pages'(storage) {
      const users = new SqlUserStore(storage);
      const creds = await makeCredentials('pw');
      const names = Array.from({ length: 25 }, (_, i) => `u${String(i).padStart(2, '0')}`);
      assert.equal(await users.createMany(HOST, names.map((username) => ({ username, creds }))), 25);
      assert.equal(await users.createMany(HOST, names.slice(0, 5).map((username) => ({ username, creds }))), 0, 'existing ones are not counted');
      assert.equal(await users.count(HOST), 25);
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await users.list(HOST, { after, limit: 10 });
        if (page.length === 0) break;
        seen.push(...page);
        after = page[page.length - 1];
      }
      assert.deepEqual(seen, names);
    },
  },
};
