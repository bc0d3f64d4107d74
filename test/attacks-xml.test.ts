/**
 * Known attacks on the XML layer (issue 10, point 2), each sent from outside over TCP,
 * WebSocket and BOSH to a real server: billion laughs and external entities, a 10 MB
 * stanza, 10,000 nested elements, 10,000 attributes, invalid UTF-8 and overlong
 * encodings. Each ends the stream with the defined error (or the BOSH/HTTP answer), the
 * connection closes, nothing of the payload is delivered, and another user goes on.
 * The parser's own unit tests (src/xml/parser.test.ts) and fuzz target cover the byte
 * level; these check the whole path.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { STREAM_HEADER } from './helpers/client.js';
import { Conn, login, waitUntil } from './helpers/limits.js';
import { HTTPBIND, RawBosh } from './helpers/bosh.js';
import { assertBoundedMemory, pump, rawSocket, wsFrameHeader, wsRawUpgrade, wsStream, WS_OPEN, type WsConn } from './helpers/attacks.js';

let ts: TestServer;
let wsUrl: string;
let boshUrl: string;
let watcher: Conn;
const conns: Conn[] = [];
const sockets: WsConn[] = [];
const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';

before(async () => {
  // 256 KiB, so that 10,000 nested elements or attributes fit and hit their own limits (depth, count), not the size.
  ts = await startTestServer({ listen: { c2s: { requireTls: false } }, limits: { maxStanzaSize: '256KiB' } });
  for (const u of ['alice', 'bob', 'watcher']) await ts.addUser(u);
  wsUrl = `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`;
  boshUrl = `${ts.httpUrl}/http-bind`;
  watcher = await login(ts.port, 'watcher');
  conns.push(watcher);
});

after(async () => {
  for (const c of conns) c.close();
  for (const s of sockets) s.ws.terminate();
  await ts.stop();
});

async function tcp(user?: string): Promise<Conn> {
  const c = user ? await login(ts.port, user, 'secret', `r${Math.random().toString(36).slice(2, 8)}`) : await Conn.open(ts.port);
  conns.push(c);
  return c;
}

async function ws(): Promise<WsConn> {
  const c = await wsStream(wsUrl);
  sockets.push(c);
  return c;
}

/** The server still serves another user: a ping of the watcher is answered. */
async function othersUnaffected(): Promise<void> {
  const at = watcher.text.length;
  const id = `p${Math.random().toString(36).slice(2)}`;
  watcher.write(`<iq type='get' id='${id}' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await watcher.until(new RegExp(`id='${id}'`), at);
  assert.ok(!watcher.closed);
}

const streamError = (condition: string) => new RegExp(`<stream:error[^>]*><${condition} xmlns='${STREAMS}'/>`);

const LOL = (() => {
  let dtd = "<!ENTITY lol0 'lol'>";
  for (let i = 1; i <= 9; i++) dtd += `<!ENTITY lol${i} '${`&lol${i - 1};`.repeat(10)}'>`;
  return `<!DOCTYPE lolz [${dtd}]>`;
})();
const XXE = "<!DOCTYPE foo [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>";

test('billion laughs and external entities: a DTD before the stream ends it with restricted-xml on TCP, nothing is expanded', async () => {
  for (const dtd of [LOL, XXE, "<!DOCTYPE stream:stream SYSTEM 'http://127.0.0.1:1/evil.dtd'>"]) {
    const c = await tcp();
    c.write(`<?xml version='1.0'?>${dtd}${STREAM_HEADER.slice(21)}`);
    await c.until(streamError('restricted-xml'));
    await c.untilClosed();
    assert.doesNotMatch(c.text, /lollol|root:/);
  }
  await othersUnaffected();
});

test('billion laughs and external entities: a DTD or an entity reference inside an authenticated stream ends it with restricted-xml, the message is not delivered', async () => {
  const bob = await tcp('bob');
  for (const payload of [
    `${LOL}<message to='bob@${DOMAIN}'><body>&lol9;</body></message>`,
    `<message to='bob@${DOMAIN}'><body>&lol9;</body></message>`,
    `<message to='bob@${DOMAIN}'><body>&xxe;</body></message>`,
    `<message to='bob@${DOMAIN}'><body>x</body></message><?xml-stylesheet href='http://127.0.0.1:1/'?>`,
  ]) {
    const alice = await tcp('alice');
    const at = alice.text.length;
    alice.write(payload);
    await alice.until(streamError('restricted-xml'), at);
    await alice.untilClosed();
  }
  await othersUnaffected();
  assert.doesNotMatch(bob.text, /<message/, 'nothing reached bob');
});

test('billion laughs and external entities over WebSocket and BOSH: restricted-xml, nothing expanded', async () => {
  const w = await ws();
  w.ws.send(`${LOL}<message xmlns='jabber:client' to='bob@${DOMAIN}'><body>&lol9;</body></message>`);
  await w.until(streamError('restricted-xml'));
  await w.untilClosed();
  const w2 = await ws();
  w2.ws.send(`<message xmlns='jabber:client' to='bob@${DOMAIN}'><body>&xxe;</body></message>`);
  await w2.until(streamError('restricted-xml'));
  await w2.untilClosed();

  // BOSH: the wrapper cannot be read, the request is refused (400, terminate) before any session sees it.
  const b = new RawBosh(boshUrl);
  const r = await fetch(boshUrl, { method: 'POST', body: `<?xml version='1.0'?>${LOL}${b.body(1, { to: DOMAIN, wait: '5', hold: '1', ver: '1.6' }, '&lol9;')}` });
  assert.equal(r.status, 400);
  const text = await r.text();
  assert.match(text, /type='terminate'/);
  assert.doesNotMatch(text, /lol/);
  // Inside an existing session: an entity reference in the payload.
  const s = new RawBosh(boshUrl);
  await s.create();
  const r2 = await fetch(boshUrl, { method: 'POST', body: s.next({}, `<message xmlns='jabber:client' to='bob@${DOMAIN}'><body>&xxe;</body></message>`).xml });
  assert.equal(r2.status, 400);
  assert.match(await r2.text(), /type='terminate'/);
  await othersUnaffected();
});

const TEN_MB = 10 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

test('a 10 MB stanza on TCP ends the stream with policy-violation after maxStanzaSize, without the server buffering it (RSS bounded)', async () => {
  const n = 6;
  const senders = await Promise.all(Array.from({ length: n }, () => tcp('alice')));
  let written: number[] = [];
  await assertBoundedMemory('TCP 10 MB stanza', n, TEN_MB, async () => {
    written = await Promise.all(
      senders.map((c) => {
        c.write(`<message to='bob@${DOMAIN}' type='chat'><body>`);
        return pump(c.socket, CHUNK, TEN_MB);
      }),
    );
    for (const c of senders) {
      await c.until(/<policy-violation/);
      await c.untilClosed();
    }
  });
  for (const w of written) assert.ok(w < TEN_MB, 'the server closed before taking all 10 MB');
  await othersUnaffected();
});

test('a 10 MB message on WebSocket is refused at the frame header: policy-violation, close 1009; fragments adding up to 10 MB too', async () => {
  const n = 6;
  const socks = await Promise.all(Array.from({ length: n }, () => wsRawUpgrade(ts.httpPort)));
  for (const s of socks) {
    s.write(Buffer.concat([wsFrameHeader(WS_OPEN.length), Buffer.from(WS_OPEN)]));
  }
  for (const s of socks) await waitUntil(() => s.received().includes('</stream:features>'), 10_000, () => 'features');
  let written: number[] = [];
  await assertBoundedMemory('WebSocket 10 MB message', n, TEN_MB, async () => {
  written = await Promise.all(
    socks.map((s, i) => {
      if (i % 2 === 0) {
        // One frame announcing 10 MB, then its payload.
        s.write(wsFrameHeader(TEN_MB));
        return pump(s, CHUNK, TEN_MB);
      }
      // Fragments of 64 KiB each (each under the payload bound), never the last one.
      const frag = Buffer.concat([wsFrameHeader(CHUNK.length, { opcode: 0, fin: false }), CHUNK]);
      s.write(wsFrameHeader(0, { opcode: 1, fin: false }));
      return pump(s, frag, TEN_MB);
    }),
  );
  for (const s of socks) {
    await waitUntil(() => s.destroyed || s.readableEnded, 10_000, () => 'the connection to close');
    assert.match(s.received(), /<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  }
  });
  for (const w of written) assert.ok(w < TEN_MB, 'the server closed before taking all 10 MB');
  await othersUnaffected();
});

test('a 10 MB BOSH body gets 413 terminate policy-violation, with Content-Length and chunked, and the server keeps none of it', async () => {
  const head = `<body xmlns='${HTTPBIND}' rid='1' to='${DOMAIN}' wait='5' hold='1' ver='1.6'><message xmlns='jabber:client' to='bob@${DOMAIN}'><body>`;
  const n = 6;
  const socks = await Promise.all(Array.from({ length: n }, () => rawSocket(ts.httpPort)));
  await assertBoundedMemory('BOSH 10 MB body', n, TEN_MB, async () => {
  // The client does not wait for the answer: it sends all 10 MB (as a careless or hostile client does).
  await Promise.all(
    socks.map((s, i) => {
      const chunked = i % 2 === 1;
      s.write(`POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${head.length + TEN_MB}`}\r\n\r\n`);
      if (!chunked) {
        s.write(head);
        return pump(s, CHUNK, TEN_MB);
      }
      s.write(`${head.length.toString(16)}\r\n${head}\r\n`);
      return pump(s, Buffer.concat([Buffer.from(`${CHUNK.length.toString(16)}\r\n`), CHUNK, Buffer.from('\r\n')]), TEN_MB);
    }),
  );
  for (const s of socks) {
    await waitUntil(() => /\r\n\r\n.*<\/?body/s.test(s.received()), 10_000, () => `an answer: ${s.received()}`);
    assert.match(s.received(), /^HTTP\/1\.1 413 /);
    assert.match(s.received(), /type='terminate' condition='policy-violation'/);
  }
  });
  // Before the fix, the server kept the rest of each refused body (10 MB each, copied on every read).
  for (const s of socks) s.destroy();
  await othersUnaffected();
});

