/**
 * BOSH (XEP-0124, XEP-0206) over real HTTP: every rule of the connection manager,
 * written request by request (Strophe.js as a real client: strophe.test.ts, over every
 * transport).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { RawBosh, post, HTTPBIND } from './helpers/bosh.js';
import { until } from './helpers/until.js';
import { ScramClient } from '../src/xmpp/sasl/client.js';


let ts: TestServer;
let url: string;
const clients: TestClient[] = [];

/** The request window of a session, as the server sees it (the BOSH manager's read-only view). */
function windowOf(b: RawBosh): { held: number; early: number; queued: number } {
  return ts.server.bosh!.requestsOf(b.sid) ?? { held: 0, early: 0, queued: 0 };
}

/** Waits until the server holds a request of this session (it arrived and waits for data or its wait). */
async function held(b: RawBosh, n = 1): Promise<void> {
  await until(`${n} request(s) of ${b.sid} held`, () => windowOf(b).held >= n);
}

before(async () => {
  ts = await startTestServer({
    bosh: { inactivity: '5s', minWait: '100ms', hibernateAfter: '1s', presenceDelay: '250ms' },
    listen: { http: { corsOrigins: ['https://portal.example.test'] } },
  });
  url = `${ts.httpUrl}/http-bind`;
  for (const u of ['ann', 'bea', 'cid', 'dan', 'eve', 'fay', 'gus', 'hal', 'ida', 'jon', 'kim', 'lee', 'max', 'ned', 'oli', 'pam', 'quin', 'ray', 'sue', 'tom', 'uma', 'vic', 'wes']) {
    await ts.addUser(u);
  }
});

after(async () => {
  for (const c of clients) await c.stop();
  await ts.stop();
});

async function tcp(user: string, resource = 'tcp'): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username: user, resource });
  clients.push(c);
  return c;
}

