/**
 * Fuzz target: WebSocket framing (src/transports/websocket/ws-transport.ts, RFC 7395).
 * - On the transport: random sequences of text and binary messages (one element, several,
 *   a part of one, `<open/>`/`<close/>`, unknown framing elements, whitespace, garbage)
 *   give exactly the events a model derives from parsing each message on its own: the
 *   elements, then a stream error when the message was not exactly one complete element;
 *   nothing after the first stream error (the c2s session closes the transport then).
 * - Through a real `ws` connection to a test server: random frames never take the server
 *   down; afterwards a new connection still opens a stream.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import type { XmlElement } from '../../../src/xml/element.js';
import { serialize } from '../../../src/xml/serializer.js';
import { XmlStreamParser, DEFAULT_LIMITS } from '../../../src/xml/parser.js';
import { StreamError } from '../../../src/xmpp/errors.js';
import type { C2sStreamEvents } from '../../../src/c2s/transport.js';
import { WsTransport, NS_FRAMING } from '../../../src/transports/websocket/ws-transport.js';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import type { FuzzTarget } from '../harness.js';

const LIMITS = { ...DEFAULT_LIMITS, maxStanzaBytes: 400, maxDepth: 6 };

const element = fc.constantFrom(
  `<open xmlns='${NS_FRAMING}' to='example.test' version='1.0'/>`,
  `<close xmlns='${NS_FRAMING}'/>`,
  `<frob xmlns='${NS_FRAMING}'/>`,
  "<message xmlns='jabber:client' to='a@example.test'><body>hi &amp; bye</body></message>",
  "<presence xmlns='jabber:client'/>",
  "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
  "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>",
  '<a><b><c><d><e><f><g/></f></e></d></c></b></a>',
  `<m a='${'x'.repeat(500)}'/>`,
);
const frameText = fc.oneof(
  element,
  fc.tuple(element, element).map(([a, b]) => a + b),
  fc.tuple(element, fc.nat()).map(([e, k]) => e.slice(0, k % e.length)),
  fc.tuple(element, fc.nat()).map(([e, k]) => e.slice(k % e.length)),
  fc.tuple(fc.constantFrom(' ', '\n', ''), element, fc.constantFrom(' ', '\r\n', '')).map(([a, e, b]) => a + e + b),
  fc.constantFrom('', ' ', '<', '</a>', '<?xml version="1.0"?><a/>', '<!DOCTYPE a>', '<!-- c --><a/>', '&amp;', 'text', '<a>', '\u0000'),
  fc.string({ maxLength: 12 }),
);
const frame = fc.record({ binary: fc.constant(false), text: frameText });
const frames = fc.array(fc.oneof({ weight: 9, arbitrary: frame.map((f) => ({ ...f, binary: false })) }, { weight: 1, arbitrary: frame.map((f) => ({ ...f, binary: true })) }), { maxLength: 12 });

type Ev = ['open'] | ['close'] | ['stanza', string] | ['error', string];

/** A stand-in for a `ws` socket: the transport only listens and sends. */
class FakeSocket extends EventEmitter {
  sent: string[] = [];
  bufferedAmount = 0;
  closed = false;
  send(data: string, cb?: (err?: Error) => void): void {
    this.sent.push(data);
    cb?.();
  }
  ping(): void {}
  close(): void {
    this.closed = true;
  }
  terminate(): void {
    this.closed = true;
  }
}

