/**
 * Login attempt limits (docs/limits.md): failed SASL attempts counted per account (from
 * anywhere: slowed down, never refused), per (account, address) and per IP address in a
 * sliding window; past a first threshold answers are delayed, past the second logins from
 * that address are refused with temporary-auth-failure ("too many attempts, try later")
 * without the password being checked; a success clears the account's count. Credential
 * checks (PBKDF2, store reads) are budgeted per connection (policy-violation) and per
 * address, whatever their outcome. Portal tokens and prebind are never refused because of
 * password failures. Hit by real clients; the counters move; another account and another
 * address are not affected. (Delays are not timed here: the counter says when one applied.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { Conn, plainAttempt, waitUntil } from './helpers/limits.js';
import { STREAM_HEADER } from './helpers/client.js';
import { signLoginToken } from '../src/portal/tokens.js';

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

test('failed logins of one account are slowed down, then refused from that address even with the right password; other accounts, and the account from another address, log in', async () => {
  const ts = await server({ loginFailuresPerAccount: 4, loginSlowDownAfter: 2, loginFailuresPerIp: 0 }, ['alice', 'bob']);
  const hits = () => ts.server.core.stats.limitHits['login-attempts-per-account'];
  for (let i = 0; i < 2; i++) assert.equal(await attempt(ts, 'alice', 'wrong'), 'not-authorized');
  assert.equal(hits(), 0, 'no slow-down below the threshold');
  for (let i = 0; i < 2; i++) assert.equal(await attempt(ts, 'alice', 'wrong'), 'not-authorized');
  assert.equal(hits(), 2, 'the 3rd and 4th failures were slowed down');
  // Refused without checking the password: the right one does not get in either, from there.
  assert.equal(await attempt(ts, 'alice', 'secret'), 'temporary-auth-failure: too many attempts, try later');
  assert.equal(hits(), 3);
  // Another account is not affected, from the same address.
  assert.equal(await attempt(ts, 'bob', 'secret'), 'success');
  assert.equal(hits(), 3);
  // The account from another address: slowed down (the failures are the account's), not refused.
  assert.equal(await attempt(ts, 'alice', 'secret', '127.0.0.2'), 'success');
  assert.equal(hits(), 4);
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

/** Raw PLAIN message (base64) for an <auth/>. */
const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString('base64');
const AUTH_ABORT = (user: string, password: string) => `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain(user, password)}</auth><abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`;

/** Counts the reads of stored credentials (each PLAIN check reads them, then runs PBKDF2). */
function countCredentialReads(ts: TestServer): () => number {
  const users = ts.server.core.users;
  const original = users.getCredentials.bind(users);
  let reads = 0;
  users.getCredentials = async (...args) => {
    reads++;
    return original(...args);
  };
  return () => reads;
}

/** A raw stream (requireTls: false) from `from`, after its features. */
async function openStream(ts: TestServer, from: string): Promise<Conn> {
  const conn = await Conn.open(ts.port, from);
  conns.push(conn);
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  return conn;
}