describe('session creation', () => {
  test('the creation response carries every session attribute and the stream features', async () => {
    const b = new RawBosh(url);
    const r = await b.create({ wait: '30', hold: '1', ack: '1', content: 'text/xml; charset=utf-8' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/xml; charset=utf-8');
    const a = r.body.attrs;
    assert.match(a.sid!, /^[A-Za-z0-9_-]{22}$/, '128-bit sid');
    assert.equal(a.wait, '30');
    assert.equal(a.hold, '1');
    assert.equal(a.requests, '2');
    assert.equal(a.ver, '1.6');
    assert.equal(a.from, DOMAIN);
    assert.equal(a['xmpp:version'], '1.0');
    assert.equal(a['xmpp:restartlogic'], 'true');
    assert.ok(a.inactivity && a.polling && a.maxpause && a.authid);
    assert.equal(a.ack, String(b.rid - 1));
    const mechs = r.body.getChild('features')!.getChild('mechanisms')!.getChildren('mechanism').map((m) => m.text());
    assert.ok(mechs.includes('SCRAM-SHA-256'));
    assert.ok(!mechs.includes('PLAIN'), 'no PLAIN over plain HTTP');
  });

  test('a wait above the maximum is lowered and hold is capped', async () => {
    const b = new RawBosh(url);
    const r = await b.create({ wait: '3600', hold: '9' });
    assert.equal(r.body.attrs.wait, '60');
    assert.equal(r.body.attrs.hold, '2');
    assert.equal(r.body.attrs.requests, '3');
  });

  test('a session for another domain is refused with host-unknown', async () => {
    const b = new RawBosh(url);
    const r = await b.create({ to: 'elsewhere.test' });
    assert.equal(r.body.attrs.type, 'terminate');
    assert.equal(r.body.attrs.condition, 'host-unknown');
  });

  test('the content attribute cannot choose the response Content-Type: every response is text/xml', async () => {
    for (const content of ['text/html', 'application/xhtml+xml', 'image/svg+xml', 'text/plain; charset=utf-8']) {
      const b = new RawBosh(url);
      const r = await b.create({ content, wait: '1' });
      assert.ok(r.body.attrs.sid, r.text);
      assert.equal(r.headers.get('content-type'), 'text/xml; charset=utf-8', content);
      const next = await b.send();
      assert.equal(next.headers.get('content-type'), 'text/xml; charset=utf-8', content);
      assert.equal(next.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(next.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
      await b.send({ type: 'terminate' });
    }
  });

  test('a full login with restart and bind works, and messages flow to a TCP user and back', async () => {
    const tc = await tcp('bea');
    const b = new RawBosh(url);
    await b.login('ann', 'secret', { create: { wait: '2' } });
    assert.equal(b.jid, `ann@${DOMAIN}/bosh`);
    await b.send({}, `<message xmlns='jabber:client' to='bea@${DOMAIN}' type='chat' id='b1'><body>from BOSH</body></message>`);
    const m = await tc.waitFor((el) => el.attrs.id === 'b1');
    assert.equal(m.getChildText('body'), 'from BOSH');
    await tc.send(xml('message', { to: b.jid, type: 'chat', id: 't1' }, xml('body', null, 'from TCP')));
    const got = await b.until(await b.send(), 'message', (el) => el.attrs.id === 't1');
    assert.equal(got.getChildText('body'), 'from TCP');
    await b.send({ type: 'terminate' }, "<presence xmlns='jabber:client' type='unavailable'/>");
  });
});

describe('payload namespaces', () => {
  /** Logs in as tsung 1.7 does: SASL qualified, everything after the restart unqualified. */
  async function unqualifiedLogin(user: string): Promise<RawBosh> {
    const b = new RawBosh(url);
    const scram = new ScramClient('SHA-256', user, 'secret');
    await b.create({ wait: '2' });
    let r = await b.send({}, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${scram.first().toString('base64')}</auth>`);
    const challenge = await b.until(r, 'challenge');
    r = await b.send({}, `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${(await scram.final(Buffer.from(challenge.text(), 'base64'))).toString('base64')}</response>`);
    await b.until(r, 'success');
    r = await b.send({ 'xmpp:restart': 'true', to: DOMAIN });
    await b.until(r, 'features');
    r = await b.send({}, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>tsung</resource></bind></iq>");
    const bound = await b.until(r, 'iq', (el) => el.attrs.id === 'bind');
    assert.equal(bound.attrs.type, 'result', bound.toString());
    b.jid = bound.getChild('bind')?.getChildText('jid') ?? '';
    return b;
  }

  test('unqualified iq, presence and message inside <body/> are jabber:client stanzas (tsung 1.7)', async () => {
    const tc = await tcp('vic');
    const b = await unqualifiedLogin('uma');
    assert.equal(b.jid, `uma@${DOMAIN}/tsung`);
    // An unqualified IQ is answered like any other.
    let r = await b.send({}, "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>");
    const roster = await b.until(r, 'iq', (el) => el.attrs.id === 'roster1');
    assert.equal(roster.attrs.type, 'result', roster.toString());
    // Unqualified presence reaches the server (it comes back to the sender, RFC 6121 §4.2.2).
    r = await b.send({}, '<presence><status>on tsung</status></presence>');
    const own = await b.until(r, 'presence');
    assert.equal(own.getChildText('status'), 'on tsung');
    // An unqualified message is routed, and its unqualified <body/> is the jabber:client body.
    await b.send({}, `<message to='vic@${DOMAIN}' type='chat' id='u1'><body>unqualified</body></message>`);
    const m = await tc.waitFor((el) => el.name === 'message' && el.attrs.id === 'u1');
    assert.equal(m.attrs.from, `uma@${DOMAIN}/tsung`);
    assert.equal(m.getChildText('body'), 'unqualified');
    const still = await b.send();
    assert.notEqual(still.body.attrs.type, 'terminate', still.text);
    await b.send({ type: 'terminate' });
  });

  test('a stanza with another explicit namespace still ends the session with invalid-namespace', async () => {
    const tc = await tcp('vic', 'ns');
    const b = await unqualifiedLogin('wes');
    const r = await b.send({}, `<message xmlns='jabber:server' to='vic@${DOMAIN}' type='chat' id='s1'><body>server ns</body></message>`);
    assert.equal(r.body.attrs.type, 'terminate', r.text);
    assert.equal(r.body.attrs.condition, 'remote-stream-error');
    assert.ok(r.body.getChild('error')?.getChild('invalid-namespace'), r.text);
    // Nothing was routed: a later message from TCP to itself arrives first and alone.
    await tc.send(xml('message', { to: `vic@${DOMAIN}/ns`, id: 'probe' }, xml('body', null, 'x')));
    const first = await tc.waitFor((el) => el.name === 'message');
    assert.equal(first.attrs.id, 'probe');
  });
});

describe('request ids', () => {
  test('a repeated rid gets the very same response again', async () => {
    const b = new RawBosh(url);
    await b.login('tom', 'secret', { create: { wait: '1' }, presence: false });
    const { xml: body } = b.next({}, `<iq xmlns='jabber:client' type='get' id='x' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const before = ts.server.bosh!.stats.retransmissions;
    const first = await post(url, body);
    assert.match(first.text, /id='x'/);
    const second = await post(url, body);
    assert.equal(second.text, first.text);
    assert.equal(ts.server.bosh!.stats.retransmissions, before + 1);
  });

  test('a request that arrives before its predecessor waits, and payloads go out in rid order', async () => {
    const tc = await tcp('dan');
    const b = new RawBosh(url);
    await b.login('cid', 'secret', { create: { wait: '2', hold: '2' } });
    const first = b.next({}, `<message xmlns='jabber:client' to='dan@${DOMAIN}' type='chat' id='o1'><body>one</body></message>`);
    const second = b.next({}, `<message xmlns='jabber:client' to='dan@${DOMAIN}' type='chat' id='o2'><body>two</body></message>`);
    const early = post(url, second.xml);
    await until('the early request reached the server and waits', () => windowOf(b).early >= 1);
    await tc.expectNone((el) => el.attrs.id === 'o2', 100, 'message of the early request');
    const late = post(url, first.xml);
    await tc.waitFor((el) => el.attrs.id === 'o1');
    await tc.waitFor((el) => el.attrs.id === 'o2');
    const order = tc.received.filter((el) => el.attrs.id === 'o1' || el.attrs.id === 'o2').map((el) => el.attrs.id);
    assert.deepEqual(order, ['o1', 'o2']);
    await Promise.all([early, late]);
    assert.ok(ts.server.bosh!.stats.outOfOrder >= 1);
  });

  test('a rid outside the window ends the session with item-not-found', async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '2' });
    const r = await post(url, b.body(b.rid + 50));
    assert.equal(r.body.attrs.type, 'terminate');
    assert.equal(r.body.attrs.condition, 'item-not-found');
    // The session is gone: its next request learns why.
    const after = await b.send();
    assert.equal(after.body.attrs.type, 'terminate');
  });

  test('an unknown sid gets item-not-found', async () => {
    const r = await post(url, `<body xmlns='${HTTPBIND}' rid='5' sid='nosuchsession'/>`);
    assert.equal(r.body.attrs.condition, 'item-not-found');
  });

  test('a missing or malformed rid ends the session with bad-request', async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '2' });
    const r = await post(url, `<body xmlns='${HTTPBIND}' sid='${b.sid}' rid='abc'/>`);
    assert.equal(r.body.attrs.condition, 'bad-request');
  });

  test('too many simultaneous requests end the session with policy-violation', async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '2', hold: '1' });
    // requests = 2: the third new request, sent before any answer, is one too many.
    const r = await post(url, b.body(b.rid + 2));
    assert.equal(r.body.attrs.condition, 'policy-violation');
  });
});

