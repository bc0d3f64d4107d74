/**
 * Message archive (XEP-0313 with RSM XEP-0059 and stanza ids XEP-0359) through real
 * clients over TCP and WebSocket: paging through 250 messages with exact ids, queries by
 * with/start/end/ids/after-id/before-id, preferences, archiving before delivery (a client
 * that reconnects catches up), stanza-id rules, errors, retention.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { connectWebSocket, errorCondition, forwardedMessage, mamQuery, stanzaId, MAM, SID } from './helpers/mam.js';
import { SqlArchiveStore } from '../src/modules/mam/store-sql.js';

let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;

async function tcp(username: string, resource = 'tcp', presence = true): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource, presence });
  open.push(c);
  return c;
}

async function ws(username: string, resource = 'web', presence = true): Promise<TestClient> {
  const c = await connectWebSocket({ httpPort: ts.httpPort, username, resource, presence });
  open.push(c);
  return c;
}

function chat(to: string, body: string, extra: Element[] = []): Element {
  return xml('message', { to, type: 'chat', id: `m-${body}` }, xml('body', null, body), ...extra);
}

/** Sends bodies one by one and waits until the receiver got them all; returns the messages as received. */
async function converse(from: TestClient, to: TestClient, toJid: string, bodies: string[]): Promise<Element[]> {
  for (const b of bodies) await from.send(chat(toJid, b));
  const got: Element[] = [];
  for (const b of bodies) got.push(await to.waitFor((el) => el.name === 'message' && el.getChildText('body') === b, 5000, `message ${b}`));
  return got;
}

before(async () => {
  ts = await startTestServer();
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivan', 'judy', 'kate']) await ts.addUser(u);
});

after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

