/**
 * The subscription state machine against RFC 6121 Appendix A: every state of A.1 under
 * every subscription stanza, outbound (A.2) and inbound (A.3), then the pre-approvals of
 * §3.4, items that do not exist, and requests from strangers (hidden items).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NO_SUBSCRIPTION, dependsOnState, subscriptionTransition, type SubscriptionDirection, type SubscriptionState, type SubscriptionType } from './subscription.js';

/** The states of RFC 6121 A.1, by their names there. */
const STATES = {
  None: { subscription: 'none', askOut: false, askIn: false },
  'None + Pending Out': { subscription: 'none', askOut: true, askIn: false },
  'None + Pending In': { subscription: 'none', askOut: false, askIn: true },
  'None + Pending Out/In': { subscription: 'none', askOut: true, askIn: true },
  To: { subscription: 'to', askOut: false, askIn: false },
  'To + Pending In': { subscription: 'to', askOut: false, askIn: true },
  From: { subscription: 'from', askOut: false, askIn: false },
  'From + Pending Out': { subscription: 'from', askOut: true, askIn: false },
  Both: { subscription: 'both', askOut: false, askIn: false },
} as const;
type StateName = keyof typeof STATES;
const NAMES = Object.keys(STATES) as StateName[];

/** An item of the roster in state `name` (frozen: the machine must not change its input). */
function item(name: StateName, over: Partial<SubscriptionState> = {}): SubscriptionState {
  return Object.freeze({ ...NO_SUBSCRIPTION, inRoster: true, ...STATES[name], ...over });
}

function nameOf(s: SubscriptionState): StateName {
  const found = NAMES.find((n) => STATES[n].subscription === s.subscription && STATES[n].askOut === s.askOut && STATES[n].askIn === s.askIn);
  assert.ok(found, `not a state of RFC 6121 A.1: ${JSON.stringify(s)}`);
  return found;
}

const SAME = 'no state change';
/** One row of an Appendix A table: existing state → routed/delivered? → new state. */
type Row = [StateName, 'yes' | 'no', StateName | typeof SAME];

/**
 * Checks one table: for each row, whether the stanza goes on (outbound: routed to the
 * contact; inbound: delivered to the user) and the state after it. `parley` overrides
 * the "goes on" column where Parley chose otherwise (see subscription.ts).
 */
function table(direction: SubscriptionDirection, type: SubscriptionType, rows: Row[], parley: Partial<Record<StateName, 'yes' | 'no'>> = {}): void {
  assert.deepEqual(
    rows.map((r) => r[0]),
    NAMES,
    'every state, in the order of A.1',
  );
  for (const [name, rfcGoesOn, after] of rows) {
    const before = item(name);
    const t = subscriptionTransition(before, direction, type);
    const goesOn = parley[name] ?? rfcGoesOn;
    const sent = direction === 'outbound' ? t.effects.includes('route') : t.effects.includes('deliver') || t.effects.includes('store-request');
    assert.equal(sent, goesOn === 'yes', `${direction} ${type} in "${name}": ${direction === 'outbound' ? 'routed' : 'delivered'}?`);
    assert.ok(t.next !== null, `${direction} ${type} in "${name}" keeps the item`);
    assert.equal(nameOf(t.next), after === SAME ? name : after, `${direction} ${type} in "${name}": new state`);
  }
}

test('A.2.1: an outbound subscribe is routed in every state and makes the user pending out unless subscribed to the contact', () => {
  table('outbound', 'subscribe', [
    ['None', 'yes', 'None + Pending Out'],
    ['None + Pending Out', 'yes', SAME],
    ['None + Pending In', 'yes', 'None + Pending Out/In'],
    ['None + Pending Out/In', 'yes', SAME],
    ['To', 'yes', SAME],
    ['To + Pending In', 'yes', SAME],
    ['From', 'yes', 'From + Pending Out'],
    ['From + Pending Out', 'yes', SAME],
    ['Both', 'yes', SAME],
  ]);
});

