/**
 * The BOSH request machinery, unit-tested directly, and a model-based test: a simulated
 * client makes requests with random interleavings, delays, reorderings, lost requests,
 * lost responses and retransmissions; the stanzas each side receives must be exactly, and
 * in order, those the other side sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x, type XmlElement } from '../../xml/element.js';
import type { StreamError } from '../../xmpp/errors.js';
import type { C2sStreamEvents } from '../../c2s/transport.js';
import { BoshSession, type BoshRequest, type BoshSettings } from './bosh-session.js';
import { BoshStats } from './bosh-stats.js';

function settings(over: Partial<BoshSettings> = {}): BoshSettings {
  return {
    domain: 'example.test',
    isSecure: false,
    maxWaitMs: 3_600_000,
    minWaitMs: 1000,
    maxHold: 2,
    inactivityMs: 60_000,
    maxPauseMs: 120_000,
    pollingMs: 0,
    presenceDelayMs: 0,
    hibernateAfterMs: 3_600_000,
    maxQueue: 100_000,
    stats: new BoshStats(),
    now: Date.now,
    ...over,
  };
}

/** The c2s side: records what it receives. */
class FakeC2s implements C2sStreamEvents {
  opened = 0;
  stanzas: XmlElement[] = [];
  closedByClient = false;
  errors: StreamError[] = [];
  disconnected = false;
  onStreamOpen(): void {
    this.opened++;
  }
  onStanza(el: XmlElement): void {
    this.stanzas.push(el);
  }
  onStreamClose(): void {
    this.closedByClient = true;
  }
  onStreamError(e: StreamError): void {
    this.errors.push(e);
  }
  onDisconnect(): void {
    this.disconnected = true;
  }
}

interface FakeRequest extends BoshRequest {
  replies: string[];
  discarded: boolean;
  abort(): void;
}

function request(rid: number, attrs: Record<string, string> = {}, payload: XmlElement[] = []): FakeRequest {
  const r: FakeRequest = {
    rid,
    attrs: { rid: String(rid), ...attrs },
    payload,
    onAbort: null,
    replies: [],
    discarded: false,
    reply(body) {
      r.replies.push(body);
    },
    isOpen: () => r.replies.length === 0 && !r.discarded,
    discard() {
      r.discarded = true;
    },
    abort() {
      r.onAbort?.();
    },
  };
  return r;
}

const tick = () => new Promise((r) => setImmediate(r));

async function newSession(over: Partial<BoshSettings> = {}, createAttrs: Record<string, string> = {}) {
  const s = settings(over);
  const c2s = new FakeC2s();
  let ended: string | null = null;
  const create = request(100, { to: 'example.test', hold: '1', wait: '60', ver: '1.11', 'xmpp:version': '1.0', ...createAttrs });
  const session = new BoshSession('sid1', create, '127.0.0.1', s, (_s, why) => (ended = why));
  session.start(c2s, create);
  // The c2s session answers the stream open with features.
  session.open({ id: 'stream1', from: 'example.test', version: '1.0', lang: 'en' }, x('stream:features'));
  await tick();
  return { session, c2s, create, settings: s, ended: () => ended };
}

test('the creation response carries the session attributes and the stream features', async () => {
  const { create } = await newSession();
  assert.equal(create.replies.length, 1);
  const body = create.replies[0]!;
  for (const attr of ["sid='sid1'", "wait='60'", "requests='2'", "hold='1'", "ver='1.11'", "from='example.test'", "authid='stream1'", "xmpp:version='1.0'"]) {
    assert.ok(body.includes(attr), `${attr} in ${body}`);
  }
  assert.match(body, /<stream:features\/>/);
});

test('the version answered is the lower of the client and server versions', async () => {
  const { create } = await newSession({}, { ver: '1.6' });
  assert.match(create.replies[0]!, /ver='1\.6'/);
});

test('a request is held, and answered at once when data arrives', async () => {
  const { session } = await newSession();
  const r = request(101);
  session.handle(r);
  await tick();
  assert.equal(r.replies.length, 0, 'held');
  session.send("<message id='m1'/>", 'message', x('message', { id: 'm1' }));
  await tick();
  assert.equal(r.replies.length, 1);
  assert.match(r.replies[0]!, /<message xmlns='jabber:client' id='m1'\/>/);
});

test('with hold=1 a new request answers the held one, empty when nothing is pending', async () => {
  const { session } = await newSession();
  const a = request(101);
  const b = request(102);
  session.handle(a);
  session.handle(b);
  await tick();
  assert.equal(a.replies[0], "<body xmlns='http://jabber.org/protocol/httpbind'/>");
  assert.equal(b.replies.length, 0);
});