test('the account announces mam:2, its extended queries and stanza ids', async () => {
  const c = await tcp('judy');
  const r = await c.iq(xml('iq', { type: 'get', to: jid('judy') }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = r.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
  for (const f of [MAM, `${MAM}#extended`, SID]) assert.ok(features.includes(f), `${f} in ${features.join(' ')}`);
});

test('250 messages page in fifties with exact ids, forwards and backwards, on both archives', async () => {
  const alice = await tcp('alice');
  const bob = await ws('bob');
  const bodies = Array.from({ length: 250 }, (_, i) => `hello ${i}`);
  const got = await converse(alice, bob, jid('bob'), bodies);
  // Every delivered message carries the recipient's archive id, in increasing order.
  const ids = got.map((m) => stanzaId(m, jid('bob'))!);
  assert.equal(new Set(ids).size, 250);
  assert.deepEqual([...ids].sort(), ids);

  // The recipient pages forwards.
  let afterId: string | undefined;
  for (let page = 0; page < 5; page++) {
    const r = await mamQuery(bob, { with: jid('alice'), max: 50, after: afterId });
    assert.equal(r.reply.attrs.type, 'result');
    assert.deepEqual(r.ids, ids.slice(page * 50, page * 50 + 50));
    assert.deepEqual(r.bodies, bodies.slice(page * 50, page * 50 + 50));
    assert.equal(r.first, ids[page * 50]);
    assert.equal(r.firstIndex, page * 50);
    assert.equal(r.last, ids[page * 50 + 49]);
    assert.equal(r.count, 250);
    assert.equal(r.complete, page === 4, `complete on page ${page}`);
    afterId = r.last;
  }
  const beyond = await mamQuery(bob, { with: jid('alice'), max: 50, after: afterId });
  assert.deepEqual(beyond.ids, []);
  assert.equal(beyond.complete, true);
  assert.equal(beyond.count, 250);
  assert.equal(beyond.first, undefined);

  // A result is the forwarded message with its delay stamp.
  const one = await mamQuery(bob, { ids: [ids[7]!] });
  const fwd = one.results[0]!.getChild('result', MAM)!.getChild('forwarded', 'urn:xmpp:forward:0')!;
  assert.match(fwd.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const inner = forwardedMessage(one.results[0]!)!;
  assert.equal(inner.attrs.from, alice.jid);
  assert.equal(inner.attrs.to, jid('bob'));
  assert.equal(inner.attrs.id, 'm-hello 7');
  assert.equal(inner.getChildText('body'), 'hello 7');

  // The sender pages backwards from the end, as mobile clients do; its archive has the same ids.
  let beforeId = '';
  for (let page = 4; page >= 0; page--) {
    const r = await mamQuery(alice, { with: jid('bob'), max: 50, before: beforeId });
    assert.deepEqual(r.ids, ids.slice(page * 50, page * 50 + 50));
    assert.equal(r.firstIndex, page * 50);
    assert.equal(r.count, 250);
    assert.equal(r.complete, page === 0, `complete on page ${page}`);
    beforeId = r.first!;
  }
  // flip-page (mam:2#extended) gives the last page newest first.
  const flipped = await mamQuery(alice, { with: jid('bob'), max: 50, before: '', flip: true });
  assert.deepEqual(flipped.ids, ids.slice(200).reverse());
  assert.equal(flipped.first, ids[249]);
  // RSM index jumps into the set; max above the limit is clamped to the page size.
  const indexed = await mamQuery(bob, { with: jid('alice'), max: 10, index: 120 });
  assert.deepEqual(indexed.ids, ids.slice(120, 130));
  assert.equal(indexed.firstIndex, 120);
  const clamped = await mamQuery(bob, { with: jid('alice'), max: 500 });
  assert.equal(clamped.ids.length, 50);
  const counted = await mamQuery(bob, { with: jid('alice'), max: 0 });
  assert.deepEqual([counted.ids.length, counted.count], [0, 250]);
});

test('queries filter by with (bare and full), start, end, after-id, before-id and ids', async () => {
  const carol = await tcp('carol');
  const dave = await tcp('dave', 'desk');
  const erin = await ws('erin');
  const t0 = new Date(Date.now() - 1).toISOString();
  const fromDave = await converse(dave, carol, jid('carol'), ['d1', 'd2', 'd3']);
  await new Promise((r) => setTimeout(r, 20));
  const mid = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const fromErin = await converse(erin, carol, jid('carol'), ['e1', 'e2']);
  await converse(carol, dave, `${jid('dave')}/desk`, ['c1']);
  const idsD = fromDave.map((m) => stanzaId(m, jid('carol'))!);
  const idsE = fromErin.map((m) => stanzaId(m, jid('carol'))!);

  assert.deepEqual((await mamQuery(carol, { with: jid('dave') })).bodies, ['d1', 'd2', 'd3', 'c1']);
  assert.deepEqual((await mamQuery(carol, { with: `${jid('dave')}/desk` })).bodies, ['d1', 'd2', 'd3', 'c1']);
  assert.deepEqual((await mamQuery(carol, { with: `${jid('dave')}/other` })).bodies, []);
  assert.deepEqual((await mamQuery(carol, { with: jid('erin') })).bodies, ['e1', 'e2']);
  assert.deepEqual((await mamQuery(carol, { start: t0, end: mid })).bodies, ['d1', 'd2', 'd3']);
  assert.deepEqual((await mamQuery(carol, { start: mid })).bodies, ['e1', 'e2', 'c1']);
  assert.deepEqual((await mamQuery(carol, { end: t0 })).bodies, []);
  assert.deepEqual((await mamQuery(carol, { afterId: idsD[0] })).bodies, ['d2', 'd3', 'e1', 'e2', 'c1']);
  assert.deepEqual((await mamQuery(carol, { afterId: idsD[0], beforeId: idsE[1] })).bodies, ['d2', 'd3', 'e1']);
  const byIds = await mamQuery(carol, { ids: [idsE[1]!, idsD[1]!] });
  assert.deepEqual(byIds.bodies, ['d2', 'e2']);
  assert.equal(byIds.count, 2);
  const whole = await mamQuery(carol);
  assert.equal(whole.count, 6);
  assert.equal(whole.complete, true);
  // Metadata (mam:2#extended): the first and last message of the archive.
  const md = await carol.iq(xml('iq', { type: 'get' }, xml('metadata', { xmlns: MAM })));
  assert.equal(md.getChild('metadata', MAM)!.getChild('start')!.attrs.id, idsD[0]);
  assert.equal(md.getChild('metadata', MAM)!.getChild('end')!.attrs.id, whole.last);
});

test('bad queries get the errors the XEPs name', async () => {
  const c = await tcp('frank');
  const other = await tcp('gina');
  await converse(other, c, jid('frank'), ['f1']);
  const unknownId = await mamQuery(c, { after: '00000000000' });
  assert.equal(errorCondition(unknownId.reply), 'item-not-found');
  assert.equal(errorCondition((await mamQuery(c, { before: 'nonsense' })).reply), 'item-not-found');
  assert.equal(errorCondition((await mamQuery(c, { afterId: 'zzzzzzzzzzz' })).reply), 'item-not-found');
  assert.equal(errorCondition((await mamQuery(c, { start: 'yesterday' })).reply), 'bad-request');
  assert.equal(errorCondition((await mamQuery(c, { end: '2026-02-30T00:00:00Z' })).reply), 'bad-request');
  assert.equal(errorCondition((await mamQuery(c, { with: 'a@b@c' })).reply), 'bad-request');
  assert.equal(errorCondition((await mamQuery(c, { fields: [['colour', 'blue']] })).reply), 'bad-request');
  const badMax = await c.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: MAM }, xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, xml('max', null, '-1')))));
  assert.equal(errorCondition(badMax), 'bad-request');
  // Someone else's archive does not exist for the asker.
  const foreign = await c.iq(xml('iq', { type: 'set', to: jid('gina') }, xml('query', { xmlns: MAM })));
  assert.equal(errorCondition(foreign), 'service-unavailable');
  // The form is there for the asking.
  const form = await c.iq(xml('iq', { type: 'get' }, xml('query', { xmlns: MAM })));
  const vars = form.getChild('query', MAM)!.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => f.attrs.var);
  assert.deepEqual(vars, ['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']);
});