describe('hold and wait', () => {
  test('with hold=1 a new request answers the held one with an empty body', async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '10', hold: '1' });
    const pending = b.send();
    await held(b);
    const next = b.send();
    const r = await pending;
    assert.equal(r.text, `<body xmlns='${HTTPBIND}'/>`);
    void next;
  });

  test('a held request is answered after wait seconds', { timeout: 20_000 }, async () => {
    // Two sessions, wait 1 s and 2 s, each with a request held from the same moment: each
    // is answered with an empty body, the shorter wait first, and the longer one is still
    // held when the shorter one is answered (the order of events is the clock).
    const one = new RawBosh(url);
    const two = new RawBosh(url);
    await one.create({ wait: '1' });
    await two.create({ wait: '2' });
    const order: string[] = [];
    const [r1, r2] = await Promise.all([
      one.send().then((r) => (order.push('wait=1'), r)),
      two.send().then((r) => (order.push('wait=2'), r)),
    ]);
    assert.equal(r1.text, `<body xmlns='${HTTPBIND}'/>`);
    assert.equal(r2.text, `<body xmlns='${HTTPBIND}'/>`);
    assert.deepEqual(order, ['wait=1', 'wait=2']);
  });

  // The wait (60 s) is far above the test's timeout: the message can only arrive in time
  // by going out at once.
  test('data for the client goes out at once on a held request', { timeout: 20_000 }, async () => {
    // The TCP contact first: a slow machine must not end the idle BOSH session (inactivity) meanwhile.
    const tc = await tcp('fay');
    const b = new RawBosh(url);
    await b.login('eve', 'secret', { create: { wait: '60' } });
    const pending = b.send();
    await held(b); // the request reaches the server and is held before the message
    await tc.send(xml('message', { to: b.jid, type: 'chat', id: 'fast' }, xml('body', null, 'now')));
    const r = await pending;
    assert.ok(r.body.elements().some((e) => e.attrs.id === 'fast'));
  });
});

