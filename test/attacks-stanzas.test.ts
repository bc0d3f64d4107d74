/**
 * Attacks through stanzas and BOSH session ids (issue 10, point 2): spoofed `from`
 * (RFC 6120 §8.1.2.1) on TCP, WebSocket and BOSH; IQs to another user's private data
 * (roster, archive, privacy and block lists, invisibility, vCard write): refused, nothing
 * leaked, nothing written; BOSH `sid` guessing and `rid` replay across sessions.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { Conn, login, waitUntil } from './helpers/limits.js';
import { RawBosh, post, HTTPBIND } from './helpers/bosh.js';
import { wsStream } from './helpers/attacks.js';
import { ScramClient } from '../src/xmpp/sasl/client.js';

let ts: TestServer;
let boshUrl: string;
const conns: Conn[] = [];

before(async () => {
  ts = await startTestServer({ listen: { c2s: { requireTls: false } } });
  for (const u of ['alice', 'bob', 'carol', 'mallory']) await ts.addUser(u);
  boshUrl = `${ts.httpUrl}/http-bind`;
});

after(async () => {
  for (const c of conns) c.close();
  await ts.stop();
});

async function tcp(user: string, resource = `r${Math.random().toString(36).slice(2, 8)}`): Promise<Conn> {
  const c = await login(ts.port, user, 'secret', resource);
  conns.push(c);
  return c;
}

let n = 0;
/** Sends an IQ on a raw connection and resolves with its reply. */
async function iq(c: Conn, type: 'get' | 'set', to: string | null, payload: string): Promise<string> {
  const id = `q${++n}`;
  const at = c.text.length;
  c.write(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ''}>${payload}</iq>`);
  const text = await c.until(new RegExp(`<iq[^>]*id='${id}'[^>]*(/>|>[\\s\\S]*?</iq>)`), at);
  return new RegExp(`<iq[^>]*id='${id}'[^>]*(/>|>[\\s\\S]*?</iq>)`).exec(text)![0];
}

const condition = (reply: string) => /<error[^>]*>\s*<([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/.exec(reply)?.[1];

test('a spoofed from on TCP, WebSocket and BOSH ends the stream with invalid-from; nothing is delivered', async () => {
  const bob = await tcp('bob', 'watch');
  const spoofed = (ns = '') => `<message${ns} from='alice@${DOMAIN}/x' to='bob@${DOMAIN}/watch' type='chat'><body>spoofed</body></message>`;
  // TCP: another account, another resource of the same account, another domain.
  for (const from of [`alice@${DOMAIN}/x`, `mallory@${DOMAIN}/other`, `mallory@elsewhere.test`, DOMAIN]) {
    const m = await tcp('mallory', 'spoof');
    const at = m.text.length;
    m.write(`<message from='${from}' to='bob@${DOMAIN}/watch' type='chat'><body>spoofed</body></message>`);
    await m.until(/<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/, at);
    await m.untilClosed();
  }
  // WebSocket: after login.
  const w = await wsStream(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);
  // SCRAM (PLAIN is not offered on a WebSocket without TLS).
  const scram = new ScramClient('SHA-256', 'mallory', 'secret');
  w.ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${scram.first().toString('base64')}</auth>`);
  const challenge = /<challenge[^>]*>([^<]*)</.exec(await w.until(/<challenge/))![1]!;
  w.ws.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${(await scram.final(Buffer.from(challenge, 'base64'))).toString('base64')}</response>`);
  await w.until(/<success/);
  w.ws.send(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${DOMAIN}' version='1.0'/>`);
  await w.until(/<bind/);
  w.ws.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
  await w.until(/id='b'/);
  w.ws.send(spoofed(" xmlns='jabber:client'"));
  await w.until(/<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  await w.untilClosed();
  // BOSH: the session ends with a terminate carrying the stream error.
  const b = new RawBosh(boshUrl);
  await b.login('mallory', 'secret', { presence: false });
  const r = await b.send({}, spoofed(" xmlns='jabber:client'"));
  const text = r.body.attrs.type === 'terminate' ? r.text : (await b.send()).text;
  assert.match(text, /invalid-from/);
  assert.match(text, /type='terminate'/);
  await bob.until(/./).catch(() => undefined);
  await new Promise((res) => setTimeout(res, 200));
  assert.doesNotMatch(bob.text, /spoofed/);
});