test('A.2.2: an outbound unsubscribe is routed in every state and ends the user’s subscription to the contact', () => {
  table('outbound', 'unsubscribe', [
    ['None', 'yes', SAME],
    ['None + Pending Out', 'yes', 'None'],
    ['None + Pending In', 'yes', SAME],
    ['None + Pending Out/In', 'yes', 'None + Pending In'],
    ['To', 'yes', 'None'],
    ['To + Pending In', 'yes', 'None + Pending In'],
    ['From', 'yes', SAME],
    ['From + Pending Out', 'yes', 'From'],
    ['Both', 'yes', 'From'],
  ]);
});

test('A.2.3: an outbound subscribed is routed only as the answer to a pending request', () => {
  table('outbound', 'subscribed', [
    ['None', 'no', SAME],
    ['None + Pending Out', 'no', SAME],
    ['None + Pending In', 'yes', 'From'],
    ['None + Pending Out/In', 'yes', 'From + Pending Out'],
    ['To', 'no', SAME],
    ['To + Pending In', 'yes', 'Both'],
    ['From', 'no', SAME],
    ['From + Pending Out', 'no', SAME],
    ['Both', 'no', SAME],
  ]);
});

test('A.2.4: an outbound unsubscribed ends or declines the contact’s subscription; Parley routes it in every state', () => {
  table(
    'outbound',
    'unsubscribed',
    [
      ['None', 'no', SAME],
      ['None + Pending Out', 'no', SAME],
      ['None + Pending In', 'yes', 'None'],
      ['None + Pending Out/In', 'yes', 'None + Pending Out'],
      ['To', 'no', SAME],
      ['To + Pending In', 'yes', 'To'],
      ['From', 'yes', 'None'],
      ['From + Pending Out', 'yes', 'None + Pending Out'],
      ['Both', 'yes', 'To'],
    ],
    // A contact's server out of step with the user's gets back in step (subscription.ts).
    { None: 'yes', 'None + Pending Out': 'yes', To: 'yes' },
  );
});

test('A.3.1: an inbound subscribe is delivered unless already pending or approved; an approved one is answered by the server', () => {
  table('inbound', 'subscribe', [
    ['None', 'yes', 'None + Pending In'],
    ['None + Pending Out', 'yes', 'None + Pending Out/In'],
    ['None + Pending In', 'no', SAME],
    ['None + Pending Out/In', 'no', SAME],
    ['To', 'yes', 'To + Pending In'],
    ['To + Pending In', 'no', SAME],
    ['From', 'no', SAME],
    ['From + Pending Out', 'no', SAME],
    ['Both', 'no', SAME],
  ]);
  for (const name of ['From', 'From + Pending Out', 'Both'] as const) {
    const t = subscriptionTransition(item(name), 'inbound', 'subscribe');
    assert.deepEqual(t.effects, ['reply-subscribed'], `"${name}": the server replies subscribed for the user`);
    assert.equal(t.write, false);
  }
  for (const name of ['None', 'None + Pending Out', 'To'] as const) {
    assert.deepEqual(subscriptionTransition(item(name), 'inbound', 'subscribe').effects, ['store-request'], `"${name}": the request is kept for the user`);
  }
});

test('A.3.2: an inbound unsubscribe is delivered when the contact was subscribed or pending in', () => {
  table('inbound', 'unsubscribe', [
    ['None', 'no', SAME],
    ['None + Pending Out', 'no', SAME],
    ['None + Pending In', 'yes', 'None'],
    ['None + Pending Out/In', 'yes', 'None + Pending Out'],
    ['To', 'no', SAME],
    ['To + Pending In', 'yes', 'To'],
    ['From', 'yes', 'None'],
    ['From + Pending Out', 'yes', 'None + Pending Out'],
    ['Both', 'yes', 'To'],
  ]);
});