describe('acknowledgements, pause, termination', () => {
  test('a client that reports a missed response is told which, and gets it again', async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '1', ack: '1' });
    const base = b.rid - 1; // the creation request
    const first = b.next({ ack: String(base) });
    const r1 = await post(url, first.xml);
    // Pretend r1 never arrived: the next request still acknowledges only the creation.
    const r2 = await b.send({ ack: String(base) });
    assert.equal(r2.body.attrs.report, String(first.rid));
    assert.match(r2.body.attrs.time ?? '', /^\d+$/);
    const again = await post(url, first.xml);
    assert.equal(again.text, r1.text);
  });

  test('pause and resume keep the session without presence flapping for contacts', async () => {
    const contact = await tcp('hal');
    const b = new RawBosh(url);
    await b.login('gus', 'secret', { create: { wait: '2' } });
    // Make them see each other.
    await contact.send(xml('presence', { to: `gus@${DOMAIN}`, type: 'subscribe' }));
    await b.until(await b.send(), 'presence', (p) => p.attrs.type === 'subscribe');
    await b.send({}, `<presence xmlns='jabber:client' to='hal@${DOMAIN}' type='subscribed'/>`);
    await contact.presence((p) => p.attrs.from === b.jid && p.attrs.type === undefined, 'gus available');

    // The page goes away: pause.
    const paused = await b.send({ pause: '30' });
    assert.equal(paused.body.elements().length, 0, 'a pause response carries no payloads');
    const queued = windowOf(b).queued;
    await contact.send(xml('message', { to: `gus@${DOMAIN}`, type: 'chat', id: 'while-paused' }, xml('body', null, 'hello?')));
    await until('the message is queued in the paused session', () => windowOf(b).queued > queued);
    // The next page resumes with the same sid and the next rid, without logging in.
    const got = await b.until(await b.send(), 'message', (m) => m.attrs.id === 'while-paused');
    assert.equal(got.getChildText('body'), 'hello?');
    await contact.expectNone((p) => p.name === 'presence' && p.attrs.type === 'unavailable' && p.attrs.from === b.jid, 100, 'unavailable during the pause');
  });

  test('a terminate request logs out: contacts see unavailable once, and the session is gone', async () => {
    const contact = await tcp('jon');
    const b = new RawBosh(url);
    await b.login('ida', 'secret', { create: { wait: '2' } });
    await contact.send(xml('presence', { to: `ida@${DOMAIN}`, type: 'subscribe' }));
    await b.until(await b.send(), 'presence', (p) => p.attrs.type === 'subscribe');
    await b.send({}, `<presence xmlns='jabber:client' to='jon@${DOMAIN}' type='subscribed'/>`);
    await contact.presence((p) => p.attrs.from === b.jid && p.attrs.type === undefined);
    const r = await b.send({ type: 'terminate' }, "<presence xmlns='jabber:client' type='unavailable'/>");
    assert.equal(r.body.attrs.type, 'terminate');
    await contact.presence((p) => p.attrs.from === b.jid && p.attrs.type === 'unavailable');
    // Once: no second unavailable follows (a window is the only way to see that nothing comes).
    await contact.expectNone((p) => p.name === 'presence' && p.attrs.from === b.jid && p.attrs.type === 'unavailable', 200, 'a second unavailable');
    const after = await b.send();
    assert.equal(after.body.attrs.type, 'terminate');
  });
});