test('a from of the own bare or full JID is accepted, and the recipient sees the true full JID', async () => {
  const bob = await tcp('bob', 'stamp');
  const m = await tcp('mallory', 'honest');
  m.write(`<message from='mallory@${DOMAIN}' to='bob@${DOMAIN}/stamp' type='chat' id='m1'><body>one</body></message>`);
  m.write(`<message from='MALLORY@${DOMAIN.toUpperCase()}/honest' to='bob@${DOMAIN}/stamp' type='chat' id='m2'><body>two</body></message>`);
  m.write(`<message to='bob@${DOMAIN}/stamp' type='chat' id='m3'><body>three</body></message>`);
  await bob.until(/id='m3'/);
  for (const id of ['m1', 'm2', 'm3']) {
    const msg = new RegExp(`<message[^>]*id='${id}'[^>]*>`).exec(bob.text)![0];
    assert.match(msg, new RegExp(`from='mallory@${DOMAIN}/honest'`), msg);
  }
});

test("IQs to another user's roster, archive, privacy lists, block list and vCard are refused; nothing leaks, nothing is written", async () => {
  const alice = await tcp('alice', 'home');
  const mallory = await tcp('mallory', 'm');
  const A = `alice@${DOMAIN}`;
  // Alice's private data.
  assert.match(await iq(alice, 'set', null, `<query xmlns='jabber:iq:roster'><item jid='carol@${DOMAIN}' name='SECRET-CONTACT'/></query>`), /type='result'/);
  assert.match(await iq(alice, 'set', null, `<vCard xmlns='vcard-temp'><FN>Alice SECRET-FN</FN></vCard>`), /type='result'/);
  assert.match(await iq(alice, 'set', null, `<query xmlns='jabber:iq:privacy'><list name='SECRET-LIST'><item type='jid' value='bob@${DOMAIN}' action='deny' order='1'/></list></query>`), /type='result'/);
  assert.match(await iq(alice, 'set', null, `<block xmlns='urn:xmpp:blocking'><item jid='SECRET-BLOCKED@${DOMAIN}'/></block>`), /type='result'/);
  alice.write(`<message to='carol@${DOMAIN}' type='chat' id='arch'><body>SECRET-ARCHIVED</body></message>`);
  await waitUntil(() => true);

  const attempts: Array<[string, 'get' | 'set', string, string[]]> = [
    ['roster get', 'get', `<query xmlns='jabber:iq:roster'/>`, ['forbidden']],
    ['roster set', 'set', `<query xmlns='jabber:iq:roster'><item jid='mallory@${DOMAIN}' name='INJECTED'/></query>`, ['forbidden']],
    ['MAM query', 'set', `<query xmlns='urn:xmpp:mam:2' queryid='steal'/>`, ['service-unavailable', 'forbidden']],
    ['MAM form', 'get', `<query xmlns='urn:xmpp:mam:2'/>`, ['service-unavailable', 'forbidden']],
    ['MAM preferences', 'set', `<prefs xmlns='urn:xmpp:mam:2' default='never'/>`, ['service-unavailable', 'forbidden']],
    ['privacy get', 'get', `<query xmlns='jabber:iq:privacy'/>`, ['service-unavailable', 'forbidden']],
    ['privacy list get', 'get', `<query xmlns='jabber:iq:privacy'><list name='guess'/></query>`, ['service-unavailable', 'forbidden']],
    ['privacy set', 'set', `<query xmlns='jabber:iq:privacy'><default name='guess'/></query>`, ['service-unavailable', 'forbidden']],
    ['blocklist get', 'get', `<blocklist xmlns='urn:xmpp:blocking'/>`, ['service-unavailable', 'forbidden']],
    ['unblock', 'set', `<unblock xmlns='urn:xmpp:blocking'/>`, ['service-unavailable', 'forbidden']],
    ['invisible', 'set', `<invisible xmlns='urn:xmpp:invisible:1'/>`, ['service-unavailable', 'forbidden']],
    ['vCard set', 'set', `<vCard xmlns='vcard-temp'><FN>INJECTED</FN></vCard>`, ['forbidden']],
    ['offline fetch', 'get', `<offline xmlns='http://jabber.org/protocol/offline'><fetch/></offline>`, ['service-unavailable', 'forbidden']],
  ];
  for (const [what, type, payload, allowed] of attempts) {
    const at = mallory.text.length;
    const reply = await iq(mallory, type, A, payload);
    assert.match(reply, /type='error'/, `${what}: ${reply}`);
    assert.ok(allowed.includes(condition(reply) ?? ''), `${what}: ${reply}`);
    assert.doesNotMatch(mallory.text.slice(at), /SECRET/i, `${what} leaked: ${mallory.text.slice(at)}`);
  }
  // An existing list and a missing one give the same answer: no oracle.
  const norm = (r: string) => r.replace(/id='[^']*'/, '').replace(/name='[^']*'/, '');
  assert.equal(
    norm(await iq(mallory, 'get', A, `<query xmlns='jabber:iq:privacy'><list name='SECRET-LIST'/></query>`)),
    norm(await iq(mallory, 'get', A, `<query xmlns='jabber:iq:privacy'><list name='no-such-list'/></query>`)),
  );
  // Nothing was written: alice's own view is unchanged.
  const roster = await iq(alice, 'get', null, `<query xmlns='jabber:iq:roster'/>`);
  assert.match(roster, /SECRET-CONTACT/);
  assert.doesNotMatch(roster, /mallory|INJECTED/);
  const vcard = await iq(alice, 'get', null, `<vCard xmlns='vcard-temp'/>`);
  assert.match(vcard, /Alice SECRET-FN/);
  assert.doesNotMatch(vcard, /INJECTED/);
  assert.match(await iq(alice, 'get', null, `<query xmlns='jabber:iq:privacy'><list name='SECRET-LIST'/></query>`), /bob@/);
  assert.match(await iq(alice, 'get', null, `<blocklist xmlns='urn:xmpp:blocking'/>`), /secret-blocked@/);
  const mam = await iq(alice, 'set', null, `<query xmlns='urn:xmpp:mam:2' queryid='mine'/>`);
  assert.match(mam, /type='result'/);
  assert.match(alice.text, /SECRET-ARCHIVED/);
  assert.ok(!mallory.closed);
});

