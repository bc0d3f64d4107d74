/**
 * The portal's events API (/api/v1/) from the outside: authentication (bearer, signed
 * requests, replays, source addresses), every event with real clients watching what it
 * does, every kind of bad input, repeated event ids, prebind with a raw BOSH client
 * attaching to the session, and login tokens.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { RawBosh } from './helpers/bosh.js';
import { signRequest } from '../src/portal/tokens.js';

const SECRET = 'portal-test-secret-0123456789abcdef';
const R = 'jabber:iq:roster';
let ts: TestServer;
const open: TestClient[] = [];
let seq = 0;

const jid = (u: string) => `${u}@${DOMAIN}`;
const eventId = () => `ev-${process.pid}-${++seq}-${Math.random().toString(36).slice(2)}`;

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function api(path: string, body: unknown, opts: { auth?: 'bearer' | 'signed' | 'none'; headers?: Record<string, string>; raw?: string; server?: TestServer } = {}): Promise<Reply> {
  const text = opts.raw ?? JSON.stringify(body);
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...opts.headers };
  const auth = opts.auth ?? 'bearer';
  if (auth === 'bearer') headers.Authorization = `Bearer ${SECRET}`;
  if (auth === 'signed') {
    const ts = Math.floor(Date.now() / 1000);
    headers['X-Parley-Timestamp'] = String(ts);
    headers['X-Parley-Signature'] = signRequest(SECRET, 'POST', path, ts, text);
  }
  const res = await fetch(`${(opts.server ?? ts).httpUrl}${path}`, { method: 'POST', headers, body: text });
  const t = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(t) as Record<string, unknown>;
  } catch {
    parsed = { text: t };
  }
  return { status: res.status, body: parsed };
}

const event = (type: string, fields: Record<string, unknown>) => api('/api/v1/events', { id: eventId(), type, ...fields });

async function login(username: string, resource = 'web', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence });
  open.push(c);
  return c;
}

async function rosterOf(c: TestClient): Promise<Element[]> {
  const r = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: R })));
  assert.equal(r.attrs.type, 'result');
  return r.getChild('query', R)!.getChildren('item');
}

function rosterPush(c: TestClient, contact: string, pred: (item: Element) => boolean = () => true): Promise<Element> {
  return c
    .waitFor((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', R)?.getChild('item')?.attrs.jid === contact && pred(el.getChild('query', R)!.getChild('item')!), 8000, `roster push for ${contact}`)
    .then((el) => el.getChild('query', R)!.getChild('item')!);
}

/** The stream error a client got (xmpp.js reports it as an error with a condition). */
async function streamError(c: TestClient): Promise<string> {
  const found = () => c.errors.find((err) => (err as { condition?: string }).condition !== undefined) as { condition?: string } | undefined;
  await until(`${c.jid}: a stream error (errors: ${c.errors.map(String).join(', ')})`, () => found() !== undefined, 5000);
  return found()!.condition!;
}

