import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x } from '../xml/element.js';
import { SmRegistry, UnackedQueue, grantedResumeMs, handledCountTooHigh, parseH, type Outbound } from './stream-management.js';
import { PresenceBuffer } from './presence-buffer.js';

const msg = (n: number): Outbound => ({ xml: `<message id='${n}'/>`, kind: 'message', el: x('message', { id: String(n) }) });

test('acknowledging drops exactly the handled stanzas, oldest first', () => {
  const q = new UnackedQueue();
  for (let i = 1; i <= 5; i++) q.push(msg(i));
  assert.equal(q.sent, 5);
  assert.equal(q.ack(2), 'ok');
  assert.deepEqual(
    q.items().map((o) => o.el!.attrs.id),
    ['3', '4', '5'],
  );
  assert.equal(q.ack(2), 'ok', 'the same h again changes nothing');
  assert.equal(q.length, 3);
  assert.equal(q.ack(5), 'ok');
  assert.equal(q.length, 0);
});

test('an h beyond what was sent is too high and leaves the queue alone', () => {
  const q = new UnackedQueue();
  q.push(msg(1));
  assert.equal(q.canAck(2), false);
  assert.equal(q.ack(2), 'too-high');
  assert.equal(q.length, 1);
  assert.equal(q.canAck(1), true);
});

test('an h from before the last acknowledgement is ignored', () => {
  const q = new UnackedQueue();
  for (let i = 1; i <= 4; i++) q.push(msg(i));
  q.ack(3);
  assert.equal(q.ack(1), 'ok');
  assert.equal(q.length, 1);
});

test('counters wrap at 2^32', () => {
  const q = new UnackedQueue();
  q.sent = 0xfffffffe;
  q.acked = 0xfffffffe;
  q.push(msg(1));
  q.push(msg(2));
  q.push(msg(3));
  assert.equal(q.sent, 1);
  assert.equal(q.ack(0), 'ok');
  assert.deepEqual(
    q.items().map((o) => o.el!.attrs.id),
    ['3'],
  );
  assert.equal(q.ack(2), 'too-high');
  assert.equal(q.ack(1), 'ok');
  assert.equal(q.length, 0);
});

test('a long queue acknowledged bit by bit keeps its order and compacts', () => {
  const q = new UnackedQueue();
  for (let i = 1; i <= 500; i++) q.push(msg(i));
  for (let h = 7; h <= 490; h += 7) assert.equal(q.ack(h), 'ok');
  assert.deepEqual(
    q.items().map((o) => Number(o.el!.attrs.id)),
    Array.from({ length: 10 }, (_, i) => 491 + i),
  );
  assert.ok(q.has(q.items()[0]!.el!));
  assert.ok(!q.has(msg(1).el!));
});

test('h attributes are unsigned 32-bit integers', () => {
  assert.equal(parseH('0'), 0);
  assert.equal(parseH('4294967295'), 4294967295);
  for (const bad of [undefined, '', '-1', '1.5', '4294967296', 'ten', ' 1', '99999999999']) assert.equal(parseH(bad), null, String(bad));
});

test("the client's max is granted only when shorter than the server's resumption time", () => {
  assert.equal(grantedResumeMs(undefined, 300_000), 300_000);
  assert.equal(grantedResumeMs('60', 300_000), 60_000);
  assert.equal(grantedResumeMs('600', 300_000), 300_000);
  assert.equal(grantedResumeMs('0', 300_000), 300_000);
  assert.equal(grantedResumeMs('x', 300_000), 300_000);
});

test('handled-count-too-high is an undefined-condition stream error with h and send-count', () => {
  const el = handledCountTooHigh(7, 3).toElement();
  assert.ok(el.getChild('undefined-condition', 'urn:ietf:params:xml:ns:xmpp-streams'));
  const detail = el.getChild('handled-count-too-high', 'urn:xmpp:sm:3');
  assert.equal(detail?.attrs.h, '7');
  assert.equal(detail?.attrs['send-count'], '3');
});

test('an ended session is remembered with its h for its owner only, within a bound', () => {
  const r = new SmRegistry<string>();
  r.register('id1', 's1');
  assert.equal(r.get('id1'), 's1');
  r.retire('id1', 'alice', 42);
  assert.equal(r.get('id1'), undefined);
  assert.equal(r.staleH('id1', 'alice'), 42);
  assert.equal(r.staleH('id1', 'mallory'), undefined);
  for (let i = 0; i < 10_001; i++) r.retire(`x${i}`, 'bob', i);
  assert.equal(r.staleH('id1', 'alice'), undefined, 'the oldest is forgotten first');
});

test('held presence keeps the latest per sender resource, in the order of the latest updates', () => {
  const b = new PresenceBuffer();
  const p = (from: string, show?: string, type?: string) => {
    const el = x('presence', { from, type }, show ? x('show', null, show) : null);
    return { xml: el.toString(), el };
  };
  for (const [from, show, type] of [
    ['a@x/1', 'away'],
    ['b@x/1', 'dnd'],
    ['a@x/1', 'xa'],
    ['a@x/2', 'chat'],
    ['b@x/1', undefined, 'unavailable'],
  ] as const) {
    const { xml, el } = p(from, show, type);
    assert.ok(PresenceBuffer.holds(el));
    b.add(xml, el);
  }
  assert.equal(b.size, 3);
  assert.deepEqual(
    b.take().map((h) => `${h.el.attrs.from} ${h.el.attrs.type ?? h.el.getChildText('show')}`),
    ['a@x/1 xa', 'a@x/2 chat', 'b@x/1 unavailable'],
  );
  assert.equal(b.size, 0);
  assert.equal(PresenceBuffer.holds(x('presence', { from: 'a@x/1', type: 'subscribe' })), false, 'subscription requests are never held');
  assert.equal(PresenceBuffer.holds(x('presence', {})), false, 'no sender, no key');
  assert.equal(PresenceBuffer.holds(undefined), false);
});