describe('server-side termination', () => {
  test('a session replaced by a new login with the same resource ends with remote-stream-error conflict', async () => {
    const b = new RawBosh(url);
    await b.login('sue', 'secret', { create: { wait: '10' }, resource: 'same' });
    const pending = b.send();
    await held(b);
    const other = await connectClient({ port: ts.port, username: 'sue', resource: 'same' });
    clients.push(other);
    const r = await pending;
    assert.equal(r.body.attrs.type, 'terminate');
    assert.equal(r.body.attrs.condition, 'remote-stream-error');
    assert.ok(r.body.getChild('error')?.getChild('conflict'), r.text);
    assert.ok(ts.server.bosh!.stats.terminations.conflict >= 1);
  });
});

describe('nothing is lost', () => {
  test('messages for a session that dies of inactivity go to offline storage; contacts see it go once', async () => {
    const b = new RawBosh(url);
    await b.login('kim', 'secret', { create: { wait: '1' } });
    const contact = await tcp('lee');
    await contact.send(xml('presence', { to: `kim@${DOMAIN}`, type: 'subscribe' }));
    await b.until(await b.send(), 'presence', (p) => p.attrs.type === 'subscribe');
    await b.send({}, `<presence xmlns='jabber:client' to='lee@${DOMAIN}' type='subscribed'/>`);
    await contact.presence((p) => p.attrs.from === b.jid && p.attrs.type === undefined);
    // The page is gone: no more requests. The last held one times out after 1 s.
    await b.send();
    await contact.send(xml('message', { to: `kim@${DOMAIN}`, type: 'chat', id: 'late' }, xml('body', null, 'are you there?')));
    // Inactivity is 5 s after the last response; the sweep runs every second.
    await contact.waitFor((p) => p.name === 'presence' && p.attrs.from === b.jid && p.attrs.type === 'unavailable', 12_000, 'kim unavailable after inactivity');
    // Logging in again (over TCP this time) brings the message.
    const again = await tcp('kim', 'back');
    const m = await again.waitFor((el) => el.attrs.id === 'late', 8000);
    assert.equal(m.getChildText('body'), 'are you there?');
    assert.ok(ts.server.bosh!.stats.terminations.inactivity >= 1);
  });
});

