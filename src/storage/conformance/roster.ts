/** Conformance: rosters and roster versions (modules/roster). */
import assert from 'node:assert/strict';
import { SqlRosterStore } from '../../modules/roster/store-sql.js';
import type { RosterItem } from '../../modules/roster/api.js';
import { HOST, type ConformanceSuite } from './suite.js';

function item(jid: string, over: Partial<RosterItem> = {}): RosterItem {
  return { jid, name: null, subscription: 'none', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: true, ...over };
}

export const rosterSuite: ConformanceSuite = {
  name: 'roster',
  cases: {
    async 'update creates, changes and removes items; the version grows'(storage) {
      const r = new SqlRosterStore(storage);
      const v0 = await r.version(HOST, 'alice');
      const a = await r.update(HOST, 'alice', 'bob@x.test', () => item('bob@x.test', { name: 'Bob', groups: ['Friends', 'Wörk'] }));
      assert.equal(a.before, null);
      assert.ok(a.version > v0);
      assert.deepEqual(await r.get(HOST, 'alice', 'bob@x.test'), item('bob@x.test', { name: 'Bob', groups: ['Friends', 'Wörk'] }));
      const b = await r.update(HOST, 'alice', 'bob@x.test', (cur) => ({ ...cur!, subscription: 'both', askIn: true, askInStanza: '<presence type="subscribe"/>' }));
      assert.ok(b.version > a.version);
      assert.equal(b.before?.subscription, 'none');
      assert.equal((await r.get(HOST, 'alice', 'bob@x.test'))?.subscription, 'both');
      await r.update(HOST, 'alice', 'carol@x.test', () => item('carol@x.test'));
      assert.deepEqual((await r.list(HOST, 'alice')).map((i) => i.jid).sort(), ['bob@x.test', 'carol@x.test']);
      assert.deepEqual(await r.list(HOST, 'bob'), [], 'other users see nothing');
      const c = await r.update(HOST, 'alice', 'bob@x.test', () => null);
      assert.equal(c.after, null);
      assert.equal(await r.get(HOST, 'alice', 'bob@x.test'), null);
      assert.equal(await r.version(HOST, 'alice'), c.version);
    },
  },
};