test('A.3.3: an inbound subscribed is delivered only as the answer to the user’s pending request', () => {
  table('inbound', 'subscribed', [
    ['None', 'no', SAME],
    ['None + Pending Out', 'yes', 'To'],
    ['None + Pending In', 'no', SAME],
    ['None + Pending Out/In', 'yes', 'To + Pending In'],
    ['To', 'no', SAME],
    ['To + Pending In', 'no', SAME],
    ['From', 'no', SAME],
    ['From + Pending Out', 'yes', 'Both'],
    ['Both', 'no', SAME],
  ]);
});

test('A.3.4: an inbound unsubscribed is delivered when the user was subscribed or pending out', () => {
  table('inbound', 'unsubscribed', [
    ['None', 'no', SAME],
    ['None + Pending Out', 'yes', 'None'],
    ['None + Pending In', 'no', SAME],
    ['None + Pending Out/In', 'yes', 'None + Pending In'],
    ['To', 'yes', 'None'],
    ['To + Pending In', 'yes', 'None + Pending In'],
    ['From', 'no', SAME],
    ['From + Pending Out', 'yes', 'From'],
    ['Both', 'yes', 'From'],
  ]);
});

test('what is ignored leaves the store alone; what changes a state is written', () => {
  for (const direction of ['outbound', 'inbound'] as const) {
    for (const type of ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'] as const) {
      for (const name of NAMES) {
        const before = item(name);
        const t = subscriptionTransition(before, direction, type);
        if (t.next !== null && nameOf(t.next) !== name) assert.equal(t.write, true, `${direction} ${type} in "${name}" is stored`);
        if (!t.write) assert.equal(t.next, before, `${direction} ${type} in "${name}": untouched means the same item`);
      }
    }
  }
});

test('presence follows the subscription: approving sends the user’s, ending "from" sends unavailable, an approval received brings the contact’s', () => {
  const fx = (name: StateName, direction: SubscriptionDirection, type: SubscriptionType) => subscriptionTransition(item(name), direction, type).effects;
  // §3.1.5: the user approves: routed, then the user's presence to the contact.
  assert.deepEqual(fx('None + Pending In', 'outbound', 'subscribed'), ['route', 'presence-to-contact']);
  assert.deepEqual(fx('To + Pending In', 'outbound', 'subscribed'), ['route', 'presence-to-contact']);
  // §3.2.1: the user cancels the contact's subscription: the contact sees the user go offline.
  assert.deepEqual(fx('From', 'outbound', 'unsubscribed'), ['route', 'unavailable-to-contact']);
  assert.deepEqual(fx('Both', 'outbound', 'unsubscribed'), ['route', 'unavailable-to-contact']);
  assert.deepEqual(fx('None + Pending In', 'outbound', 'unsubscribed'), ['route'], 'declining a request: nothing was shown');
  // §3.3.3: the contact unsubscribes from the user: unavailable from the user's resources.
  assert.deepEqual(fx('From', 'inbound', 'unsubscribe'), ['deliver', 'unavailable-to-contact']);
  assert.deepEqual(fx('None + Pending In', 'inbound', 'unsubscribe'), ['deliver']);
  // §3.1.6: the contact approved: the user gets the contact's current presence.
  assert.deepEqual(fx('None + Pending Out', 'inbound', 'subscribed'), ['deliver', 'contact-presence']);
  // §3.2.3: the contact cancelled the user's subscription: its resources go offline for the user.
  assert.deepEqual(fx('To', 'inbound', 'unsubscribed'), ['deliver', 'contact-unavailable']);
  assert.deepEqual(fx('None + Pending Out', 'inbound', 'unsubscribed'), ['deliver'], 'a declined request: nothing was shown');
});

