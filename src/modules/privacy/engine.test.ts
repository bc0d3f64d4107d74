/** The privacy engine's rules (XEP-0016 §2.1–2.2, XEP-0191 §4–5), without a server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Jid } from '../../xmpp/jid.js';
import { NOT_IN_ROSTER, blockedJids, classifyIn, classifyOut, compileList, decide, firstMatch, jidMatches, type RosterView } from './engine.js';
import { prependBlocks } from './blocking.js';
import type { PrivacyItem } from './store.js';

const J = (s: string) => Jid.parse(s);
const item = (over: Partial<PrivacyItem> & Pick<PrivacyItem, 'action' | 'order'>): PrivacyItem => ({ type: null, value: null, kinds: [], ...over });
const none = () => NOT_IN_ROSTER;

test('JID items match in the four XEP-0016 forms', () => {
  const c = J('romeo@example.net/orchard');
  assert.equal(jidMatches(J('romeo@example.net/orchard'), c), true);
  assert.equal(jidMatches(J('romeo@example.net/garden'), c), false, 'a full JID matches only that resource');
  assert.equal(jidMatches(J('romeo@example.net'), c), true, 'a bare JID matches any resource');
  assert.equal(jidMatches(J('romeo@example.net'), J('romeo@example.net')), true);
  assert.equal(jidMatches(J('juliet@example.net'), c), false);
  assert.equal(jidMatches(J('example.net/orchard'), c), true, 'domain/resource: that resource on the domain');
  assert.equal(jidMatches(J('example.net/garden'), c), false);
  assert.equal(jidMatches(J('example.net'), c), true, 'a domain matches every address on it');
  assert.equal(jidMatches(J('example.net'), J('example.net')), true);
  assert.equal(jidMatches(J('example.net'), J('chat.example.net')), true, 'and its subdomains');
  assert.equal(jidMatches(J('example.net'), J('badexample.net')), false, 'but not a name that merely ends the same');
  assert.equal(jidMatches(J('example.com'), c), false);
});

test('items apply in ascending order, whatever order they came in; the first match decides', () => {
  const list = compileList({
    name: 'l',
    items: [item({ action: 'allow', order: 20 }), item({ type: 'jid', value: 'tybalt@example.com', action: 'deny', order: 3 })],
  });
  assert.deepEqual(list.items.map((i) => i.item.order), [3, 20]);
  assert.equal(firstMatch(list, J('tybalt@example.com/pda'), 'message', none)?.item.action, 'deny');
  assert.equal(firstMatch(list, J('nurse@example.com'), 'message', none)?.item.action, 'allow', 'the fall-through item');
});

test('an item naming stanza kinds applies only to those; one naming none applies to all, subscriptions included', () => {
  const list = compileList({
    name: 'l',
    items: [
      item({ type: 'jid', value: 'a@x.test', action: 'deny', order: 1, kinds: ['message', 'presence-in'] }),
      item({ type: 'jid', value: 'b@x.test', action: 'deny', order: 2 }),
    ],
  });
  assert.ok(firstMatch(list, J('a@x.test'), 'message', none));
  assert.ok(firstMatch(list, J('a@x.test'), 'presence-in', none));
  assert.equal(firstMatch(list, J('a@x.test'), 'iq', none), null);
  assert.equal(firstMatch(list, J('a@x.test'), 'presence-out', none), null);
  assert.equal(firstMatch(list, J('a@x.test'), 'other', none), null, 'a subscription request is not a presence notification');
  for (const cls of ['message', 'iq', 'presence-in', 'presence-out', 'other'] as const) assert.ok(firstMatch(list, J('b@x.test'), cls, none), cls);
});

test('group and subscription items read the roster; someone not in it has subscription none', () => {
  const roster = new Map<string, RosterView>([
    ['friend@x.test', { subscription: 'both', groups: ['Friends'] }],
    ['enemy@x.test', { subscription: 'from', groups: ['Enemies', 'Work'] }],
  ]);
  const view = (bare: string) => () => roster.get(bare) ?? NOT_IN_ROSTER;
  const list = compileList({
    name: 'l',
    items: [
      item({ type: 'group', value: 'Enemies', action: 'deny', order: 1 }),
      item({ type: 'subscription', value: 'none', action: 'deny', order: 2, kinds: ['message'] }),
      item({ type: 'subscription', value: 'both', action: 'allow', order: 3 }),
    ],
  });
  assert.equal(list.needsRoster, true);
  assert.equal(firstMatch(list, J('enemy@x.test'), 'iq', view('enemy@x.test'))?.item.order, 1);
  assert.equal(firstMatch(list, J('stranger@y.test'), 'message', view('stranger@y.test'))?.item.order, 2);
  assert.equal(firstMatch(list, J('stranger@y.test'), 'iq', view('stranger@y.test')), null);
  assert.equal(firstMatch(list, J('friend@x.test/p'), 'message', view('friend@x.test'))?.item.action, 'allow');
});

test('an active list replaces the default one, but the default list’s blocked JIDs stay blocked', () => {
  const def = compileList({
    name: 'public',
    items: [item({ type: 'jid', value: 'tybalt@x.test', action: 'deny', order: 1 }), item({ type: 'jid', value: 'paris@x.test', action: 'deny', order: 2, kinds: ['message'] })],
  });
  const invisible = compileList({ name: 'invisible', items: [item({ action: 'deny', order: 1, kinds: ['presence-out'] })] });
  assert.deepEqual(decide(def, undefined, J('tybalt@x.test'), 'message', none), { action: 'deny', blocked: true });
  assert.deepEqual(decide(def, undefined, J('paris@x.test'), 'message', none), { action: 'deny', blocked: false }, 'a message-only item is not a block');
  assert.deepEqual(decide(def, undefined, J('nurse@x.test'), 'message', none), { action: 'allow', blocked: false });
  assert.deepEqual(decide(def, invisible, J('paris@x.test'), 'message', none), { action: 'allow', blocked: false }, 'no layering of other items');
  assert.deepEqual(decide(def, invisible, J('tybalt@x.test/pda'), 'iq', none), { action: 'deny', blocked: true });
  assert.equal(decide(def, invisible, J('nurse@x.test'), 'presence-out', none).action, 'deny');
  assert.equal(decide(undefined, undefined, J('nurse@x.test'), 'message', none).action, 'allow', 'no list: everything goes');
  assert.equal(decide(def, def, J('tybalt@x.test'), 'other', none).action, 'deny', 'the default list made active');
});

test('the blocklist is the default list’s jid+deny items for every stanza', () => {
  const def = compileList({
    name: 'public',
    items: [
      item({ type: 'jid', value: 'a@x.test', action: 'deny', order: 1 }),
      item({ type: 'jid', value: 'b@x.test', action: 'deny', order: 2, kinds: ['message'] }),
      item({ type: 'jid', value: 'c@x.test', action: 'allow', order: 3 }),
      item({ type: 'group', value: 'G', action: 'deny', order: 4 }),
      item({ type: 'jid', value: 'd.test', action: 'deny', order: 5 }),
    ],
  });
  assert.deepEqual(blockedJids(def), ['a@x.test', 'd.test']);
  assert.deepEqual(blockedJids(undefined), []);
});

test('stanza classes: presence notifications are no type or unavailable; the rest is "other"', () => {
  assert.equal(classifyIn('message', 'chat'), 'message');
  assert.equal(classifyIn('iq', 'get'), 'iq');
  assert.equal(classifyIn('presence', undefined), 'presence-in');
  assert.equal(classifyIn('presence', 'unavailable'), 'presence-in');
  assert.equal(classifyIn('presence', 'subscribe'), 'other');
  assert.equal(classifyIn('presence', 'probe'), 'other');
  assert.equal(classifyOut('presence', undefined), 'presence-out');
  assert.equal(classifyOut('presence', 'subscribed'), 'other');
  assert.equal(classifyOut('message', 'chat'), 'other', 'an outgoing message is blocked only by an item for everything');
});

test('new blocks go first, keeping other orders when there is room below them', () => {
  const b = (v: string): PrivacyItem => ({ type: 'jid', value: v, action: 'deny', order: 0, kinds: [] });
  assert.deepEqual(
    prependBlocks([item({ action: 'allow', order: 10 })], [b('x@y'), b('z@y')]).map((i) => [i.value, i.order]),
    [
      ['x@y', 8],
      ['z@y', 9],
      [null, 10],
    ],
  );
  assert.deepEqual(
    prependBlocks([item({ action: 'allow', order: 5 }), item({ action: 'deny', order: 0, type: 'group', value: 'G' })], [b('x@y')]).map((i) => [i.value, i.order]),
    [
      ['x@y', 0],
      ['G', 1],
      [null, 2],
    ],
    'renumbered when there is no room',
  );
  assert.deepEqual(prependBlocks([], [b('x@y')]).map((i) => i.order), [0]);
});