test('payloads reach the c2s session in rid order even when requests arrive out of order', async () => {
  const { session, c2s, settings: s } = await newSession({}, { hold: '2' });
  const r103 = request(103, {}, [x('message', { id: 'c3' })]);
  const r102 = request(102, {}, [x('message', { id: 'c2' })]);
  const r101 = request(101, {}, [x('message', { id: 'c1' })]);
  session.handle(r103);
  session.handle(r102);
  assert.equal(c2s.stanzas.length, 0, 'nothing forwarded before 101');
  session.handle(r101);
  assert.deepEqual(
    c2s.stanzas.map((e) => e.attrs.id),
    ['c1', 'c2', 'c3'],
  );
  assert.equal(s.stats.outOfOrder, 2);
});

test('a repeated rid gets the very same response again', async () => {
  const { session, settings: s } = await newSession();
  const a = request(101);
  session.handle(a);
  session.send("<message id='m1'/>", 'message', x('message', { id: 'm1' }));
  await tick();
  const again = request(101);
  session.handle(again);
  assert.equal(again.replies[0], a.replies[0]);
  assert.equal(s.stats.retransmissions, 1);
});

test('a rid outside the window ends the session with item-not-found', async () => {
  const { session, c2s, ended } = await newSession();
  const far = request(110);
  session.handle(far);
  assert.match(far.replies[0]!, /type='terminate' condition='item-not-found'/);
  assert.equal(ended(), 'item-not-found');
  assert.ok(c2s.disconnected);
});

test('a rid too old for the buffer ends the session with item-not-found', async () => {
  const { session } = await newSession();
  for (let rid = 101; rid <= 110; rid++) {
    session.handle(request(rid));
    await tick();
  }
  const old = request(101);
  session.handle(old);
  assert.match(old.replies[0]!, /condition='item-not-found'/);
});

test('more simultaneous requests than allowed end the session with policy-violation', async () => {
  const { session, ended } = await newSession({ maxHold: 1 }, { hold: '1' });
  // hold 1 → requests 2: a third new request before any answer is one too many.
  const reqs = [request(103)];
  for (const r of reqs) session.handle(r);
  assert.equal(ended(), 'policy-violation');
  assert.ok(reqs.some((r) => r.replies.some((b) => b.includes("condition='policy-violation'"))));
});

test('with acknowledgements the server reports a missed response, which the client fetches again', async () => {
  const { session, create, settings: s } = await newSession({}, { ack: '1' });
  assert.match(create.replies[0]!, /ack='100'/);
  const r101 = request(101, { ack: '100' });
  session.handle(r101);
  session.send("<message id='lost'/>", 'message', x('message', { id: 'lost' }));
  await tick();
  assert.match(r101.replies[0]!, /id='lost'/);
  // The client never saw that response: its next request still acknowledges 100.
  const r102 = request(102, { ack: '100' });
  session.handle(r102);
  await tick();
  const report = r102.replies[0]!;
  assert.match(report, /report='101'/);
  assert.match(report, /time='\d+'/);
  assert.equal(s.stats.reports, 1);
  const again = request(101, { ack: '100' });
  session.handle(again);
  assert.equal(again.replies[0], r101.replies[0]);
});

test('a pause answers every held request at once, without payloads', async () => {
  const { session, settings: s } = await newSession({}, { hold: '2' });
  const a = request(101);
  session.handle(a);
  session.send("<presence/>", 'presence', x('presence', { from: 'x@example.test/r' }));
  const p = request(102, { pause: '60' });
  session.handle(p);
  await tick();
  assert.equal(p.replies.length, 1);
  assert.doesNotMatch(p.replies[0]!, /presence/);
  assert.ok(session.isPaused);
  assert.equal(s.stats.pauses, 1);
  // The next page resumes with the next rid and gets what waited.
  const resume = request(103);
  session.handle(resume);
  await tick();
  assert.match(resume.replies[0]! + (a.replies[0] ?? ''), /presence/);
  assert.ok(!session.isPaused);
});

test('a terminate request hands its payloads over and ends the stream', async () => {
  const { session, c2s } = await newSession();
  const t = request(101, { type: 'terminate' }, [x('presence', { type: 'unavailable' })]);
  session.handle(t);
  assert.equal(c2s.stanzas[0]?.attrs.type, 'unavailable');
  assert.ok(c2s.closedByClient);
  session.close();
  assert.match(t.replies[0]!, /type='terminate'/);
});

