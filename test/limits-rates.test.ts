/**
 * Limits on what a logged-in user sends (docs/limits.md): messages per second (token
 * bucket per account), broadcast presence per minute, directed presences per session.
 * Each limit is hit by a real client, which gets the defined error; the counter moves;
 * another user is not affected.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { waitUntil } from './helpers/limits.js';

const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const jid = (u: string) => `${u}@${DOMAIN}`;
const servers: TestServer[] = [];
const clients: TestClient[] = [];

async function server(limits: Record<string, unknown>, users: string[]): Promise<TestServer> {
  const ts = await startTestServer({ limits });
  servers.push(ts);
  for (const u of users) await ts.addUser(u);
  return ts;
}

async function client(ts: TestServer, username: string, resource = 'test'): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource });
  clients.push(c);
  return c;
}

function errorOf(el: Element): { type: string; condition: string; text: string } {
  const e = el.getChild('error')!;
  const cond = e.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text');
  return { type: e.attrs.type!, condition: cond?.name ?? '', text: e.getChildText('text', STANZAS) ?? '' };
}

after(async () => {
  for (const c of clients) await c.stop();
  for (const s of servers) await s.stop();
});

test('messages over the per-account rate are bounced with policy-violation (wait), none is lost, other senders pass', async () => {
  const ts = await server({ messagesPerSecond: 1, messageBurst: 3 }, ['alice', 'bob', 'carol']);
  const alice = await client(ts, 'alice');
  const alice2 = await client(ts, 'alice', 'second');
  const bob = await client(ts, 'bob');
  const carol = await client(ts, 'carol');
  const N = 8;
  // Both of alice's resources draw on the same bucket.
  for (let i = 0; i < N; i++) await (i % 2 ? alice2 : alice).send(xml('message', { to: jid('bob'), type: 'chat', id: `m${i}` }, xml('body', null, `hello ${i}`)));
  const delivered = () => bob.received.filter((el) => el.name === 'message' && el.attrs.from?.startsWith(jid('alice')) && el.attrs.type === 'chat');
  const bounced = () => [...alice.received, ...alice2.received].filter((el) => el.name === 'message' && el.attrs.type === 'error');
  await waitUntil(() => delivered().length + bounced().length === N, 10_000, () => `${N} messages delivered or bounced`);
  assert.ok(bounced().length >= N - 3 - 2, `most messages past the burst are bounced (${bounced().length})`);
  assert.ok(delivered().length >= 3, 'the burst goes through');
  for (const b of bounced()) {
    assert.deepEqual(
      { type: errorOf(b).type, condition: errorOf(b).condition },
      { type: 'wait', condition: 'policy-violation' },
    );
    assert.match(b.getChildText('body') ?? '', /^hello \d$/, 'the bounce carries the original message');
  }
  const ids = new Set([...delivered(), ...bounced()].map((el) => el.attrs.id));
  assert.equal(ids.size, N, 'every message is either delivered or bounced');
  assert.equal(ts.server.core.stats.limitHits['message-rate'], bounced().length);
  // Another user is not affected.
  await carol.send(xml('message', { to: jid('bob'), type: 'chat', id: 'c1' }, xml('body', null, 'from carol')));
  const m = await bob.waitFor((el) => el.name === 'message' && el.attrs.id === 'c1');
  assert.equal(m.getChildText('body'), 'from carol');
});

test('broadcast presence over the per-minute rate gets a presence error policy-violation (wait); unavailable is never refused', async () => {
  const ts = await server({ presencePerMinute: 2 }, ['dave', 'erin']);
  const dave = await client(ts, 'dave'); // initial presence: 1
  const erin = await client(ts, 'erin');
  await dave.send(xml('presence', { id: 'p2' }, xml('show', null, 'away'))); // 2
  await dave.send(xml('presence', { id: 'p3' }, xml('show', null, 'dnd'))); // over
  const err = await dave.waitFor((el) => el.name === 'presence' && el.attrs.type === 'error' && el.attrs.id === 'p3');
  assert.deepEqual({ type: errorOf(err).type, condition: errorOf(err).condition }, { type: 'wait', condition: 'policy-violation' });
  assert.equal(ts.server.core.stats.limitHits['presence-rate'], 1);
  // Another user's presence goes on.
  await erin.send(xml('presence', { id: 'e2' }, xml('show', null, 'chat')));
  await erin.waitFor((el) => el.name === 'presence' && el.attrs.id === 'e2' && el.attrs.type !== 'error');
  assert.equal(ts.server.core.stats.limitHits['presence-rate'], 1);
  // Unavailable goes through even past the limit.
  await dave.send(xml('presence', { type: 'unavailable', id: 'u1' }));
  await waitUntil(() => ts.server.core.sessions.available(jid('dave')).length === 0, 5000, () => 'dave unavailable');
  assert.ok(!dave.received.some((el) => el.attrs.id === 'u1' && el.attrs.type === 'error'));
});

test('directed presence to more targets than allowed gets a presence error resource-constraint (wait)', async () => {
  const ts = await server({ directedPresences: 2 }, ['frank', 'gina', 'hank', 'ivan', 'judy']);
  const frank = await client(ts, 'frank');
  const gina = await client(ts, 'gina');
  const hank = await client(ts, 'hank');
  const ivan = await client(ts, 'ivan');
  const judy = await client(ts, 'judy');
  await frank.send(xml('presence', { to: `${jid('gina')}/test`, id: 'd1' }));
  await frank.send(xml('presence', { to: `${jid('hank')}/test`, id: 'd2' }));
  await frank.send(xml('presence', { to: `${jid('ivan')}/test`, id: 'd3' }));
  await gina.presence((el) => el.attrs.id === 'd1', 'directed presence d1');
  await hank.presence((el) => el.attrs.id === 'd2', 'directed presence d2');
  const err = await frank.waitFor((el) => el.name === 'presence' && el.attrs.type === 'error' && el.attrs.id === 'd3');
  assert.deepEqual({ type: errorOf(err).type, condition: errorOf(err).condition }, { type: 'wait', condition: 'resource-constraint' });
  assert.equal(ts.server.core.stats.limitHits['directed-presences'], 1);
  // Sending unavailable to one target frees its place.
  await frank.send(xml('presence', { to: `${jid('gina')}/test`, type: 'unavailable' }));
  await frank.send(xml('presence', { to: `${jid('ivan')}/test`, id: 'd4' }));
  await ivan.presence((el) => el.attrs.id === 'd4', 'directed presence d4');
  // Another session is not affected.
  await judy.send(xml('presence', { to: `${jid('gina')}/test`, id: 'j1' }));
  await judy.send(xml('presence', { to: `${jid('hank')}/test`, id: 'j2' }));
  await hank.presence((el) => el.attrs.id === 'j2', 'directed presence j2');
  assert.equal(ts.server.core.stats.limitHits['directed-presences'], 1);
});
