/**
 * XEP-0012 Last Activity through real clients: the server's uptime, a contact's last seen
 * (time and status of the last unavailable presence), refused to strangers, blocked users
 * and an invisible user's contacts, and idle time answered by the client itself
 * (issue 23, point 4).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { befriend, connectClient, xml, type Element, type TestClient } from './helpers/client.js';
import { RawBosh } from './helpers/bosh.js';

const LAST = 'jabber:iq:last';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
let ts: TestServer;
const open: TestClient[] = [];
const jid = (u: string) => `${u}@${DOMAIN}`;

before(async () => {
  ts = await startTestServer();
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank']) await ts.addUser(u);
});
after(async () => {
  for (const c of open) await c.stop();
  await ts.stop();
});

async function online(username: string, resource = 'r'): Promise<TestClient> {
  const c = await connectClient({ port: ts.port, username, resource });
  open.push(c);
  return c;
}


const lastOf = (c: TestClient, to: string) => c.iq(xml('iq', { type: 'get', to }, xml('query', { xmlns: LAST })));
const condition = (iq: Element) => iq.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === STANZAS && c.name !== 'text')?.name;

/** Logs `user` out after an unavailable presence with `status`, and waits until the server stored it. */
async function leave(c: TestClient, status: string, watcher: TestClient, user: string): Promise<void> {
  await c.send(xml('presence', { type: 'unavailable' }, xml('status', null, status)));
  await watcher.presence((p) => p.attrs.type === 'unavailable' && p.attrs.from?.startsWith(`${jid(user)}/`) === true, `${user} unavailable`);
  await c.stop();
  open.splice(open.indexOf(c), 1);
  await ts.server.core.settle(2000);
}

test('the server answers its uptime', async () => {
  const a = await online('alice');
  const r = await lastOf(a, DOMAIN);
  assert.equal(r.attrs.type, 'result');
  const seconds = Number(r.getChild('query', LAST)?.attrs.seconds);
  assert.ok(Number.isInteger(seconds) && seconds >= 0 && seconds < 600, `uptime ${seconds}`);
});

test("a contact's last seen: seconds since the last unavailable presence and its status; 0 while online", async () => {
  const alice = await online('alice', 'watch');
  const bob = await online('bob');
  await befriend(alice, 'alice', bob, 'bob');
  const now = await lastOf(alice, jid('bob'));
  assert.equal(now.getChild('query', LAST)?.attrs.seconds, '0', 'online: 0 seconds');
  await leave(bob, 'Goodbye', alice, 'bob');
  await new Promise((r) => setTimeout(r, 1100));
  const r = await lastOf(alice, jid('bob'));
  assert.equal(r.attrs.type, 'result', r.toString());
  const q = r.getChild('query', LAST)!;
  assert.ok(Number(q.attrs.seconds) >= 1 && Number(q.attrs.seconds) < 30, `seconds ${q.attrs.seconds}`);
  assert.equal(q.text(), 'Goodbye');
});

test('a stranger gets forbidden, and learns nothing of the status', async () => {
  const carol = await online('carol');
  const r = await lastOf(carol, jid('bob'));
  assert.equal(condition(r), 'forbidden');
  assert.ok(!r.toString().includes('Goodbye'));
});

test("an invisible user's contacts get the stranger's answer; an invisible session leaves no last-seen trace", async () => {
  const dave = await online('dave', 'watch');
  const erin = await online('erin');
  await befriend(dave, 'dave', erin, 'erin');
  await leave(erin, 'Off to lunch', dave, 'erin');
  const hidden = await online('erin', 'hidden');
  assert.equal((await hidden.iq(xml('iq', { type: 'set' }, xml('invisible', { xmlns: 'urn:xmpp:invisible:0' })))).attrs.type, 'result');
  const r = await lastOf(dave, jid('erin'));
  assert.equal(condition(r), 'forbidden', 'while invisible: as for a stranger');
  await hidden.stop();
  open.splice(open.indexOf(hidden), 1);
  await ts.server.core.settle(2000);
  const after = await lastOf(dave, jid('erin'));
  assert.equal(after.getChild('query', LAST)?.text(), 'Off to lunch', 'the invisible session did not overwrite the last visible logout');
});

test('a user the account blocks learns nothing: the same error as for an account that does not exist', async () => {
  const frank = await online('frank', 'watch');
  const gina = await online('gina');
  await befriend(frank, 'frank', gina, 'gina');
  assert.equal((await gina.iq(xml('iq', { type: 'set' }, xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: jid('frank') }))))).attrs.type, 'result');
  const blocked = await lastOf(frank, jid('gina'));
  const nobody = await lastOf(frank, jid('nobody'));
  assert.equal(condition(blocked), condition(nobody));
  assert.equal(blocked.attrs.type, 'error');
  assert.equal(blocked.getChild('query', LAST)?.attrs.seconds, undefined);
});

test("a full JID's idle time is answered by the client", async () => {
  const hank = await online('hank', 'desk');
  const alice = await online('alice', 'idle');
  await befriend(alice, 'alice', hank, 'hank');
  hank.xmpp.iqCallee.get(LAST, 'query', () => xml('query', { xmlns: LAST, seconds: '123' }));
  const r = await lastOf(alice, `${jid('hank')}/desk`);
  assert.equal(r.attrs.from, `${jid('hank')}/desk`);
  assert.equal(r.getChild('query', LAST)?.attrs.seconds, '123');
});

test('a session that ends without an unavailable presence is last seen when it ended; a BOSH terminate with one keeps its status', async () => {
  await ts.addUser('ivy');
  await ts.addUser('joe');
  const watcher = await online('joe', 'w');
  const ivy = await online('ivy', 'tcp');
  await befriend(watcher, 'joe', ivy, 'ivy');
  await ivy.stop(); // closes the stream without an unavailable presence
  open.splice(open.indexOf(ivy), 1);
  await watcher.presence((p) => p.attrs.type === 'unavailable' && p.attrs.from === `${jid('ivy')}/tcp`, 'ivy gone');
  await ts.server.core.settle(2000);
  const r = await lastOf(watcher, jid('ivy'));
  assert.equal(r.attrs.type, 'result', r.toString());
  assert.equal(r.getChild('query', LAST)?.text(), '');

  const bosh = new RawBosh(`${ts.httpUrl}/http-bind`);
  await bosh.login('ivy', 'secret', { resource: 'web' });
  await watcher.presence((p) => p.attrs.type === undefined && p.attrs.from === `${jid('ivy')}/web`, 'ivy on the web');
  await bosh.send({ type: 'terminate' }, "<presence xmlns='jabber:client' type='unavailable'><status>Logged out</status></presence>");
  await watcher.presence((p) => p.attrs.type === 'unavailable' && p.attrs.from === `${jid('ivy')}/web`, 'ivy logged out');
  await ts.server.core.settle(2000);
  const after = await lastOf(watcher, jid('ivy'));
  assert.equal(after.getChild('query', LAST)?.text(), 'Logged out', after.toString());
});