before(async () => {
  ts = await startTestServer({ portal: { secret: SECRET }, listen: { c2s: { requireTls: true } } });
  for (const u of ['ann', 'ben', 'cid', 'dot', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jon', 'kim', 'lou', 'max', 'ned']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

// ------------------------------------------------------------------ authentication

test('requests without the secret, with a wrong one or a wrong signature get 401', async () => {
  const body = { id: eventId(), type: 'broadcast', body: 'x' };
  const none = await api('/api/v1/events', body, { auth: 'none' });
  assert.equal(none.status, 401);
  assert.match(String(none.body.problem), /Bearer|X-Parley-Signature/);
  const wrong = await api('/api/v1/events', body, { auth: 'none', headers: { Authorization: 'Bearer not-the-secret' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.problem, 'wrong bearer secret');
  const t = Math.floor(Date.now() / 1000);
  const badSig = await api('/api/v1/events', body, { auth: 'none', headers: { 'X-Parley-Timestamp': String(t), 'X-Parley-Signature': signRequest('another-secret-0123456789', 'POST', '/api/v1/events', t, JSON.stringify(body)) } });
  assert.equal(badSig.status, 401);
  assert.equal(badSig.body.problem, 'wrong signature');
  // Signed for another body: the signature covers the body.
  const otherBody = await api('/api/v1/events', body, { auth: 'none', headers: { 'X-Parley-Timestamp': String(t), 'X-Parley-Signature': signRequest(SECRET, 'POST', '/api/v1/events', t, '{}') } });
  assert.equal(otherBody.status, 401);
});

test('a signed request is accepted once; an expired timestamp or a replay is refused', async () => {
  const text = JSON.stringify({ id: eventId(), type: 'broadcast', body: 'signed hello' });
  const t = Math.floor(Date.now() / 1000);
  const headers = { 'X-Parley-Timestamp': String(t), 'X-Parley-Signature': signRequest(SECRET, 'POST', '/api/v1/events', t, text) };
  const ok = await api('/api/v1/events', null, { auth: 'none', raw: text, headers });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.applied, true);
  const replay = await api('/api/v1/events', null, { auth: 'none', raw: text, headers });
  assert.equal(replay.status, 401);
  assert.match(String(replay.body.problem), /replay/);
  const old = t - 3600;
  const expired = await api('/api/v1/events', null, { auth: 'none', raw: text, headers: { 'X-Parley-Timestamp': String(old), 'X-Parley-Signature': signRequest(SECRET, 'POST', '/api/v1/events', old, text) } });
  assert.equal(expired.status, 401);
  assert.match(String(expired.body.problem), /expired or replayed/);
});

test('the API is off without a secret, and answers only the configured addresses', async () => {
  const plain = await startTestServer();
  const far = await startTestServer({ portal: { secret: SECRET, api: { allowFrom: ['10.0.0.0/8'] } } });
  try {
    const off = await api('/api/v1/events', { id: 'x', type: 'broadcast', body: 'x' }, { server: plain });
    assert.equal(off.status, 404);
    const refused = await api('/api/v1/events', { id: 'x', type: 'broadcast', body: 'x' }, { server: far });
    assert.equal(refused.status, 403);
    assert.match(String(refused.body.problem), /allowFrom/);
  } finally {
    await plain.stop();
    await far.stop();
  }
});

// ------------------------------------------------------------------ bad input

test('bad input gets 4xx naming the field and the problem', async () => {
  const cases: Array<[unknown, number, string, string | null]> = [
    ['{not json', 400, 'body', 'raw'],
    [[1, 2], 400, 'body', null],
    [{ type: 'broadcast', body: 'x' }, 400, 'id', null],
    [{ id: eventId(), type: 'party' }, 400, 'type', null],
    [{ id: eventId(), type: 'notification', user: 'nobody-here', body: 'x' }, 404, 'user', null],
    [{ id: eventId(), type: 'notification', user: 'ann', body: '' }, 400, 'body', null],
    [{ id: eventId(), type: 'notification', user: 'ann@elsewhere.example', body: 'x' }, 400, 'user', null],
    [{ id: eventId(), type: 'notification', user: 'a<b', body: 'x' }, 400, 'user', null],
    [{ id: eventId(), type: 'notification', user: 'ann', body: 'x', url: 'javascript:alert(1)' }, 400, 'url', null],
    [{ id: eventId(), type: 'friendship.added', user: 'ann' }, 400, 'friend', null],
    [{ id: eventId(), type: 'friendship.added', user: 'ann', friend: 'ann' }, 400, 'friend', null],
    [{ id: eventId(), type: 'profile.changed', user: 'ann', avatar: { type: 'text/html', data: 'AAAA' } }, 400, 'avatar.type', null],
    [{ id: eventId(), type: 'profile.changed', user: 'ann', avatar: { type: 'image/png', data: 'not base64!' } }, 400, 'avatar.data', null],
    [{ id: 'x'.repeat(200), type: 'broadcast', body: 'x' }, 400, 'id', null],
    [{ id: eventId(), type: 'broadcast', body: 'bell \u0007' }, 400, 'body', null],
  ];
  for (const [body, status, field, raw] of cases) {
    const r = raw ? await api('/api/v1/events', null, { raw: body as string }) : await api('/api/v1/events', body);
    assert.equal(r.status, status, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
    assert.equal(r.body.field, field, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
    assert.ok(typeof r.body.problem === 'string' && r.body.problem.length > 0);
  }
  const unknownPath = await api('/api/v1/nothing', {});
  assert.equal(unknownPath.status, 404);
  const get = await fetch(`${ts.httpUrl}/api/v1/events`, { headers: { Authorization: `Bearer ${SECRET}` } });
  assert.equal(get.status, 405);
});

test('a repeated event id is applied once', async () => {
  const c = await login('ann');
  const id = eventId();
  const first = await api('/api/v1/events', { id, type: 'notification', user: 'ann', body: 'only once' });
  assert.equal(first.status, 200);
  assert.equal(first.body.applied, true);
  assert.equal(first.body.delivered, 1);
  const again = await api('/api/v1/events', { id, type: 'notification', user: 'ann', body: 'only once' });
  assert.equal(again.status, 200);
  assert.equal(again.body.applied, false);
  assert.equal(again.body.duplicate, true);
  await c.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'only once');
  await c.expectNone((el) => el.name === 'message' && el.getChildText('body') === 'only once', 400, 'the repeated notification');
});

// ------------------------------------------------------------------ events

test('friendship.added: both rosters get the item with subscription both, and presence is exchanged', async () => {
  const ben = await login('ben');
  const cid = await login('cid');
  await rosterOf(ben);
  await rosterOf(cid);
  const pushBen = rosterPush(ben, jid('cid'), (i) => i.attrs.subscription === 'both');
  const pushCid = rosterPush(cid, jid('ben'), (i) => i.attrs.subscription === 'both');
  const r = await event('friendship.added', { user: 'ben', friend: 'cid', userName: 'Ben B.', friendName: 'Cid C.', groups: ['Friends'] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const itemAtBen = await pushBen;
  assert.equal(itemAtBen.attrs.name, 'Cid C.');
  assert.equal(itemAtBen.getChildText('group'), 'Friends');
  const itemAtCid = await pushCid;
  assert.equal(itemAtCid.attrs.name, 'Ben B.');
  await ben.presence((p) => p.attrs.from?.startsWith(jid('cid')) === true && p.attrs.type === undefined, 'cid available at ben');
  await cid.presence((p) => p.attrs.from?.startsWith(jid('ben')) === true && p.attrs.type === undefined, 'ben available at cid');
  // A login afterwards sees the friend in the roster and gets its presence.
  const ben2 = await login('ben', 'second');
  assert.deepEqual((await rosterOf(ben2)).map((i) => [i.attrs.jid, i.attrs.subscription]), [[jid('cid'), 'both']]);
  await ben2.presence((p) => p.attrs.from?.startsWith(jid('cid')) === true && p.attrs.type === undefined, 'cid available at the new resource');

  const goneBen = rosterPush(ben, jid('cid'), (i) => i.attrs.subscription === 'remove');
  const goneCid = rosterPush(cid, jid('ben'), (i) => i.attrs.subscription === 'remove');
  const unavailable = ben.presence((p) => p.attrs.from?.startsWith(jid('cid')) === true && p.attrs.type === 'unavailable', 'cid unavailable at ben');
  const removed = await event('friendship.removed', { user: 'cid', friend: 'ben' });
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  await goneBen;
  await goneCid;
  await unavailable;
  assert.deepEqual(await rosterOf(ben2), []);
});

test('user.created makes an account that receives messages (stored offline until it logs in)', async () => {
  const r = await event('user.created', { user: 'newbie' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.created, true);
  assert.equal(await ts.server.core.users.exists(DOMAIN, 'newbie'), true);
  const again = await event('user.created', { user: 'newbie' });
  assert.equal(again.body.created, false);
  // It has no password of Parley's: only the portal can let it in (tokens, prebind).
  const dot = await login('dot');
  await dot.send(xml('message', { to: jid('newbie'), type: 'chat', id: 'm1' }, xml('body', null, 'welcome')));
  await dot.expectNone((el) => el.name === 'message' && el.attrs.type === 'error', 500, 'a bounce');
  const pre = await api('/api/v1/prebind', { user: 'newbie' });
  assert.equal(pre.status, 200, JSON.stringify(pre.body));
  const bosh = new RawBosh(`${ts.httpUrl}/http-bind`, pre.body.rid as number);
  bosh.sid = pre.body.sid as string;
  const first = await bosh.send({}, "<presence xmlns='jabber:client'/>");
  const msg = await bosh.until(first, 'message', (m) => m.getChildText('body') === 'welcome');
  assert.equal(msg.attrs.from, `${jid('dot')}/web`);
});

test('user.banned closes the sessions with policy-violation and refuses prebind until user.unbanned', async () => {
  const eve = await login('eve');
  const r = await event('user.banned', { user: 'eve', reason: 'spam' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.sessionsClosed, 1);
  assert.equal(await streamError(eve), 'policy-violation');
  const pre = await api('/api/v1/prebind', { user: 'eve' });
  assert.equal(pre.status, 403);
  assert.match(String(pre.body.problem), /banned \(spam\)/);
  assert.deepEqual(await ts.server.core.users.getFlag(DOMAIN, 'eve'), { state: 'banned', reason: 'spam' });
  const un = await event('user.unbanned', { user: 'eve' });
  assert.equal(un.body.wasBanned, true);
  assert.equal((await api('/api/v1/prebind', { user: 'eve' })).status, 200);
});

test('user.deleted closes the sessions, removes the data and the friends lose the user', async () => {
  const fay = await login('fay');
  const gus = await login('gus');
  await rosterOf(gus);
  const friends = rosterPush(gus, jid('fay'), (i) => i.attrs.subscription === 'both');
  assert.equal((await event('friendship.added', { user: 'fay', friend: 'gus' })).status, 200);
  await friends;
  const removed = rosterPush(gus, jid('fay'), (i) => i.attrs.subscription === 'remove');
  const r = await event('user.deleted', { user: 'fay' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.dataRemoved, true);
  assert.equal(await streamError(fay), 'not-authorized');
  await removed;
  assert.equal(await ts.server.core.users.exists(DOMAIN, 'fay'), false);
  // Events for the deleted user now say it is unknown.
  assert.equal((await event('notification', { user: 'fay', body: 'x' })).status, 404);
});

test('profile.changed stores the vCard, and a new avatar goes out in presence to friends', async () => {
  const hal = await login('hal');
  const ivy = await login('ivy');
  await rosterOf(ivy);
  const friends = rosterPush(ivy, jid('hal'), (i) => i.attrs.subscription === 'both');
  assert.equal((await event('friendship.added', { user: 'hal', friend: 'ivy' })).status, 200);
  await friends;
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000a49444154789c6300010000050001', 'hex').toString('base64');
  const withHash = ivy.presence((p) => p.attrs.from?.startsWith(jid('hal')) === true && p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo')?.length === 40, 'hal presence with a photo hash');
  const r = await event('profile.changed', { user: 'hal', fullName: 'Hal Halloran', nickname: 'hal9000', email: 'hal@example.org', avatar: { type: 'image/png', data: png } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(typeof r.body.avatarHash, 'string');
  assert.equal(r.body.nickPublished, true);
  const p = await withHash;
  assert.equal(p.getChild('x', 'vcard-temp:x:update')!.getChildText('photo'), r.body.avatarHash);
  const v = await ivy.iq(xml('iq', { type: 'get', to: jid('hal') }, xml('vCard', { xmlns: 'vcard-temp' })));
  assert.equal(v.attrs.type, 'result');
  assert.equal(v.getChild('vCard')!.getChildText('FN'), 'Hal Halloran');
  assert.equal(v.getChild('vCard')!.getChildText('NICKNAME'), 'hal9000');
  assert.equal(v.getChild('vCard')!.getChild('PHOTO')!.getChildText('BINVAL'), png);
  void hal;
});

test('notification: a headline to every online resource, stored for an offline user', async () => {
  const a = await login('jon', 'one');
  const b = await login('jon', 'two');
  const r = await event('notification', { user: 'jon', subject: 'New comment', body: 'Kim commented on your photo', url: 'https://portal.example/p/1' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.delivered, 2);
  for (const c of [a, b]) {
    const m = await c.waitFor((el) => el.name === 'message' && el.attrs.type === 'headline' && el.getChildText('subject') === 'New comment');
    assert.equal(m.attrs.from, DOMAIN);
    assert.equal(m.getChildText('body'), 'Kim commented on your photo');
    assert.equal(m.getChild('x', 'jabber:x:oob')!.getChildText('url'), 'https://portal.example/p/1');
  }
  const off = await event('notification', { user: 'kim', body: 'while you were away' });
  assert.equal(off.body.delivered, 0);
  assert.equal(off.body.stored, true);
  const kim = await login('kim');
  const m = await kim.waitFor((el) => el.name === 'message' && el.getChildText('body') === 'while you were away', 8000, 'the stored notification');
  assert.equal(m.attrs.type, 'headline');
});

test('broadcast: a headline to every online user', async () => {
  const lou = await login('lou');
  const max = await login('max');
  const r = await event('broadcast', { subject: 'Maintenance', body: 'The portal restarts at 03:00' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok((r.body.deliveredHere as number) >= 2);
  for (const c of [lou, max]) await c.waitFor((el) => el.name === 'message' && el.attrs.type === 'headline' && el.getChildText('body') === 'The portal restarts at 03:00');
});

// ------------------------------------------------------------------ prebind and tokens

test('prebind gives {jid, sid, rid}; a page attaches with them and chats without credentials', async () => {
  const ned = await login('ned');
  const r = await api('/api/v1/prebind', { user: 'lou', resource: 'portal-page' }, { auth: 'signed' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.jid, `${jid('lou')}/portal-page`);
  assert.match(String(r.body.sid), /^[A-Za-z0-9_-]{22}$/);
  assert.equal(typeof r.body.rid, 'number');
  const bosh = new RawBosh(`${ts.httpUrl}/http-bind`, r.body.rid as number);
  bosh.sid = r.body.sid as string;
  // The request is held (nothing to answer yet): not awaited.
  const held = bosh.send({}, `<message xmlns='jabber:client' to='${jid('ned')}' type='chat' id='pb1'><body>from a prebound page</body></message>`);
  const got = await ned.message(jid('lou'));
  assert.equal(got.attrs.from, `${jid('lou')}/portal-page`);
  assert.equal(got.getChildText('body'), 'from a prebound page');
  // A rid out of the window, or an unknown sid, does not get in.
  await ned.send(xml('message', { to: got.attrs.from, type: 'chat', id: 'pb2' }, xml('body', null, 'answer to the page')));
  const answer = await bosh.until(await held, 'message');
  assert.equal(answer.getChildText('body'), 'answer to the page');
  const stranger = new RawBosh(`${ts.httpUrl}/http-bind`, (r.body.rid as number) + 1000);
  stranger.sid = r.body.sid as string;
  const refused = await stranger.send();
  assert.equal(refused.body.attrs.type, 'terminate');
  const unknown = await api('/api/v1/prebind', { user: 'nobody-at-all' });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.field, 'user');
});

test('tokens: the API signs a login token for a user', async () => {
  const r = await api('/api/v1/tokens', { user: 'max', ttl: 120 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.match(String(r.body.token), /^pt1\.\d+\.[A-Za-z0-9_-]{43}$/);
  assert.equal(r.body.jid, jid('max'));
  const tooLong = await api('/api/v1/tokens', { user: 'max', ttl: 10 * 24 * 3600 });
  assert.equal(tooLong.status, 400);
  assert.equal(tooLong.body.field, 'ttl');
});