test('presence waits a little to go out with other presence; a message does not wait', async () => {
  const { session, settings: s } = await newSession({ presenceDelayMs: 100 });
  const r = request(101);
  session.handle(r);
  session.send("<presence from='a@example.test/1'/>", 'presence', x('presence', { from: 'a@example.test/1' }));
  session.send("<presence from='b@example.test/1'/>", 'presence', x('presence', { from: 'b@example.test/1' }));
  await tick();
  assert.equal(r.replies.length, 0, 'presence waits');
  await new Promise((res) => setTimeout(res, 150));
  assert.equal(r.replies.length, 1);
  assert.equal((r.replies[0]!.match(/<presence/g) ?? []).length, 2, 'both in one response');
  assert.equal(s.stats.groupedPresences, 2);
  const r2 = request(102);
  session.handle(r2);
  session.send("<presence from='c@example.test/1'/>", 'presence', x('presence', { from: 'c@example.test/1' }));
  session.send("<message id='now'/>", 'message', x('message', { id: 'now' }));
  await tick();
  assert.equal(r2.replies.length, 1, 'a message takes the waiting presence along at once');
});

test('a newer presence from the same sender replaces one still queued', async () => {
  const { session } = await newSession();
  session.send("<presence from='a@example.test/1'><show>away</show></presence>", 'presence', x('presence', { from: 'a@example.test/1' }));
  session.send("<presence from='a@example.test/1'><show>dnd</show></presence>", 'presence', x('presence', { from: 'a@example.test/1' }));
  const r = request(101);
  session.handle(r);
  await tick();
  assert.doesNotMatch(r.replies[0]!, /away/);
  assert.match(r.replies[0]!, /dnd/);
});

test('requests cut before the wait teach the session a shorter wait', async () => {
  const { session, settings: s } = await newSession({ minWaitMs: 10 });
  assert.equal(session.effectiveWaitMs, 60_000);
  const r = request(101);
  session.handle(r);
  await new Promise((res) => setTimeout(res, 50));
  r.abort();
  assert.equal(s.stats.cutRequests, 1);
  assert.ok(session.effectiveWaitMs < 60_000 && session.effectiveWaitMs >= 10, `wait ${session.effectiveWaitMs}`);
  assert.ok(session.isAdapted);
});

test('an ended session hands back queued messages and those of responses not known received', async () => {
  const { session } = await newSession();
  const r101 = request(101);
  session.handle(r101);
  const sent = x('message', { id: 'in-flight' });
  session.send("<message id='in-flight'/>", 'message', sent);
  await tick();
  const queued = x('message', { id: 'queued' });
  session.send("<message id='queued'/>", 'message', queued);
  session.close();
  const back = session.takeUndelivered().map((e) => e.attrs.id);
  assert.deepEqual(back.sort(), ['in-flight', 'queued']);
});

test('inactivity ends a session with no request held', async () => {
  const { session, ended, c2s } = await newSession({ inactivityMs: 10 });
  const r = request(101);
  session.handle(r);
  const r2 = request(102);
  session.handle(r2); // answers 101
  // Answer 102 by sending data, leaving nothing held.
  session.send("<message id='x'/>", 'message', x('message', { id: 'x' }));
  await tick();
  session.tick(Date.now() + 1000);
  assert.equal(ended(), 'inactivity');
  assert.ok(c2s.disconnected);
});

test('a request waiting for a predecessor that never comes does not keep the session alive', async () => {
  const { session, ended, c2s } = await newSession({ inactivityMs: 10 });
  const early = request(102); // 101 never comes
  session.handle(early);
  assert.equal(early.replies.length, 0);
  session.tick(Date.now() + 1000);
  assert.equal(ended(), 'inactivity');
  assert.equal(early.replies.length, 1);
  assert.match(early.replies[0]!, /type='terminate'/);
  assert.ok(c2s.disconnected);
});

// ---------------------------------------------------------------- model-based test