test('§3.4: a subscribed sent before any request is a pre-approval, kept and not routed', () => {
  for (const name of ['None', 'None + Pending Out', 'To'] as const) {
    const t = subscriptionTransition(item(name), 'outbound', 'subscribed');
    assert.deepEqual(t.effects, [], `"${name}": not routed`);
    assert.equal(t.write, true);
    assert.equal(t.next?.approved, true, `"${name}": pre-approved`);
    assert.equal(nameOf(t.next!), name);
  }
  assert.equal(subscriptionTransition(item('From'), 'outbound', 'subscribed').next?.approved, false, 'already subscribed: nothing to pre-approve');
});

test('§3.4: a pre-approved request is approved by the server, without the user, and the pre-approval is used up', () => {
  const cases: Array<[StateName, StateName]> = [
    ['None', 'From'],
    ['None + Pending Out', 'From + Pending Out'],
    ['To', 'Both'],
  ];
  for (const [name, after] of cases) {
    const t = subscriptionTransition(item(name, { approved: true }), 'inbound', 'subscribe');
    assert.deepEqual(t.effects, ['reply-subscribed', 'presence-to-contact'], `"${name}" pre-approved: answered, not delivered`);
    assert.equal(nameOf(t.next!), after);
    assert.equal(t.next?.approved, false);
  }
});

test('§3.4: an outbound unsubscribed cancels a pre-approval', () => {
  const t = subscriptionTransition(item('None', { approved: true }), 'outbound', 'unsubscribed');
  assert.equal(t.write, true);
  assert.equal(t.next?.approved, false);
});

test('without an item: a request or a pre-approval makes one; a cancellation is routed or ignored', () => {
  const make = (direction: SubscriptionDirection, type: SubscriptionType) => subscriptionTransition(null, direction, type);
  let t = make('outbound', 'subscribe');
  assert.deepEqual([t.next && nameOf(t.next), t.next?.inRoster, t.effects], ['None + Pending Out', true, ['route']]);
  t = make('outbound', 'subscribed');
  assert.deepEqual([t.next && nameOf(t.next), t.next?.approved, t.next?.inRoster, t.effects], ['None', true, true, []]);
  t = make('outbound', 'unsubscribe');
  assert.deepEqual([t.next, t.effects], [null, ['route']]);
  t = make('outbound', 'unsubscribed');
  assert.deepEqual([t.next, t.write, t.effects], [null, false, ['route']]);
  // A stranger's request is kept as a hidden item: not in the roster.
  t = make('inbound', 'subscribe');
  assert.deepEqual([t.next && nameOf(t.next), t.next?.inRoster, t.effects], ['None + Pending In', false, ['store-request']]);
  for (const type of ['subscribed', 'unsubscribe', 'unsubscribed'] as const) {
    t = make('inbound', type);
    assert.deepEqual([t.next, t.write, t.effects], [null, false, []], `inbound ${type} without an item is ignored`);
  }
});

test('a stranger’s request that is declined or withdrawn leaves no item behind', () => {
  const hidden = item('None + Pending In', { inRoster: false });
  assert.deepEqual(subscriptionTransition(hidden, 'outbound', 'unsubscribed').next, null, 'declined by the user');
  assert.deepEqual(subscriptionTransition(hidden, 'inbound', 'unsubscribe').next, null, 'withdrawn by the contact');
  const approved = subscriptionTransition(hidden, 'outbound', 'subscribed').next;
  assert.equal(approved?.inRoster, true, 'an approved one joins the roster');
});

test('an outbound subscribe or unsubscribe does the same whatever the state, so the state is not read for it', () => {
  for (const type of ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'] as const) {
    for (const direction of ['outbound', 'inbound'] as const) {
      const outcomes = new Set([null, ...NAMES.map((n) => item(n))].map((s) => JSON.stringify(((t) => [t.write, t.effects])(subscriptionTransition(s, direction, type)))));
      if (!dependsOnState(direction, type)) assert.equal(outcomes.size, 1, `${direction} ${type}`);
      else assert.ok(outcomes.size > 1, `${direction} ${type} depends on the state`);
    }
  }
});