test('BOSH sid guessing: random, near-miss and malformed sids all get the same item-not-found, and the real session goes on', async () => {
  const victim = new RawBosh(boshUrl);
  await victim.login('alice', 'secret', { resource: 'victim', presence: false });
  const answers = new Set<string>();
  const guesses: string[] = [];
  for (let i = 0; i < 50; i++) guesses.push(Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url'));
  const last = victim.sid.at(-1) === 'A' ? 'B' : 'A';
  guesses.push(victim.sid.slice(0, -1) + last, victim.sid.toUpperCase() === victim.sid ? victim.sid.toLowerCase() : victim.sid.toUpperCase(), victim.sid + 'x', victim.sid.slice(1), '', '0', "' OR 1=1 --", '../../etc/passwd');
  const rs = await Promise.all(guesses.map((sid) => post(boshUrl, `<body xmlns='${HTTPBIND}' rid='${victim.rid}' sid='${sid.replace(/'/g, '&apos;')}'/>`)));
  for (const r of rs) {
    assert.equal(r.status, 200);
    answers.add(r.text);
  }
  assert.deepEqual([...answers], [`<body xmlns='${HTTPBIND}' type='terminate' condition='item-not-found'/>`]);
  // The victim's session is untouched: its next rid is still good.
  const r = await victim.send({}, `<iq xmlns='jabber:client' type='get' id='alive' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const pong = await victim.until(r, 'iq', (el) => el.attrs.id === 'alive');
  assert.equal(pong.attrs.type, 'result');
});

test("BOSH rid replay across sessions: a rid of session A sent with session B's sid gets nothing of A", async () => {
  const a = new RawBosh(boshUrl);
  await a.login('alice', 'secret', { resource: 'ra' });
  const b = new RawBosh(boshUrl);
  await b.login('carol', 'secret', { resource: 'rb' });
  const sender = await tcp('bob', 'sender');
  // A message for A, answered in the response to one of A's rids.
  sender.write(`<message to='alice@${DOMAIN}/ra' type='chat'><body>FOR-ALICE-ONLY</body></message>`);
  let got = await a.send();
  let ridOfSecret = a.rid - 1;
  for (let i = 0; i < 10 && !got.text.includes('FOR-ALICE-ONLY'); i++) {
    got = await a.send();
    ridOfSecret = a.rid - 1;
  }
  assert.match(got.text, /FOR-ALICE-ONLY/);
  // A's retransmission of that rid on A's session gets the same answer back (XEP-0124 §14.3)…
  const again = await post(boshUrl, a.body(ridOfSecret));
  assert.match(again.text, /FOR-ALICE-ONLY/);
  // …but the same rid with B's sid gets nothing of A's.
  const replay = await post(boshUrl, `<body xmlns='${HTTPBIND}' rid='${ridOfSecret}' sid='${b.sid}'/>`);
  assert.doesNotMatch(replay.text, /FOR-ALICE-ONLY|alice/);
  // And B's own rid sequence with a body of A's requests gets B's data only.
  const forged = await post(boshUrl, `<body xmlns='${HTTPBIND}' rid='${b.rid}' sid='${b.sid}'/>`);
  assert.doesNotMatch(forged.text, /FOR-ALICE-ONLY/);
});