test('preferences: default never with an always list, roster default, and get returns what was set', async () => {
  const hank = await tcp('hank');
  const ivan = await tcp('ivan');
  const gina = await ws('gina', 'web2');
  const initial = await hank.iq(xml('iq', { type: 'get' }, xml('prefs', { xmlns: MAM })));
  assert.equal(initial.getChild('prefs', MAM)!.attrs.default, 'always');
  const set = await hank.iq(
    xml('iq', { type: 'set' }, xml('prefs', { xmlns: MAM, default: 'never' }, xml('always', null, xml('jid', null, jid('ivan'))), xml('never'))),
  );
  assert.equal(set.attrs.type, 'result');
  const now = (await hank.iq(xml('iq', { type: 'get' }, xml('prefs', { xmlns: MAM })))).getChild('prefs', MAM)!;
  assert.equal(now.attrs.default, 'never');
  assert.deepEqual(now.getChild('always')!.getChildren('jid').map((j) => j.text()), [jid('ivan')]);

  const [fromIvan] = await converse(ivan, hank, jid('hank'), ['archived']);
  const [fromGina] = await converse(gina, hank, jid('hank'), ['not archived']);
  assert.ok(stanzaId(fromIvan!, jid('hank')));
  assert.equal(stanzaId(fromGina!, jid('hank')), undefined);
  assert.deepEqual((await mamQuery(hank)).bodies, ['archived']);
  // Gina's own archive (default always) has the message she sent.
  assert.deepEqual((await mamQuery(gina, { with: jid('hank') })).bodies, ['not archived']);

  // roster: only contacts in the roster.
  await hank.iq(xml('iq', { type: 'set' }, xml('prefs', { xmlns: MAM, default: 'roster' })));
  await hank.iq(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: jid('gina') }))));
  await converse(gina, hank, jid('hank'), ['gina in roster']);
  await converse(ivan, hank, jid('hank'), ['ivan not in roster']);
  assert.deepEqual((await mamQuery(hank)).bodies, ['archived', 'gina in roster']);

  const bad = await hank.iq(xml('iq', { type: 'set' }, xml('prefs', { xmlns: MAM, default: 'sometimes' })));
  assert.equal(errorCondition(bad), 'bad-request');
});

test('a message is archived before it is delivered, and a client that comes back catches up from the archive', async () => {
  const erin = await tcp('kate', 'phone');
  const dave = await ws('dave', 'web');
  // The moment a message arrives, it is already in the archive.
  await dave.send(chat(jid('kate'), 'first'));
  const first = await erin.waitFor((el) => el.getChildText('body') === 'first');
  const sid = stanzaId(first, jid('kate'))!;
  const lookup = await mamQuery(erin, { ids: [sid] });
  assert.deepEqual(lookup.bodies, ['first']);

  await erin.stop();
  // Offline: the messages are archived and also stored for offline delivery.
  for (const b of ['while away 1', 'while away 2', 'while away 3']) await dave.send(chat(jid('kate'), b));
  const store = new SqlArchiveStore(ts.server.core.storage);
  await until('the offline messages are archived', async () => (await store.count(DOMAIN, 'kate', {})) >= 4);

  // Back without presence (so offline storage is not flushed): the archive has everything after the last id seen.
  const back = await tcp('kate', 'phone', false);
  const catchUp = await mamQuery(back, { afterId: sid });
  assert.deepEqual(catchUp.bodies, ['while away 1', 'while away 2', 'while away 3']);
  assert.equal(catchUp.complete, true);
  // Offline storage still delivers them, with the same stanza-ids (clients deduplicate on them).
  await back.send(xml('presence'));
  const offline = await back.waitFor((el) => el.getChildText('body') === 'while away 2');
  assert.equal(stanzaId(offline, jid('kate')), catchUp.ids[1]);
});