test('10,000 nested elements end the stream with policy-violation (TCP, WebSocket) or terminate (BOSH)', async () => {
  const deep = `<message to='bob@${DOMAIN}'>${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}</message>`;
  const c = await tcp('alice');
  const at = c.text.length;
  c.write(deep);
  assert.match(await c.until(streamError('policy-violation'), at), /nested deeper than 48/);
  await c.untilClosed();
  const w = await ws();
  w.ws.send(deep.replace('<message ', "<message xmlns='jabber:client' "));
  assert.match(await w.until(streamError('policy-violation')), /nested deeper than 48/);
  await w.untilClosed();
  const s = new RawBosh(boshUrl);
  await s.create();
  const r = await fetch(boshUrl, { method: 'POST', body: s.next({}, deep.replace('<message ', "<message xmlns='jabber:client' ")).xml });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /type='terminate' condition='policy-violation'/);
  await othersUnaffected();
});

test('10,000 attributes on one element end the stream with policy-violation (TCP, WebSocket) or terminate (BOSH)', async () => {
  let attrs = '';
  for (let i = 0; i < 10_000; i++) attrs += ` a${i}='v'`;
  const many = `<message to='bob@${DOMAIN}'${attrs}><body>x</body></message>`;
  const c = await tcp('alice');
  const at = c.text.length;
  c.write(many);
  assert.match(await c.until(streamError('policy-violation'), at), /more than 64 attributes/);
  await c.untilClosed();
  const w = await ws();
  w.ws.send(many.replace('<message ', "<message xmlns='jabber:client' "));
  assert.match(await w.until(streamError('policy-violation')), /more than 64 attributes/);
  await w.untilClosed();
  const s = new RawBosh(boshUrl);
  await s.create();
  const r = await fetch(boshUrl, { method: 'POST', body: s.next({}, `<message xmlns='jabber:client'${attrs}/>`).xml });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /type='terminate' condition='policy-violation'/);
  // 10,000 attributes on the BOSH wrapper itself.
  const r2 = await fetch(boshUrl, { method: 'POST', body: `<body xmlns='${HTTPBIND}' rid='5' to='${DOMAIN}' wait='5' hold='1' ver='1.6'${attrs}/>` });
  assert.equal(r2.status, 400);
  assert.match(await r2.text(), /type='terminate' condition='policy-violation'/);
  await othersUnaffected();
});

