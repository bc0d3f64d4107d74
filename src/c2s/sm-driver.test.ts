import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x, type XmlElement } from '../xml/element.js';
import { NS } from '../xmpp/ns.js';
import type { StreamError } from '../xmpp/errors.js';
import type { Logger } from '../support/logger.js';
import { until } from '../../test/helpers/until.js';
import type { C2sCore } from './c2s-endpoint.js';
import { SmDriver, type SmHost } from './sm-driver.js';
import type { C2sTransport, OutboundKind } from './transport.js';

interface Fake {
  sm: SmDriver;
  /** What went to the connection. */
  wire: string[];
  /** Elements the driver sent through the session. */
  sent: XmlElement[];
  /** How the session was ended: close, fail or suspend, with the condition. */
  ended: string[];
  active: boolean;
}

function driver(enable: Record<string, string> = { resume: 'true' }, cfg: Partial<{ ackAfter: number; ackTimeout: number; maxQueue: number; resumeTimeout: number }> = {}): Fake {
  const wire: string[] = [];
  const connection = { send: (xml: string, _kind: OutboundKind) => wire.push(xml) } as unknown as C2sTransport;
  const core = { config: { streamManagement: { ackAfter: 5, ackTimeout: 60_000, maxQueue: 100, resumeTimeout: 300_000, ...cfg } } } as unknown as C2sCore;
  const fake = { wire, sent: [] as XmlElement[], ended: [] as string[], active: true } as Fake;
  const end = (how: string) => (e: StreamError) => fake.ended.push(`${how} ${e.condition}`);
  const host: SmHost = {
    connection: () => connection,
    isActive: () => fake.active,
    send: (el) => fake.sent.push(el),
    close: end('close'),
    fail: end('fail'),
    suspend: end('suspend'),
  };
  fake.sm = new SmDriver(core, host, { error: () => undefined } as unknown as Logger, x('enable', { xmlns: NS.SM, ...enable }));
  return fake;
}

const message = (n: number) => x('message', { id: String(n) }, x('body', null, String(n)));
const push = (sm: SmDriver, n: number) => {
  const m = message(n);
  sm.push(m.toString(), 'message', m);
  return m;
};

test('<enabled/> offers resumption with the shorter of the client’s max and the server’s time', () => {
  const { sm } = driver({ resume: 'true', max: '60' });
  const el = sm.enabled();
  assert.equal(el.attrs.resume, 'true');
  assert.equal(el.attrs.max, '60');
  assert.ok(sm.isResumable && el.attrs.id === sm.id);
  const plain = driver({}).sm;
  assert.equal(plain.id, null);
  assert.equal(plain.enabled().attrs.id, undefined);
});

test('a message is written, queued and followed by one ack request; <a/> empties the queue', () => {
  const f = driver();
  push(f.sm, 1);
  push(f.sm, 2);
  assert.equal(f.wire.filter((w) => w.startsWith('<r ')).length, 1, 'one request per round trip');
  assert.equal(f.sm.queue.length, 2);
  f.sm.command(x('a', { xmlns: NS.SM, h: '2' }));
  assert.equal(f.sm.queue.length, 0);
  f.sm.stop();
});

test('<r/> is answered with the count of stanzas received', () => {
  const f = driver();
  f.sm.countInbound();
  f.sm.countInbound();
  f.sm.command(x('r', { xmlns: NS.SM }));
  assert.equal(f.wire.at(-1), `<a xmlns='${NS.SM}' h='2'/>`);
});

test('an h beyond what was sent fails the session with handled-count-too-high; a malformed h closes it', () => {
  const f = driver();
  push(f.sm, 1);
  f.sm.command(x('a', { xmlns: NS.SM, h: '3' }));
  f.sm.command(x('a', { xmlns: NS.SM, h: 'x' }));
  assert.deepEqual(f.ended, ['fail undefined-condition', 'close bad-format']);
  assert.ok(f.sm.refusal(3) !== null && f.sm.refusal(1) === null);
  f.sm.stop();
});

test('enable and resume once enabled are unexpected; another element ends the stream', () => {
  const f = driver();
  f.sm.command(x('enable', { xmlns: NS.SM }));
  f.sm.command(x('resume', { xmlns: NS.SM }));
  assert.deepEqual(
    f.sent.map((el) => el.getChild('unexpected-request', NS.STANZAS) !== null),
    [true, true],
  );
  f.sm.command(x('bogus', { xmlns: NS.SM }));
  assert.deepEqual(f.ended, ['close unsupported-stanza-type']);
});

test('the queue is bounded: past maxQueue the session fails with resource-constraint', () => {
  const f = driver({}, { maxQueue: 2, ackAfter: 100 });
  for (let i = 1; i <= 3; i++) push(f.sm, i);
  assert.deepEqual(f.ended, ['fail resource-constraint']);
  f.sm.stop();
});

test('while hibernated stanzas are queued and not written; resuming replays what is unacknowledged', () => {
  const f = driver();
  push(f.sm, 1);
  f.active = false;
  f.sm.awaitResumption(() => assert.fail('not expired'));
  push(f.sm, 2);
  push(f.sm, 3);
  assert.equal(f.wire.filter((w) => w.startsWith('<message')).length, 1);
  const replay: string[] = [];
  const next = { send: (xml: string) => replay.push(xml) } as unknown as C2sTransport;
  f.active = true;
  f.sm.resumedOn(next, 1);
  assert.match(replay[0]!, /^<resumed /);
  assert.deepEqual(
    replay.slice(1).map((xml) => /id=.(\d)/.exec(xml)![1]),
    ['2', '3'],
  );
  f.sm.stop();
});

test('a resumable session whose client does not answer <r/> is suspended; another one is closed', async () => {
  const resumable = driver({ resume: 'true' }, { ackTimeout: 10 });
  push(resumable.sm, 1);
  await until('the ack timeout', () => resumable.ended.length > 0);
  assert.deepEqual(resumable.ended, ['suspend connection-timeout']);
  const plain = driver({}, { ackTimeout: 10 });
  push(plain.sm, 1);
  await until('the ack timeout', () => plain.ended.length > 0);
  assert.deepEqual(plain.ended, ['close connection-timeout']);
});

test('saying goodbye gives the inbound count, and asks for an answer only when something is unacknowledged', () => {
  const f = driver();
  assert.equal(f.sm.sayGoodbye(), false);
  push(f.sm, 1);
  f.wire.length = 0;
  assert.equal(f.sm.sayGoodbye(), true);
  assert.deepEqual(f.wire, [`<r xmlns='${NS.SM}'/>`, `<a xmlns='${NS.SM}' h='0'/>`]);
  f.sm.lateAck(x('a', { xmlns: NS.SM, h: '1' }));
  assert.equal(f.sm.queue.length, 0);
  f.sm.stop();
});

test('unacknowledged messages come back oldest first, and messages still queued are not handed back twice', () => {
  const f = driver();
  const m1 = push(f.sm, 1);
  const m2 = push(f.sm, 2);
  const other = message(9);
  assert.deepEqual(f.sm.unackedMessages(), [m1, m2]);
  assert.deepEqual(f.sm.notQueued([m2, other]), [other]);
  f.sm.stop();
});