test('a client cannot forge a stanza-id of this server; origin-id is kept', async () => {
  const alice = await tcp('alice', 'forger');
  const bob = await tcp('bob', 'victim');
  await alice.send(
    chat(jid('bob'), 'forged', [
      xml('stanza-id', { xmlns: SID, by: jid('bob'), id: 'fake' }),
      xml('stanza-id', { xmlns: SID, by: DOMAIN, id: 'fake2' }),
      xml('origin-id', { xmlns: SID, id: 'origin-1' }),
    ]),
  );
  const m = await bob.waitFor((el) => el.getChildText('body') === 'forged');
  const sids = m.getChildren('stanza-id', SID);
  assert.equal(sids.length, 1);
  assert.notEqual(sids[0]!.attrs.id, 'fake');
  assert.equal(m.getChild('origin-id', SID)?.attrs.id, 'origin-1');
  const archived = forwardedMessage((await mamQuery(bob, { ids: [sids[0]!.attrs.id!] })).results[0]!)!;
  assert.equal(archived.getChild('origin-id', SID)?.attrs.id, 'origin-1');
  assert.equal(archived.getChildren('stanza-id', SID).length, 0);
});

test('chat states, no-store hints, headlines and errors are not archived', async () => {
  const a = await tcp('ivan', 'states');
  const b = await tcp('judy', 'states');
  const before = (await mamQuery(b, { with: jid('ivan') })).count;
  await a.send(xml('message', { to: jid('judy'), type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
  await a.send(xml('message', { to: jid('judy'), type: 'chat' }, xml('body', null, 'secret'), xml('no-store', { xmlns: 'urn:xmpp:hints' })));
  await a.send(xml('message', { to: jid('judy'), type: 'headline' }, xml('body', null, 'news')));
  await a.send(xml('message', { to: jid('judy'), type: 'chat' }, xml('body', null, 'kept')));
  const kept = await b.waitFor((el) => el.getChildText('body') === 'kept');
  const secret = await b.waitFor((el) => el.getChildText('body') === 'secret');
  assert.equal(stanzaId(secret, jid('judy')), undefined);
  assert.ok(stanzaId(kept, jid('judy')));
  const after = await mamQuery(b, { with: jid('ivan') });
  assert.equal(after.count, (before ?? 0) + 1);
  assert.deepEqual(after.bodies.slice(-1), ['kept']);
});

test('retention: a sweep deletes messages older than the limit', async () => {
  const short = await startTestServer({ mam: { retention: '1h', sweepInterval: '50ms' } });
  try {
    await short.addUser('old');
    await short.addUser('new');
    const store = new SqlArchiveStore(short.server.core.storage);
    const twoHoursAgo = Date.now() - 2 * 3600_000;
    await store.append(DOMAIN, 'old', [
      { id: twoHoursAgo * 1024, with: jid('new'), withResource: '', direction: 'in', stanza: `<message xmlns='jabber:client'><body>ancient</body></message>`, createdAt: twoHoursAgo },
    ]);
    const a = await connectClient({ port: short.port, username: 'new' });
    const b = await connectClient({ port: short.port, username: 'old' });
    try {
      await a.send(chat(jid('old'), 'fresh'));
      await b.waitFor((el) => el.getChildText('body') === 'fresh');
      let r = await mamQuery(b);
      for (let i = 0; i < 50 && r.count !== 1; i++) {
        await new Promise((res) => setTimeout(res, 20));
        r = await mamQuery(b);
      }
      assert.deepEqual(r.bodies, ['fresh']);
    } finally {
      await a.stop();
      await b.stop();
    }
  } finally {
    await short.stop();
  }
});