const BAD_UTF8: Array<[string, number[]]> = [
  ['overlong <', [0xc0, 0xbc]],
  ['overlong NUL', [0xc0, 0x80]],
  ['3-byte overlong /', [0xe0, 0x80, 0xaf]],
  ['encoded surrogate', [0xed, 0xa0, 0x80]],
  ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['stray continuation', [0x80]],
  ['0xFF', [0xff]],
  ['truncated sequence', [0xe2, 0x82]],
];

test('invalid UTF-8 and overlong encodings end a TCP stream with not-well-formed; nothing is delivered', async () => {
  const bob = await tcp('bob');
  for (const [what, bytes] of BAD_UTF8) {
    const c = await tcp('alice');
    const at = c.text.length;
    c.socket.write(Buffer.concat([Buffer.from(`<message to='bob@${DOMAIN}' type='chat'><body>a`), Buffer.from(bytes), Buffer.from('b</body></message>')]));
    await c.until(streamError('not-well-formed'), at).catch((e: Error) => assert.fail(`${what}: ${e.message}`));
    await c.untilClosed();
  }
  // Before authentication, in the stream header.
  const c = await tcp();
  c.socket.write(Buffer.concat([Buffer.from(STREAM_HEADER.slice(0, -1)), Buffer.from([0xc0, 0xbe])]));
  await c.until(/not-well-formed/);
  await c.untilClosed();
  await othersUnaffected();
  assert.doesNotMatch(bob.text, /<message/, 'nothing reached bob');
});