/** A small seeded PRNG (mulberry32), so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function runScenario(seed: number): Promise<void> {
  const rand = rng(seed);
  const hold = 1 + Math.floor(rand() * 2);
  const useAck = rand() < 0.5;
  const { session, c2s } = await newSession({}, { hold: String(hold), ...(useAck ? { ack: '1' } : {}) });
  const requests = hold + 1;
  const CLIENT_STANZAS = 40;
  const SERVER_STANZAS = 40;

  let nextClient = 0;
  let nextServer = 0;
  let nextRid = 101;
  /** Requests without a response the client has seen, by rid (a retransmission repeats the body). */
  const outstanding = new Map<number, { attrs: Record<string, string>; payload: XmlElement[] }>();
  /** Requests on the wire, delivered to the server in any order (or lost). */
  const inFlight: FakeRequest[] = [];
  /** Request objects whose reply has not been collected yet. */
  const waiting = new Set<FakeRequest>();
  /** Replies the server made for a rid, not yet seen by the client. */
  const replies = new Map<number, string>();
  /** Responses the client has, waiting to be processed in rid order. */
  const arrived = new Map<number, string>();
  let processedUpTo = 100;
  const received: string[] = [];

  const send = (rid: number) => {
    const spec = outstanding.get(rid)!;
    const req = request(rid, spec.attrs, spec.payload);
    waiting.add(req);
    inFlight.push(req);
  };
  const newRequest = (payload: XmlElement[]) => {
    const attrs: Record<string, string> = {};
    if (useAck) attrs.ack = String(processedUpTo);
    outstanding.set(nextRid, { attrs, payload });
    send(nextRid++);
  };
  const collect = () => {
    for (const r of waiting) {
      if (r.discarded) waiting.delete(r);
      else if (r.replies.length > 0) {
        waiting.delete(r);
        if (outstanding.has(r.rid)) replies.set(r.rid, r.replies[0]!);
      }
    }
  };

  for (let step = 0; step < 5000; step++) {
    if (received.length === SERVER_STANZAS && c2s.stanzas.length === CLIENT_STANZAS && nextServer === SERVER_STANZAS) break;
    const roll = rand();
    // A client has at most `requests` requests whose responses it has not processed.
    if (roll < 0.25 && nextRid - 1 - processedUpTo < requests) {
      newRequest(nextClient < CLIENT_STANZAS && rand() < 0.7 ? [x('message', { xmlns: 'jabber:client', id: `c${nextClient++}` })] : []);
    } else if (roll < 0.55 && inFlight.length > 0) {
      // A request reaches the server: any of those on the wire.
      const [req] = inFlight.splice(Math.floor(rand() * inFlight.length), 1);
      session.handle(req!);
      if (rand() < 0.1) req!.abort(); // and its connection is cut at once
    } else if (roll < 0.62 && inFlight.length > 0) {
      inFlight.splice(Math.floor(rand() * inFlight.length), 1); // lost on the way
    } else if (roll < 0.75 && nextServer < SERVER_STANZAS) {
      const id = `s${nextServer++}`;
      session.send(`<message id='${id}'/>`, 'message', x('message', { id }));
    } else {
      // The client: responses come in (some are lost), missing ones are asked for again.
      for (const rid of [...outstanding.keys()]) {
        if (inFlight.some((r) => r.rid === rid)) continue;
        const reply = replies.get(rid);
        if (reply !== undefined && rand() < 0.8) {
          arrived.set(rid, reply);
          outstanding.delete(rid);
          replies.delete(rid);
        } else if (rand() < 0.4) {
          replies.delete(rid);
          send(rid); // retransmission: same rid, same body
        }
      }
      while (arrived.has(processedUpTo + 1)) {
        const body = arrived.get(processedUpTo + 1)!;
        arrived.delete(processedUpTo + 1);
        processedUpTo++;
        assert.doesNotMatch(body, /type='terminate'/, `seed ${seed}: the session was terminated: ${body}`);
        for (const m of body.matchAll(/<message xmlns='jabber:client' id='(s\d+)'/g)) received.push(m[1]!);
      }
      // Keep a request open once everything the client had to say is said.
      if (outstanding.size === 0 && nextRid - 1 - processedUpTo < requests) newRequest([]);
    }
    collect();
    await tick();
    collect();
  }

  assert.deepEqual(
    c2s.stanzas.map((e) => e.attrs.id),
    Array.from({ length: CLIENT_STANZAS }, (_, i) => `c${i}`),
    `seed ${seed} (hold ${hold}, ack ${useAck}): the server got the client's stanzas exactly once, in order`,
  );
  assert.deepEqual(
    received,
    Array.from({ length: SERVER_STANZAS }, (_, i) => `s${i}`),
    `seed ${seed} (hold ${hold}, ack ${useAck}): the client got the server's stanzas exactly once, in order`,
  );
  session.close();
}

test('model: random interleavings, losses and retransmissions deliver every stanza once, in order', async () => {
  for (let seed = 1; seed <= 200; seed++) await runScenario(seed);
});
