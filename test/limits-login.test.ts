/**
 * Login attempt limits (docs/limits.md): failed SASL attempts counted per account and
 * per IP address in a sliding window; past a first threshold answers are delayed, past
 * the second logins are refused with temporary-auth-failure ("too many attempts, try
 * later") without the password being checked; a success clears the account's count.
 * Hit by real clients; the counters move; another account and another address are not
 * affected. (Delays are not timed here: the counter says when one applied.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from './helpers/server.js';
import { plainAttempt, type Conn } from './helpers/limits.js';

const servers: TestServer[] = [];
const conns: Conn[] = [];

async function server(limits: Record<string, unknown>, users: string[]): Promise<TestServer> {
  const ts = await startTestServer({ listen: { c2s: { requireTls: false } }, limits: { exemptAddresses: [], loginDelay: '50ms', loginDelayMax: '200ms', ...limits } });
  servers.push(ts);
  for (const u of users) await ts.addUser(u);
  return ts;
}

async function attempt(ts: TestServer, user: string, password: string, from = '127.0.0.1'): Promise<string> {
  const { conn, answer } = await plainAttempt(ts.port, user, password, from);
  conns.push(conn);
  conn.close();
  if (answer.includes('<success')) return 'success';
  const m = /<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><([a-z-]+)\/>(?:<text[^>]*>([^<]*)<\/text>)?/.exec(answer);
  return m ? (m[2] ? `${m[1]}: ${m[2]}` : m[1]!) : answer;
}

after(async () => {
  for (const c of conns) c.close();
  for (const s of servers) await s.stop();
});

test('failed logins of one account are slowed down, then refused with temporary-auth-failure even with the right password; other accounts log in', async () => {
  const ts = await server({ loginFailuresPerAccount: 4, loginSlowDownAfter: 2, loginFailuresPerIp: 0 }, ['alice', 'bob']);
  const hits = () => ts.server.core.stats.limitHits['login-attempts-per-account'];
  for (let i = 0; i < 2; i++) assert.equal(await attempt(ts, 'alice', 'wrong'), 'not-authorized');
  assert.equal(hits(), 0, 'no slow-down below the threshold');
  for (let i = 0; i < 2; i++) assert.equal(await attempt(ts, 'alice', 'wrong'), 'not-authorized');
  assert.equal(hits(), 2, 'the 3rd and 4th failures were slowed down');
  // Refused without checking the password: the right one does not get in either.
  assert.equal(await attempt(ts, 'alice', 'secret'), 'temporary-auth-failure: too many attempts, try later');
  assert.equal(hits(), 3);
  // Another account is not affected, from the same address.
  assert.equal(await attempt(ts, 'bob', 'secret'), 'success');
  assert.equal(hits(), 3);
});

test('a successful login clears the account\'s failures', async () => {
  const ts = await server({ loginFailuresPerAccount: 4, loginSlowDownAfter: 10, loginFailuresPerIp: 0 }, ['carol']);
  for (let i = 0; i < 3; i++) assert.equal(await attempt(ts, 'carol', 'wrong'), 'not-authorized');
  assert.equal(await attempt(ts, 'carol', 'secret'), 'success');
  for (let i = 0; i < 3; i++) assert.equal(await attempt(ts, 'carol', 'wrong'), 'not-authorized');
  assert.equal(await attempt(ts, 'carol', 'secret'), 'success', 'six failures, but never four since the last success');
  assert.equal(ts.server.core.stats.limitHits['login-attempts-per-account'], 0);
});

test('failed logins from one address are slowed down, then refused for every account from it; another address logs in', async () => {
  const ts = await server({ loginFailuresPerIp: 4, loginFailuresPerAccount: 0 }, ['dave', 'erin']);
  const hits = () => ts.server.core.stats.limitHits['login-attempts-per-ip'];
  for (const u of ['u1', 'u2', 'u3', 'u4']) assert.equal(await attempt(ts, u, 'guess'), 'not-authorized');
  assert.ok(hits() >= 1, 'failures past half of the threshold were slowed down');
  const before = hits();
  assert.equal(await attempt(ts, 'dave', 'secret'), 'temporary-auth-failure: too many attempts, try later');
  assert.equal(hits(), before + 1);
  // Another address is not affected.
  assert.equal(await attempt(ts, 'erin', 'secret', '127.0.0.2'), 'success');
  assert.equal(await attempt(ts, 'dave', 'secret', '127.0.0.2'), 'success');
});

test('loopback is exempt from the per-address login limit by default (load tests log in from 127.0.0.1)', async () => {
  const ts = await startTestServer({ listen: { c2s: { requireTls: false } }, limits: { loginFailuresPerIp: 2, loginFailuresPerAccount: 0 } });
  servers.push(ts);
  await ts.addUser('frank');
  for (const u of ['v1', 'v2', 'v3']) assert.equal(await attempt(ts, u, 'guess'), 'not-authorized');
  assert.equal(await attempt(ts, 'frank', 'secret'), 'success');
  assert.equal(ts.server.core.stats.limitHits['login-attempts-per-ip'], 0);
});