describe('grouped presence, adaptive wait, statistics', () => {
  test('presence from several contacts goes out together in one response', async () => {
    // The TCP contacts first: a slow machine must not end the idle BOSH session (inactivity) meanwhile.
    const contacts = [await tcp('ned'), await tcp('oli'), await tcp('pam')];
    const b = new RawBosh(url);
    await b.login('max', 'secret', { create: { wait: '10' } });
    const pending = b.send();
    await held(b);
    // Three presence updates at about the same time (directed, so no subscription is needed).
    for (const c of contacts) await c.send(xml('presence', { to: b.jid }, xml('show', null, 'away')));
    const resp = await pending;
    const aways = resp.body.elements().filter((e) => e.name === 'presence' && e.getChildText('show') === 'away');
    assert.equal(aways.length, 3, `one response with all three: ${resp.text}`);
    assert.ok(ts.server.bosh!.stats.groupedPresences >= 3);
  });

  test('requests cut before the wait make the session answer earlier', { timeout: 20_000 }, async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '60' });
    // Something in front cuts requests after about 600 ms (the scenario, not a clock we assert on).
    const { rid, xml: body } = b.next();
    const ctl = new AbortController();
    const cutBefore = ts.server.bosh!.stats.cutRequests;
    const pending = post(url, body, { signal: ctl.signal }).catch(() => null);
    await held(b);
    // The scenario's own clock: the front end's cut, which the session learns its wait from.
    await new Promise((res) => setTimeout(res, 600));
    ctl.abort();
    await pending;
    await until('the server saw the cut', () => ts.server.bosh!.stats.cutRequests > cutBefore);
    // The client retries the same rid on a new connection, as clients do.
    const retry = post(url, b.body(rid));
    const snap = ts.server.bosh!.snapshot();
    assert.ok(snap.cutRequests >= 1);
    assert.ok(snap.adaptedSessions >= 1);
    assert.ok(snap.meanEffectiveWaitMs < 60_000);
    assert.equal((await retry).text, `<body xmlns='${HTTPBIND}'/>`);
    // The next held request comes back before the cut: before the held request of a
    // session whose wait (1 s) is above the cut, sent at the same moment.
    const ref = new RawBosh(url);
    await ref.create({ wait: '1' });
    const order: string[] = [];
    const [r] = await Promise.all([b.send().then((x) => (order.push('adapted'), x)), ref.send().then(() => order.push('wait=1'))]);
    assert.equal(r.text, `<body xmlns='${HTTPBIND}'/>`);
    assert.deepEqual(order, ['adapted', 'wait=1']);
  });

  test('the statistics count sessions, requests and terminations', async () => {
    await until('an idle session hibernated', () => ts.server.bosh!.snapshot().hibernations >= 1);
    const s = ts.server.bosh!.snapshot();
    assert.ok(s.sessionsCreated > 5);
    assert.ok(s.requests > s.sessionsCreated);
    assert.ok(s.terminations.client >= 1);
    assert.ok(s.terminations['item-not-found'] >= 1);
    assert.ok(s.terminations['policy-violation'] >= 1);
    assert.ok(s.hibernations >= 1);
    assert.equal(typeof s.heldRequests, 'number');
  });
});

describe('HTTP', () => {
  test('malformed XML, a wrong content type and an oversized body are refused without touching other sessions', async () => {
    const b = new RawBosh(url);
    await b.create({ wait: '2' });
    const bad = await post(url, '<body xmlns="http://jabber.org/protocol/httpbind" rid="1"><unclosed></body>');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.attrs.condition, 'bad-request');
    const notBody = await post(url, "<iq xmlns='jabber:client'/>");
    assert.equal(notBody.status, 400);
    const json = await post(url, '{"rid":1}', { headers: { 'Content-Type': 'application/json' } });
    assert.equal(json.status, 400);
    const big = await post(url, `<body xmlns='${HTTPBIND}' rid='1'>${'x'.repeat(2 * 1024 * 1024)}</body>`);
    assert.equal(big.status, 413);
    // The other session is fine.
    const ok = await b.send();
    assert.equal(ok.status, 200);
    assert.notEqual(ok.body.attrs.type, 'terminate');
  });

  test('CORS: preflight for an allowed origin, refusal for others', async () => {
    const pre = await fetch(url, { method: 'OPTIONS', headers: { Origin: 'https://portal.example.test', 'Access-Control-Request-Method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://portal.example.test');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    const b = new RawBosh(url);
    const r = await post(url, b.body(b.rid, { to: DOMAIN, wait: '5', hold: '1', ver: '1.6' }), { headers: { Origin: 'https://portal.example.test' } });
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://portal.example.test');
    const evil = await fetch(url, { method: 'POST', headers: { Origin: 'https://evil.example', 'Content-Type': 'text/xml' }, body: `<body xmlns='${HTTPBIND}' rid='1' to='${DOMAIN}'/>` });
    assert.equal(evil.status, 403);
  });

  test('/bosh answers like /http-bind, and GET explains the endpoint', async () => {
    const b = new RawBosh(`${ts.httpUrl}/bosh`);
    const r = await b.create({ wait: '2' });
    assert.ok(r.body.attrs.sid);
    const get = await fetch(url);
    assert.equal(get.status, 200);
    assert.match(await get.text(), /BOSH/);
  });
});