test('200 pipelined auth/abort pairs on one connection are cut with policy-violation after saslAttemptsPerConnection credential checks; another address logs in meanwhile', async () => {
  const ts = await server({ saslAttemptsPerConnection: 5, loginFailuresPerIp: 0 }, ['alice']);
  const reads = countCredentialReads(ts);
  const conn = await openStream(ts, '127.0.0.2');
  conn.write(Array.from({ length: 200 }, () => AUTH_ABORT('alice', 'guess')).join(''));
  // Meanwhile, from another address: a normal login gets through (a bound for liveness, not speed).
  const other = await Promise.race([
    attempt(ts, 'alice', 'secret', '127.0.0.3'),
    new Promise<string>((r) => setTimeout(() => r('no answer within 5 s'), 5000).unref()),
  ]);
  assert.equal(other, 'success');
  await conn.until(/<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'\/>/);
  assert.match(conn.text, /too many authentication attempts/);
  assert.equal(reads() - 1, 5, 'five credential checks for the pipelined pairs (and one for the other login), not 200');
  assert.equal((conn.text.match(/<aborted\/>/g) ?? []).length, 5, 'five exchanges answered, then the stream ended');
  assert.equal(ts.server.core.stats.limitHits['sasl-attempts-per-connection'], 1);
});

test('credential checks are budgeted per address whatever their outcome: past saslAttemptsPerIp an address is refused before any check; another address logs in', async () => {
  const ts = await server({ saslAttemptsPerConnection: 3, saslAttemptsPerIp: 6, loginFailuresPerIp: 0 }, ['alice']);
  const reads = countCredentialReads(ts);
  for (let i = 0; i < 2; i++) {
    const conn = await openStream(ts, '127.0.0.2');
    conn.write(Array.from({ length: 20 }, () => AUTH_ABORT('alice', 'guess')).join(''));
    await conn.until(/<policy-violation/);
  }
  assert.equal(reads(), 6);
  // The address spent its budget (aborts included): refused at once, nothing read, nothing derived.
  const { conn, answer } = await plainAttempt(ts.port, 'alice', 'secret', '127.0.0.2');
  conns.push(conn);
  assert.match(answer, /<temporary-auth-failure\/><text[^>]*>too many attempts, try later</);
  assert.equal(reads(), 6);
  assert.ok(ts.server.core.stats.limitHits['sasl-attempts-per-ip'] >= 1);
  assert.equal(await attempt(ts, 'alice', 'secret', '127.0.0.3'), 'success');
});

test('wrong passwords for an account from one address do not lock its owner out: another address logs in (slowed), and a portal token and prebind always work', async () => {
  const secret = 'portal-secret-for-limits-0123456789';
  const ts = await startTestServer({ listen: { c2s: { requireTls: false } }, portal: { secret }, limits: { exemptAddresses: [], loginDelay: '20ms', loginDelayMax: '100ms' } });
  servers.push(ts);
  await ts.addUser('alice');
  const hits = () => ts.server.core.stats.limitHits['login-attempts-per-account'];
  // The defaults: 10 failures of (alice, 127.0.0.2) refuse alice from 127.0.0.2.
  for (let i = 0; i < 10; i++) assert.equal(await attempt(ts, 'alice', `guess-${i}`, '127.0.0.2'), 'not-authorized');
  assert.equal(await attempt(ts, 'alice', 'guess-11', '127.0.0.2'), 'temporary-auth-failure: too many attempts, try later');
  assert.equal(await attempt(ts, 'alice', 'secret', '127.0.0.2'), 'temporary-auth-failure: too many attempts, try later');
  // The owner's password from another address: slowed down (the account's failures), not refused.
  const before = hits();
  assert.equal(await attempt(ts, 'alice', 'secret', '127.0.0.3'), 'success');
  assert.ok(hits() > before, 'the password login was slowed down');
  // A portal token gets in, even from the refused address, and is not slowed down.
  for (let i = 0; i < 10; i++) assert.equal(await attempt(ts, 'alice', `guess-${i}`, '127.0.0.4'), 'not-authorized');
  const token = signLoginToken(secret, DOMAIN, 'alice', Math.floor(Date.now() / 1000) + 300);
  const beforeToken = hits();
  assert.equal(await attempt(ts, 'alice', token, '127.0.0.2'), 'success');
  assert.equal(await attempt(ts, 'alice', token, '127.0.0.4'), 'success');
  assert.equal(hits(), beforeToken, 'token logins are neither refused nor slowed down');
  // Prebind (the portal vouches for the user) gets a session too.
  const r = await fetch(`${ts.httpUrl}/api/v1/prebind`, { method: 'POST', headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'alice' }) });
  assert.equal(r.status, 200, await r.clone().text());
  assert.match(String(((await r.json()) as { jid: string }).jid), /^alice@example\.test\//);
  // The attacker's address is still refused.
  assert.equal(await attempt(ts, 'alice', 'secret', '127.0.0.2'), 'temporary-auth-failure: too many attempts, try later');
});

test('a stream whose budget is spent is closed whatever the mechanism: SCRAM exchanges aborted after the first message count too', async () => {
  const ts = await server({ saslAttemptsPerConnection: 2 }, ['alice']);
  const reads = countCredentialReads(ts);
  const conn = await openStream(ts, '127.0.0.2');
  const first = Buffer.from('n,,n=alice,r=abcdefghijklmnop').toString('base64');
  conn.write(Array.from({ length: 50 }, () => `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${first}</auth><abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`).join(''));
  await conn.until(/<policy-violation/);
  assert.equal(reads(), 2);
  await waitUntil(() => conn.closed || /<\/stream:stream>/.test(conn.text));
});
