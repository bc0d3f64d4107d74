/**
 * Fuzz target: the BOSH request handler (src/transports/bosh).
 * - parseBody: any bytes and any attributes give a ParsedBody or a BodyError, nothing else.
 * - BoshSession against a model of a client: random rid sequences (in order, early,
 *   repeated, out of the window, below the first), garbage in pause/type/ack/restart, cut
 *   connections, data from the server and inactivity ticks. Checked: payloads reach the
 *   c2s session in rid order, each rid's payload whole and once, nothing after the end;
 *   no request is answered twice or after it was discarded; a message never appears in
 *   the responses of two different rids; open requests and held requests stay bounded;
 *   every message the server sent is in a response or handed back as undelivered.
 * - Over HTTP on a test server: garbage in the creation attributes, rids (text), sids and
 *   payloads; every request is answered (a terminate at the end releases held ones), never
 *   with a 5xx, and a 200 is a well-formed <body/>.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { x, type XmlElement } from '../../../src/xml/element.js';
import { DEFAULT_LIMITS } from '../../../src/xml/parser.js';
import type { StreamError } from '../../../src/xmpp/errors.js';
import type { C2sStreamEvents, OutboundKind } from '../../../src/c2s/transport.js';
import { BodyError, parseBody } from '../../../src/transports/bosh/body.js';
import { BoshSession, type BoshRequest } from '../../../src/transports/bosh/bosh-session.js';
import { BoshStats } from '../../../src/transports/bosh/bosh-stats.js';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { bytes, type FuzzTarget } from '../harness.js';

// ------------------------------------------------------------------ parseBody

const garbage = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '0', '-1', '1e9', 'NaN', 'Infinity', '9007199254740993', '0x10', ' 1', 'true', 'terminate', '&amp;', '\u00e9'),
);
const attrName = fc.constantFrom('rid', 'sid', 'wait', 'hold', 'ver', 'to', 'type', 'pause', 'ack', 'xmpp:restart', 'xmpp:version', 'xml:lang', 'content', 'xmlns', 'xmlns:xmpp', 'xmlns:stream', 'a', 'p:q');
const bodyDoc = fc
  .record({
    name: fc.constantFrom('body', 'Body', 'stream:stream', 'b'),
    ns: fc.constantFrom("xmlns='http://jabber.org/protocol/httpbind'", "xmlns='urn:other'", ''),
    attrs: fc.array(fc.tuple(attrName, garbage), { maxLength: 6 }),
    payload: fc.array(fc.constantFrom("<message xmlns='jabber:client'><body>hi</body></message>", '<presence/>', '<iq type="get"/>', '<a><b><c/></b></a>', 'text', '<x:y/>', '<', '&bad;'), { maxLength: 4 }),
    close: fc.boolean(),
    trailer: fc.constantFrom('', ' ', '<body/>', 'x'),
  })
  .map((d) => {
    const esc = (v: string) => v.replace(/&(?!amp;)/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');
    const a = d.attrs.map(([k, v]) => ` ${k}='${esc(v)}'`).join('');
    const body = d.close ? `<${d.name} ${d.ns}${a}>${d.payload.join('')}</${d.name}>` : `<${d.name} ${d.ns}${a}>${d.payload.join('')}`;
    return [...Buffer.from(body + d.trailer)];
  });

// ------------------------------------------------------------------ session model

type RidChoice = 'next' | 'skip' | 'repeat' | 'far' | 'below' | 'huge';
type Op =
  | { op: 'req'; rid: RidChoice; k: number; n: number; type: string | null; pause: string | null; ack: string | null; restart: boolean }
  | { op: 'abort'; i: number }
  | { op: 'send'; kind: 'message' | 'presence' | 'iq' }
  | { op: 'tick'; dt: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('req' as const),
      rid: fc.constantFrom<RidChoice>('next', 'next', 'next', 'skip', 'repeat', 'far', 'below', 'huge'),
      k: fc.integer({ min: 1, max: 6 }),
      n: fc.integer({ min: 0, max: 2 }),
      type: fc.option(fc.constantFrom('terminate', 'error', ''), { nil: null, freq: 8 }),
      pause: fc.option(garbage, { nil: null, freq: 8 }),
      ack: fc.option(garbage, { nil: null, freq: 4 }),
      restart: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('abort' as const), i: fc.nat(20) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('send' as const), kind: fc.constantFrom('message' as const, 'presence' as const, 'iq' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const), dt: fc.constantFrom(10, 1000, 30_000, 70_000, 200_000) }) },
);

const sessionArb = fc.record({
  hold: fc.constantFrom('0', '1', '2', '5', '-1', 'x'),
  wait: fc.constantFrom('60', '0', '1', '-5', 'NaN', '1e400'),
  ack: fc.boolean(),
  createRid: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constant(2 ** 53 - 3)),
  maxQueue: fc.constantFrom(3, 1000),
  pollingMs: fc.constantFrom(0, 5000),
  ops: fc.array(opArb, { maxLength: 40 }),
});

interface FakeRequest extends BoshRequest {
  replies: string[];
  discarded: boolean;
  aborted: boolean;
}

function request(rid: number, attrs: Record<string, string>, payload: XmlElement[]): FakeRequest {
  const r: FakeRequest = {
    rid,
    attrs: { rid: String(rid), ...attrs },
    payload,
    onAbort: null,
    replies: [],
    discarded: false,
    aborted: false,
    reply(body) {
      assert.equal(r.replies.length, 0, `rid ${rid} answered twice`);
      assert.ok(!r.discarded, `rid ${rid} answered after it was discarded`);
      r.replies.push(body);
    },
    isOpen: () => r.replies.length === 0 && !r.discarded && !r.aborted,
    discard() {
      assert.ok(!r.discarded, `rid ${rid} discarded twice`);
      r.discarded = true;
    },
  };
  return r;
}

const settle = () => new Promise<void>((r) => setImmediate(r));

type SessionInput = typeof sessionArb extends fc.Arbitrary<infer T> ? T : never;

async function runSession(input: SessionInput): Promise<void> {
  let clock = 1_000_000;
  const stats = new BoshStats();
  const settings = {
    domain: 'example.test',
    isSecure: false,
    maxWaitMs: 3_600_000,
    minWaitMs: 1000,
    maxHold: 2,
    inactivityMs: 60_000,
    maxPauseMs: 120_000,
    pollingMs: input.pollingMs,
    presenceDelayMs: 0,
    hibernateAfterMs: 100_000,
    maxQueue: input.maxQueue,
    stats,
    now: () => clock,
  };
  const received: XmlElement[] = [];
  let disconnected = false;
  let session!: BoshSession;
  const c2s: C2sStreamEvents = {
    onStreamOpen() {
      assert.ok(!disconnected, 'stream opened after the end');
    },
    onStanza(el) {
      assert.ok(!disconnected, 'stanza after the end');
      received.push(el);
    },
    // The real c2s session answers these by closing the transport.
    onStreamClose() {
      session.close();
    },
    onStreamError(e: StreamError) {
      session.close(e);
    },
    onDisconnect() {
      assert.ok(!disconnected, 'disconnected twice');
      disconnected = true;
    },
  };
  const createAttrs: Record<string, string> = { to: 'example.test', hold: input.hold, wait: input.wait, ver: '1.11' };
  if (input.ack) createAttrs.ack = '1';
  const create = request(input.createRid, createAttrs, []);
  const all: FakeRequest[] = [create];
  session = new BoshSession('sid', create, '127.0.0.1', settings, () => undefined);
  session.start(c2s, create);
  session.open({ id: 'stream1', from: 'example.test', version: '1.0', lang: 'en' }, x('stream:features'));
  await settle();

  const requests = Number(/requests='(\d+)'/.exec(create.replies[0] ?? '')?.[1] ?? 2);
  let clientNext = input.createRid + 1;
  const sentRids: number[] = [];
  const sentMessages = new Set<string>();
  let seq = 0;
  let aborts = 0;

  for (const op of input.ops) {
    if (op.op === 'req') {
      let rid = clientNext;
      switch (op.rid) {
        case 'next':
          rid = clientNext++;
          break;
        case 'skip':
          rid = clientNext + op.k;
          break;
        case 'repeat':
          rid = sentRids.length ? sentRids[op.k % sentRids.length]! : clientNext;
          break;
        case 'far':
          rid = clientNext + 10 * op.k;
          break;
        case 'below':
          rid = Math.max(0, input.createRid - op.k);
          break;
        case 'huge':
          rid = Number.MAX_SAFE_INTEGER - op.k;
          break;
      }
      const attrs: Record<string, string> = {};
      if (op.type !== null) attrs.type = op.type;
      if (op.pause !== null) attrs.pause = op.pause;
      if (op.ack !== null) attrs.ack = op.ack;
      if (op.restart) attrs['xmpp:restart'] = 'true';
      const payload = Array.from({ length: op.n }, (_, i) => x('message', { rid: String(rid), n: String(i), q: String(all.length) }));
      const req = request(rid, attrs, payload);
      all.push(req);
      sentRids.push(rid);
      // The manager refuses a rid that is not a safe integer before the session sees it.
      if (Number.isSafeInteger(rid)) session.handle(req);
      else session.failBadRequest(req);
    } else if (op.op === 'abort') {
      const open = all.filter((r) => r.isOpen());
      if (open.length > 0) {
        const r = open[op.i % open.length]!;
        r.aborted = true;
        aborts++;
        r.onAbort?.();
      }
    } else if (op.op === 'send') {
      const id = `m${++seq}`;
      const el = x(op.kind, { id, from: `u${seq % 3}@example.test/r`, to: 'me@example.test/r' }, op.kind === 'message' ? x('body', null, 'hi') : null);
      // The c2s session stops sending once the transport ended (it is Closing then): only
      // what was sent before counts.
      if (op.kind === 'message' && !session.isClosed) sentMessages.add(id);
      session.send(`<${op.kind} id='${id}' from='${el.attrs.from}'/>`, op.kind as OutboundKind, el);
    } else {
      clock += op.dt;
      session.tick(clock);
    }
    await settle();
    checkInvariants();
  }
  session.close();
  await settle();
  checkInvariants();
  // Every request got an answer or was discarded (replaced by its retransmission).
  for (const r of all) assert.ok(r.replies.length === 1 || r.discarded || r.aborted, `rid ${r.rid} left without an answer`);
  // Nothing lost: each message is in some response or handed back.
  const undelivered = new Set(session.takeUndelivered().map((el) => el.attrs.id));
  const inReplies = new Set<string>();
  for (const r of all) for (const b of r.replies) for (const m of b.matchAll(/<message [^>]*?\bid='(m\d+)'/g)) inReplies.add(m[1]!);
  for (const id of sentMessages) assert.ok(inReplies.has(id) || undelivered.has(id), `message ${id} lost`);

  function checkInvariants(): void {
    // Payloads in rid order, each rid's whole payload from one request, each rid once.
    const groups: Array<{ rid: number; q: string; n: number[] }> = [];
    for (const el of received) {
      const rid = Number(el.attrs.rid);
      const last = groups.at(-1);
      if (last && last.rid === rid && last.q === el.attrs.q) last.n.push(Number(el.attrs.n));
      else groups.push({ rid, q: el.attrs.q!, n: [Number(el.attrs.n)] });
    }
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      assert.ok(g.rid > input.createRid, `rid ${g.rid} at or below the creation rid was processed`);
      if (i > 0) assert.ok(g.rid > groups[i - 1]!.rid, `rid ${g.rid} processed after rid ${groups[i - 1]!.rid}`);
      const req = all[Number(g.q)]!;
      assert.equal(req.rid, g.rid);
      assert.deepEqual(g.n, req.payload.map((_, k) => k), `payload of rid ${g.rid} not whole or not in order`);
    }
    // Liveness without cut connections: every rid the client sent in sequence was processed.
    if (!session.isClosed && aborts === 0) {
      let r = input.createRid + 1;
      const sent = new Set(sentRids);
      while (sent.has(r) && Number.isSafeInteger(r + 1)) r++;
      const processed = new Set(groups.map((g) => g.rid));
      for (let k = input.createRid + 1; k < r; k++) {
        const reqs = all.filter((q) => q.rid === k && q !== create);
        if (reqs.every((q) => q.payload.length > 0)) assert.ok(processed.has(k), `rid ${k} was sent in sequence but never processed`);
      }
    }
    // A message goes out in the responses of one rid only (retransmissions of it included).
    const ridOf = new Map<string, number>();
    for (const r of all) {
      for (const b of r.replies) {
        for (const m of b.matchAll(/<message [^>]*?\bid='(m\d+)'/g)) {
          const before = ridOf.get(m[1]!);
          assert.ok(before === undefined || before === r.rid, `message ${m[1]} answered on rid ${before} and on rid ${r.rid}`);
          ridOf.set(m[1]!, r.rid);
        }
      }
    }
    // Bounded: held requests within `requests`, open connections within the window.
    if (!session.isClosed) assert.ok(session.heldCount <= requests, `${session.heldCount} held requests, requests=${requests}`);
    const open = all.filter((r) => r.isOpen()).length;
    assert.ok(open <= 2 * requests + 1, `${open} open requests, requests=${requests}`);
  }
}

// ------------------------------------------------------------------ over HTTP

let server: TestServer | null = null;

const httpArb = fc.record({
  create: fc.array(fc.tuple(fc.constantFrom('hold', 'wait', 'ver', 'content', 'to', 'xmpp:version', 'xml:lang', 'ack', 'route', 'secure'), garbage), { maxLength: 5 }),
  createRid: fc.oneof(fc.integer({ min: 1, max: 2 ** 31 }), fc.constantFrom(0, 2 ** 53 - 2, 2 ** 53, -1)),
  requests: fc.array(
    fc.record({
      rid: fc.constantFrom('next', 'next', 'next', 'repeat', 'garbage', 'far', 'missing'),
      ridText: garbage,
      sid: fc.constantFrom('right', 'right', 'right', 'wrong', 'missing'),
      attrs: fc.array(fc.tuple(attrName, garbage), { maxLength: 3 }),
      payload: fc.array(fc.constantFrom("<message xmlns='jabber:client' to='nobody@example.test'><body>x</body></message>", "<iq xmlns='jabber:client' type='get' id='1'/>", '<a/>', '<presence/>'), { maxLength: 2 }),
    }),
    { maxLength: 6 },
  ),
});
type HttpInput = typeof httpArb extends fc.Arbitrary<infer T> ? T : never;

const escAttr = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');

async function post(body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server!.httpUrl}/http-bind`, { method: 'POST', body, headers: { 'Content-Type': 'text/xml' }, signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
}

function checkReply(r: { status: number; text: string }): void {
  assert.ok(r.status < 500, `status ${r.status}: ${r.text.slice(0, 200)}`);
  if (r.status === 200) {
    const b = parseBody(Buffer.from(r.text), DEFAULT_LIMITS); // a well-formed <body/>
    assert.equal(typeof b.attrs, 'object');
  }
}

/** A client with garbage in its attributes, rids and sids, over real HTTP; every request is answered. */
async function overHttp(input: HttpInput): Promise<void> {
  const a = input.create.map(([k, v]) => ` ${k}='${escAttr(v)}'`).join('');
  const attrs = a.includes(' to=') ? a : a + " to='example.test'";
  const created = await post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='${input.createRid}' xmlns:xmpp='urn:xmpp:xbosh'${attrs}/>`);
  checkReply(created);
  const sid = /sid='([^']+)'/.exec(created.text)?.[1];
  let next = input.createRid + 1;
  const sent: Array<{ rid: string | null; done: Promise<Error | null> }> = [];
  const settle = (p: Promise<{ status: number; text: string }>) => p.then(checkReply).then(() => null, (e: Error) => e);
  for (const r of input.requests) {
    if (r.sid === 'missing' || (r.sid === 'right' && sid === undefined)) continue; // would be another creation
    // A request for another sid does not use up a rid of this session: a gap would leave
    // the terminate waiting for inactivity (the unit model covers gaps).
    const rid = r.rid === 'next' ? String(r.sid === 'right' ? next++ : next) : r.rid === 'repeat' ? String(next - 1) : r.rid === 'far' ? String(next + 1000) : r.rid === 'garbage' ? r.ridText : null;
    const sidAttr = r.sid === 'right' ? ` sid='${sid}'` : " sid='0123456789abcdef'";
    const extra = r.attrs.filter(([k]) => k !== 'rid' && k !== 'sid' && !k.startsWith('xmlns')).map(([k, v]) => ` ${k}='${escAttr(v)}'`);
    const unique = [...new Map(extra.map((e) => [e.split('=')[0], e])).values()].join('');
    const body = `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'${rid === null ? '' : ` rid='${escAttr(rid)}'`}${sidAttr}${unique}>${r.payload.join('')}</body>`;
    sent.push({ rid: r.sid === 'right' ? rid : null, done: settle(post(body)) });
    await new Promise((res) => setTimeout(res, 1));
  }
  // Ends the session (or finds it ended): held requests are answered.
  if (sid !== undefined) sent.push({ rid: String(next), done: settle(post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='${next}' sid='${sid}' type='terminate'/>`)) });
  const results = await Promise.all(sent.map((x) => x.done));
  results.forEach((err, i) => {
    if (err === null) return;
    // A held request whose rid came again is closed without a response (XEP-0124 §14.3:
    // the client gave up on it); the connections may arrive in either order. Any other
    // failure is a finding.
    const replaced = sent[i]!.rid !== null && sent.some((other, j) => j !== i && other.rid === sent[i]!.rid);
    if (!replaced || !/fetch failed/.test(err.message)) throw new Error(`request ${i} (rid ${sent[i]!.rid}): ${err.message}`, { cause: err });
  });
}

export const boshTarget: FuzzTarget = {
  name: 'bosh',
  async setup() {
    server = await startTestServer({ bosh: { maxWait: '1s' } });
  },
  async teardown() {
    await server?.stop();
    server = null;
  },
  properties: [
    {
      name: 'parseBody gives a body or a BodyError for any bytes',
      arbitrary: fc.oneof(bytes(200), bodyDoc),
      check(input: number[]) {
        try {
          const b = parseBody(Buffer.from(input), { ...DEFAULT_LIMITS, maxStanzaBytes: 300, maxDepth: 3 });
          assert.equal(typeof b.attrs, 'object');
          assert.ok(Array.isArray(b.payload));
        } catch (e) {
          if (!(e instanceof BodyError)) throw e;
          assert.ok(e.condition === 'bad-request' || e.condition === 'policy-violation');
        }
      },
      runs: 1000,
    },
    {
      name: 'a session under random rid sequences keeps order, answers once, loses nothing and stays bounded',
      arbitrary: sessionArb,
      check: async (input: SessionInput) => runSession(input),
      runs: 300,
    },
    {
      name: 'random creation attributes, rids, sids and payloads over HTTP are answered, never with a 5xx',
      arbitrary: httpArb,
      check: async (input: HttpInput) => overHttp(input),
      runs: 40,
    },
  ],
};
