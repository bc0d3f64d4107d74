/**
 * Storage conformance of modules/mam: message archive and archiving preferences.
 * Written once against the `Storage` handle; `test/conformance.test.ts` runs every case
 * on SQLite and on MariaDB (two shards), each on a fresh database.
 */
import assert from 'node:assert/strict';
import { SqlArchiveStore } from './store-sql.js';
import type { ArchiveEntry } from './store.js';
import { HOST, type ConformanceSuite } from '../../storage/conformance/suite.js';

const T0 = Date.UTC(2026, 0, 1);

function entry(i: number, withJid = 'bob@x.test', at = T0 + i * 1000): ArchiveEntry {
  return { id: at * 1024 + (i % 7), with: withJid, withResource: i % 2 ? 'phone' : '', direction: i % 3 ? 'in' : 'out', stanza: `<message xmlns='jabber:client' id='m${i}'/>`, createdAt: at };
}

export const suite: ConformanceSuite = {
  name: 'archive',
  cases: {
    async 'append, page from either end, count and filters'(storage) {
      const a = new SqlArchiveStore(storage);
      const rows = Array.from({ length: 30 }, (_, i) => entry(i, i % 3 === 0 ? 'carol@x.test' : 'bob@x.test'));
      await a.append(HOST, 'alice', rows.slice(0, 10));
      for (const r of rows.slice(10)) await a.append(HOST, 'alice', [r]);
      await a.append(HOST, 'dave', [entry(0)]);
      assert.equal(await a.count(HOST, 'alice', {}), 30);
      const first = await a.page(HOST, 'alice', {}, { limit: 12, from: 'start' });
      assert.deepEqual(first.items.map((e) => e.id), rows.slice(0, 12).map((e) => e.id));
      assert.equal(first.more, true);
      assert.deepEqual(first.items[1], rows[1]);
      const last = await a.page(HOST, 'alice', {}, { limit: 12, from: 'end' });
      assert.deepEqual(last.items.map((e) => e.id), rows.slice(18).map((e) => e.id));
      const tail = await a.page(HOST, 'alice', { afterId: rows[24]!.id }, { limit: 12, from: 'start' });
      assert.deepEqual(tail.items.map((e) => e.id), rows.slice(25).map((e) => e.id));
      assert.equal(tail.more, false);
      const skipped = await a.page(HOST, 'alice', {}, { limit: 5, from: 'start', offset: 10 });
      assert.deepEqual(skipped.items.map((e) => e.id), rows.slice(10, 15).map((e) => e.id));
      const range = { afterId: rows[4]!.id, beforeId: rows[9]!.id };
      assert.equal(await a.count(HOST, 'alice', range), 4);
      assert.equal(await a.count(HOST, 'alice', { with: { bare: 'carol@x.test' } }), 10);
      assert.equal(await a.count(HOST, 'alice', { with: { bare: 'bob@x.test', resource: 'phone' } }), 10);
      assert.equal(await a.count(HOST, 'alice', { ids: [rows[3]!.id, rows[5]!.id, 42] }), 2);
      assert.equal(await a.count(HOST, 'alice', { ids: [] }), 0);
      assert.ok(await a.has(HOST, 'alice', rows[7]!.id));
      assert.ok(!(await a.has(HOST, 'dave', rows[7]!.id)));
      const b = await a.bounds(HOST, 'alice');
      assert.deepEqual([b?.first.id, b?.last.id], [rows[0]!.id, rows[29]!.id]);
      assert.equal(await a.bounds(HOST, 'nobody'), null);
    },
    async 'remove, sweep by age and drop a user'(storage) {
      const a = new SqlArchiveStore(storage);
      await a.append(HOST, 'alice', Array.from({ length: 10 }, (_, i) => entry(i)));
      await a.append(HOST, 'bob', Array.from({ length: 10 }, (_, i) => entry(i)));
      await a.remove(HOST, 'alice', [entry(0).id, entry(1).id]);
      assert.equal(await a.count(HOST, 'alice', {}), 8);
      assert.equal(await a.removeOlderThan(T0 + 5000), 3 + 5);
      assert.equal(await a.count(HOST, 'alice', {}), 5);
      assert.equal(await a.count(HOST, 'bob', {}), 5);
      await a.setPrefs(HOST, 'alice', { default: 'never', always: [], never: [] });
      await a.removeUser(HOST, 'alice');
      assert.equal(await a.count(HOST, 'alice', {}), 0);
      assert.equal(await a.getPrefs(HOST, 'alice'), null);
      assert.equal(await a.count(HOST, 'bob', {}), 5);
    },
    async 'preferences are stored and replaced'(storage) {
      const a = new SqlArchiveStore(storage);
      assert.equal(await a.getPrefs(HOST, 'alice'), null);
      await a.setPrefs(HOST, 'alice', { default: 'roster', always: ['bob@x.test'], never: ['eve@x.test/evil'] });
      assert.deepEqual(await a.getPrefs(HOST, 'alice'), { default: 'roster', always: ['bob@x.test'], never: ['eve@x.test/evil'] });
      await a.setPrefs(HOST, 'alice', { default: 'always', always: [], never: [] });
      assert.deepEqual(await a.getPrefs(HOST, 'alice'), { default: 'always', always: [], never: [] });
      assert.equal(await a.getPrefs(HOST, 'bob'), null);
    },
  },
};
