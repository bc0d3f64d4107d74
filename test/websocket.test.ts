/**
 * XMPP over WebSocket (RFC 7395): raw frames for what clients should not send (Strophe.js
 * as a real client: strophe.test.ts, over every transport).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { StreamError } from '../src/xmpp/errors.js';
import { ScramClient } from '../src/xmpp/sasl/client.js';

import { stropheLogin } from './helpers/strophe.js';
import { until } from './helpers/until.js';

let ts: TestServer;
let wsUrl: string;
const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';

before(async () => {
  ts = await startTestServer({ limits: { maxStanzaSize: '16KiB' }, websocket: { pingInterval: '1s' } });
  wsUrl = `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`;
  for (const u of ['wendy', 'xavier', 'yara', 'zed', 'abe', 'bo']) await ts.addUser(u);
});

after(async () => {
  await ts.stop();
});

/** A raw WebSocket with a queue of received messages. */
async function raw(protocols: string[] = ['xmpp'], opts: { autoPong?: boolean } = {}): Promise<{ ws: WebSocket; next(timeoutMs?: number): Promise<string>; closed: Promise<number> }> {
  const ws = new WebSocket(wsUrl, protocols, { autoPong: opts.autoPong ?? true });
  const queue: string[] = [];
  const waiters: Array<(s: string) => void> = [];
  ws.on('message', (d) => {
    const s = d.toString();
    const w = waiters.shift();
    if (w) w(s);
    else queue.push(s);
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    closed,
    next(timeoutMs = 3000) {
      const q = queue.shift();
      if (q !== undefined) return Promise.resolve(q);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no message')), timeoutMs);
        waiters.push((s) => {
          clearTimeout(t);
          resolve(s);
        });
      });
    },
  };
}

test('the framing: <open/> is answered with <open/> and features that declare their prefix', async () => {
  const c = await raw();
  c.ws.send(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/>`);
  const open = await c.next();
  assert.match(open, new RegExp(`^<open xmlns='${FRAMING}' id='[^']+' from='${DOMAIN}' version='1.0' xml:lang='en'/>$`));
  const features = await c.next();
  assert.match(features, /^<stream:features xmlns:stream='http:\/\/etherx\.jabber\.org\/streams'>/);
  assert.match(features, /<mechanism>SCRAM-SHA-1<\/mechanism>/);
  c.ws.send(`<close xmlns='${FRAMING}'/>`);
  assert.equal(await c.next(), `<close xmlns='${FRAMING}'/>`);
  assert.equal(await c.closed, 1000);
});

test('a connection without the xmpp sub-protocol is refused', async () => {
  await assert.rejects(raw(['chat']), /Unexpected server response: 400/);
});

test('two elements in one message end the stream with not-well-formed', async () => {
  const c = await raw();
  c.ws.send(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/><open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/>`);
  let msg = '';
  while (!msg.includes('stream:error')) msg = await c.next();
  assert.match(msg, /<not-well-formed/);
  assert.equal(await c.next(), `<close xmlns='${FRAMING}'/>`);
  await c.closed;
});

test('a half element in a message ends the stream with not-well-formed', async () => {
  const c = await raw();
  c.ws.send(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'`);
  let msg = '';
  while (!msg.includes('stream:error')) msg = await c.next();
  assert.match(msg, /<not-well-formed/);
  await c.closed;
});

test('a binary message is refused with bad-format', async () => {
  const c = await raw();
  c.ws.send(Buffer.from(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/>`), { binary: true });
  let msg = '';
  while (!msg.includes('stream:error')) msg = await c.next();
  assert.match(msg, /<bad-format/);
  await c.closed;
});

test('a frame larger than the stanza limit closes the connection', async () => {
  const c = await raw();
  c.ws.send(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/>`);
  await c.next();
  await c.next();
  c.ws.send(`<message xmlns='jabber:client'><body>${'x'.repeat(64 * 1024)}</body></message>`);
  assert.equal(await c.closed, 1009, 'message too big');
});

test('a client that does not answer pings is disconnected', async () => {
  const c = await raw(['xmpp'], { autoPong: false });
  const code = await c.closed;
  assert.ok(code === 1006 || code === 1005, `closed with ${code}`);
});

test('see-other-host is sent as <close see-other-uri/>', async () => {
  const conn = await stropheLogin(wsUrl, 'yara', 'ws');
  const raws: string[] = [];
  conn.rawInput = (d: string) => raws.push(d);
  const session = [...ts.server.core.sessions.resources(`yara@${DOMAIN}`)][0]!;
  session.close(new StreamError('see-other-host', 'draining', 'ws://127.0.0.1:1/xmpp-websocket'));
  await until('the <close see-other-uri/>', () => raws.some((r) => r.includes('see-other-uri')), 3000).catch(() => undefined);
  assert.ok(raws.some((r) => r.includes(`see-other-uri='ws://127.0.0.1:1/xmpp-websocket'`) || r.includes('see-other-uri="ws://127.0.0.1:1/xmpp-websocket"')), raws.join('\n'));
  conn.reset();
});

test('after a raw login, a stanza without the jabber:client namespace ends the stream with invalid-namespace', async () => {
  const c = await raw();
  c.ws.send(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/>`);
  await c.next();
  await c.next();
  const scram = new ScramClient('SHA-1', 'zed', 'secret');
  c.ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${scram.first().toString('base64')}</auth>`);
  const challenge = /<challenge[^>]*>([^<]+)<\/challenge>/.exec(await c.next())![1]!;
  c.ws.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${(await scram.final(Buffer.from(challenge, 'base64'))).toString('base64')}</response>`);
  assert.match(await c.next(), /<success/);
  c.ws.send(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'/>`);
  await c.next();
  assert.match(await c.next(), /<bind/);
  c.ws.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
  assert.match(await c.next(), /<jid>zed@example\.test\//);
  c.ws.send(`<message to='abe@${DOMAIN}'><body>no namespace</body></message>`);
  let msg = '';
  while (!msg.includes('stream:error')) msg = await c.next();
  assert.match(msg, /<invalid-namespace/);
  await c.closed;
});