test('invalid UTF-8 on WebSocket: a text frame is closed by the WebSocket layer (1007), a binary frame gets not-well-formed', async () => {
  const w = await ws();
  // ws sends what we give it as a text frame without checking it.
  w.ws.send(Buffer.concat([Buffer.from(`<message xmlns='jabber:client' to='bob@${DOMAIN}'><body>`), Buffer.from([0xc0, 0xbc]), Buffer.from('</body></message>')]), { binary: false });
  await w.untilClosed();
  assert.equal(w.closeCode(), 1007);
  const w2 = await ws();
  w2.ws.send(Buffer.concat([Buffer.from(`<message xmlns='jabber:client' to='bob@${DOMAIN}'><body>`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('</body></message>')]), { binary: true });
  await waitUntil(() => w2.closed() || w2.messages.some((m) => /not-well-formed|unsupported|bad-format/.test(m)), 10_000);
  await w2.untilClosed();
  await othersUnaffected();
});

test('invalid UTF-8 in a BOSH body is a 400 terminate; the session of another user goes on', async () => {
  const s = new RawBosh(boshUrl);
  await s.create();
  const [head, tail] = s.next({}, `<message xmlns='jabber:client' to='bob@${DOMAIN}'><body>@</body></message>`).xml.split('@') as [string, string];
  const body = Buffer.concat([Buffer.from(head), Buffer.from([0xc0, 0xbc]), Buffer.from(tail)]);
  const r = await fetch(boshUrl, { method: 'POST', body });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /type='terminate'/);
  await othersUnaffected();
});
