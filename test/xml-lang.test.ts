/**
 * RFC 6120 §4.7.4: a stanza sent without `xml:lang` is in its stream's language; the
 * server writes that language onto it before it is routed and archived, on TCP,
 * WebSocket and BOSH (issue 23, point 2).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, type Element, type TestClient } from './helpers/client.js';
import { XmlClient } from './helpers/xml-client.js';
import { RawBosh } from './helpers/bosh.js';
import { mamQuery, forwardedMessage } from './helpers/mam.js';

let ts: TestServer;
let bob: TestClient;
const open: XmlClient[] = [];

before(async () => {
  ts = await startTestServer({ listen: { c2s: { requireTls: false } } });
  for (const u of ['alice', 'bob', 'carol', 'dave']) await ts.addUser(u);
  bob = await connectClient({ port: ts.port, username: 'bob' });
});
after(async () => {
  for (const c of open) c.cut();
  await bob.stop();
  await ts.stop();
});

async function rawSession(kind: 'tcp' | 'ws', user: string, lang: string): Promise<XmlClient> {
  const c = kind === 'tcp' ? await XmlClient.tcp(ts.port) : await XmlClient.ws(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);
  open.push(c);
  c.lang = lang;
  await c.login(user);
  await c.bind(kind);
  return c;
}

const fromBody = (body: string) => (el: Element) => el.name === 'message' && el.getChildText('body') === body;

async function received(body: string): Promise<Element> {
  return bob.waitFor(fromBody(body), 5000, `message ${body}`);
}

test('TCP: a message without xml:lang reaches the recipient and the archive in the stream language; its own xml:lang is kept', async () => {
  const alice = await rawSession('tcp', 'alice', 'de');
  alice.write(`<message to='bob@${DOMAIN}' type='chat' id='l1'><body>Guten Tag</body></message>`);
  alice.write(`<message to='bob@${DOMAIN}' type='chat' id='l2' xml:lang='fr'><body>Bonjour</body></message>`);
  assert.equal((await received('Guten Tag')).attrs['xml:lang'], 'de');
  assert.equal((await received('Bonjour')).attrs['xml:lang'], 'fr');
  const archive = await mamQuery(bob, { with: `alice@${DOMAIN}` });
  const stored = archive.results.map((r) => forwardedMessage(r)!);
  assert.equal(stored.find((m) => m.getChildText('body') === 'Guten Tag')?.attrs['xml:lang'], 'de', 'archived with the stream language');
  assert.equal(stored.find((m) => m.getChildText('body') === 'Bonjour')?.attrs['xml:lang'], 'fr');
});

test('WebSocket: the <open/> xml:lang is given to stanzas without one', async () => {
  const carol = await rawSession('ws', 'carol', 'pl');
  carol.write(`<message to='bob@${DOMAIN}' type='chat' id='w1'><body>Dzień dobry</body></message>`);
  assert.equal((await received('Dzień dobry')).attrs['xml:lang'], 'pl');
});

test('BOSH: the session xml:lang is given to stanzas without one', async () => {
  const dave = new RawBosh(`${ts.httpUrl}/http-bind`);
  await dave.login('dave', 'secret', { presence: false, create: { 'xml:lang': 'cs' } });
  await dave.send({}, `<message xmlns='jabber:client' to='bob@${DOMAIN}' type='chat' id='b1'><body>Dobrý den</body></message>`);
  assert.equal((await received('Dobrý den')).attrs['xml:lang'], 'cs');
});

test('a malformed stream xml:lang is not copied onto stanzas', async () => {
  const alice = await rawSession('tcp', 'alice', 'not a language tag!');
  alice.write(`<message to='bob@${DOMAIN}' type='chat' id='m1'><body>no language</body></message>`);
  assert.equal((await received('no language')).attrs['xml:lang'], undefined);
});