/** What one message should give, parsed on its own (after earlier whole ones, unless `first`). */
function expected(f: { binary: boolean; text: string }, first: boolean): { events: Ev[]; ok: boolean } {
  if (f.binary) return { events: [['error', 'bad-format']], ok: false };
  const events: Ev[] = [];
  let error: string | null = null;
  let count = 0;
  const p = new XmlStreamParser(
    {
      onStreamStart() {},
      onElement(el: XmlElement) {
        count++;
        if (el.ns === NS_FRAMING) {
          if (el.name === 'open') events.push(['open']);
          else if (el.name === 'close') events.push(['close']);
          else {
            events.push(['error', 'unsupported-stanza-type']);
            error ??= 'x';
          }
        } else events.push(['stanza', serialize(el)]);
      },
      onStreamEnd() {},
      onError(condition) {
        error = condition;
        events.push(['error', condition]);
      },
    },
    { framed: true, limits: LIMITS },
  );
  if (!first) {
    // A parser that has seen an element: no XML declaration any more, no header bytes.
    p.write(Buffer.from('<x/>'));
    events.length = 0;
    count = 0;
  }
  p.write(Buffer.from(f.text));
  if (error !== null) return { events: cut(events), ok: false };
  if (!p.isBetweenElements || count !== 1) return { events: [...events, ['error', 'not-well-formed']], ok: false };
  return { events, ok: true };
}

/** Everything up to and including the first error. */
function cut(ev: Ev[]): Ev[] {
  const i = ev.findIndex((e) => e[0] === 'error');
  return i < 0 ? ev : ev.slice(0, i + 1);
}

function runFrames(list: Array<{ binary: boolean; text: string }>): void {
  const ws = new FakeSocket();
  const t = new WsTransport(ws as never, '127.0.0.1', { limits: LIMITS, isSecure: false, closeTimeoutMs: 1000, maxSendBuffer: 1 << 20 });
  const got: Ev[] = [];
  const events: C2sStreamEvents = {
    onStreamOpen: () => void got.push(['open']),
    onStanza: (el) => void got.push(['stanza', serialize(el)]),
    onStreamClose: () => void got.push(['close']),
    onStreamError: (e: StreamError) => {
      assert.ok(e instanceof StreamError);
      got.push(['error', e.condition]);
      t.close(e); // what the c2s session does
    },
    onDisconnect: () => undefined,
  };
  t.bind(events);
  let want: Ev[] = [];
  let first = true;
  for (const f of list) {
    ws.emit('message', Buffer.from(f.text), f.binary);
    const e = expected(f, first);
    if (!f.binary) first = false;
    want = want.concat(e.events);
    if (!e.ok) break;
  }
  // After the first stream error the c2s session is closing and ignores what follows
  // (elements later in the same message still reach it): compare up to there.
  assert.deepEqual(cut(got), cut(want));
}

// ------------------------------------------------------------------ through a real server

let server: TestServer | null = null;

async function realFrames(list: Array<{ binary: boolean; text: string }>): Promise<void> {
  const url = `ws://127.0.0.1:${server!.httpPort}/xmpp-websocket`;
  const ws = new WebSocket(url, ['xmpp']);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  for (const f of list) {
    if (ws.readyState !== WebSocket.OPEN) break;
    ws.send(f.binary ? Buffer.from(f.text) : f.text, { binary: f.binary });
  }
  // The server answers or closes; give it a moment, then close from our side.
  await new Promise((r) => setTimeout(r, 5));
  ws.close();
  await closed;
  // The server is still there: a new connection opens a stream.
  const probe = new WebSocket(url, ['xmpp']);
  const first = await new Promise<string>((resolve, reject) => {
    probe.once('open', () => probe.send(`<open xmlns='${NS_FRAMING}' to='example.test' version='1.0'/>`));
    probe.once('message', (d) => resolve(String(d)));
    probe.once('error', reject);
  });
  probe.terminate();
  assert.match(first, /^<open /);
}

export const wsTarget: FuzzTarget = {
  name: 'ws',
  async setup() {
    server = await startTestServer({ limits: { maxStanzaSize: '2KiB' } });
  },
  async teardown() {
    await server?.stop();
    server = null;
  },
  properties: [
    {
      name: 'messages give the elements of each one and a stream error when one is not exactly one element',
      arbitrary: frames,
      check: (list: Array<{ binary: boolean; text: string }>) => runFrames(list),
      runs: 1500,
    },
    {
      name: 'random frames through a real ws connection never take the server down',
      arbitrary: frames,
      check: async (list: Array<{ binary: boolean; text: string }>) => realFrames(list),
      runs: 60,
    },
  ],
};
