/**
 * Portal logins (issue 8, part 2) against running servers: login tokens, the portal's
 * HTTP endpoint (a fake portal in this process), the portal's SQL table on SQLite and on
 * the local MariaDB, banned accounts, and the router's view of portal users.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import mysql from 'mysql2/promise';
import bcrypt from 'bcryptjs';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml } from './helpers/client.js';
import { json, offeredMechanisms, outcome, plainAttempt, scramAttempt, startFakePortal, type FakePortal } from './helpers/portal.js';
import { signLoginToken } from '../src/portal/tokens.js';
import { TEST_MYSQL } from '../src/storage/mysql-testing.js';
import { Jid } from '../src/xmpp/jid.js';

const SECRET = 'a portal secret of some length, 32+ characters';
const now = () => Math.floor(Date.now() / 1000);
const token = (user: string, ttl = 300, secret = SECRET) => signLoginToken(secret, DOMAIN, user, now() + ttl);

describe('login tokens (internal source)', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({ listen: { c2s: { requireTls: false } }, portal: { secret: SECRET, tokenMaxTtl: '1h' } });
    await ts.addUser('internal', 'pw-internal');
  });
  after(() => ts.stop());

  test('a valid token logs a portal user in and provisions the account', async () => {
    assert.equal(await ts.server.core.users.exists(DOMAIN, 'tokenuser'), false);
    assert.equal(outcome(await plainAttempt(ts.port, 'tokenuser', token('tokenuser'))), 'success');
    assert.equal(await ts.server.core.users.exists(DOMAIN, 'tokenuser'), true);
  });

  test('an expired token is refused', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'tokenuser', token('tokenuser', -5))), 'not-authorized');
  });

  test("another user's token is refused", async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'mallory', token('tokenuser'))), 'not-authorized');
  });

  test('a token signed with another secret is refused', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'tokenuser', token('tokenuser', 300, 'some other secret, long enough'))), 'not-authorized');
  });

  test('a token living longer than portal.tokenMaxTtl is refused', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'tokenuser', token('tokenuser', 7200))), 'not-authorized');
  });

  test('a banned account is refused with account-disabled and the reason', async () => {
    await ts.server.core.users.setFlag(DOMAIN, 'banned', { state: 'banned', reason: 'spamming the forum' });
    const text = await plainAttempt(ts.port, 'banned', token('banned'));
    assert.equal(outcome(text), 'account-disabled');
    assert.match(text, /<text[^>]*>spamming the forum<\/text>/);
    assert.equal(outcome(await plainAttempt(ts.port, 'banned', 'pt1.wrong')), 'not-authorized', 'the flag is told only to someone with credentials');
  });

  test('internal accounts keep SCRAM and PLAIN; a banned one is refused on both', async () => {
    assert.ok((await offeredMechanisms(ts.port)).includes('SCRAM-SHA-256'));
    assert.equal(outcome(await scramAttempt(ts.port, 'internal', 'pw-internal')), 'success');
    assert.equal(outcome(await plainAttempt(ts.port, 'internal', 'pw-internal')), 'success');
    await ts.server.core.users.setFlag(DOMAIN, 'internal', { state: 'deleted', reason: null });
    assert.equal(outcome(await scramAttempt(ts.port, 'internal', 'pw-internal')), 'account-disabled');
    assert.equal(outcome(await plainAttempt(ts.port, 'internal', 'pw-internal')), 'account-disabled');
    assert.equal(outcome(await scramAttempt(ts.port, 'internal', 'wrong')), 'not-authorized');
    await ts.server.core.users.setFlag(DOMAIN, 'internal', null);
    assert.equal(outcome(await plainAttempt(ts.port, 'internal', 'pw-internal')), 'success');
  });

  test('a real client logs in with a token over STARTTLS and PLAIN', async () => {
    const c = await connectClient({ port: ts.port, username: 'widget', password: token('widget'), mechanism: 'PLAIN' });
    assert.match(c.jid, /^widget@example\.test\//);
    await c.stop();
  });
});

describe('http source', () => {
  let ts: TestServer;
  let portal: FakePortal;
  before(async () => {
    portal = await startFakePortal((req, body, res) => {
      if (req.url?.startsWith('/exists/')) {
        const user = decodeURIComponent(req.url.slice('/exists/'.length));
        res.statusCode = user === 'carol' ? 200 : 404;
        res.end();
        return;
      }
      const { user, password } = JSON.parse(body) as { user: string; password: string };
      if (user === 'broken') return json(res, 500, { error: 'db down' });
      // Never answers (the connection is closed with the fake portal): slower than any timeout.
      if (user === 'slow') return;
      if (user === 'liar') return json(res, 200, { ok: 'yes' });
      json(res, 200, { ok: password === `pw-${user}` });
    });
    ts = await startTestServer({
      listen: { c2s: { requireTls: false } },
      portal: { secret: SECRET, auth: { source: 'http', url: `${portal.url}/auth`, existsUrl: `${portal.url}/exists/{user}`, cacheTtl: '60s', timeout: '2s' } },
    });
  });
  after(async () => {
    await ts.stop();
    await portal.close();
  });

  test('only PLAIN is offered (no SCRAM keys for portal users)', async () => {
    assert.deepEqual(await offeredMechanisms(ts.port), ['PLAIN']);
  });

  test('the portal accepts; the account is provisioned; a second login is answered from the cache', async () => {
    const before = portal.hits.get('/auth') ?? 0;
    assert.equal(outcome(await plainAttempt(ts.port, 'alice', 'pw-alice')), 'success');
    assert.equal(await ts.server.core.users.exists(DOMAIN, 'alice'), true);
    assert.equal(portal.hits.get('/auth'), before + 1);
    assert.equal(outcome(await plainAttempt(ts.port, 'alice', 'pw-alice')), 'success');
    assert.equal(portal.hits.get('/auth'), before + 1, 'answered from the cache');
    assert.equal(outcome(await plainAttempt(ts.port, 'alice', 'other')), 'not-authorized');
    assert.equal(portal.hits.get('/auth'), before + 2, 'another password is asked again');
  });

  test('the portal refuses: not-authorized (also for a 200 without ok: true)', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'bob', 'wrong')), 'not-authorized');
    assert.equal(outcome(await plainAttempt(ts.port, 'liar', 'x')), 'not-authorized');
  });

  test('a 500 from the portal is temporary-auth-failure', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'broken', 'pw-broken')), 'temporary-auth-failure');
  });

  test('a portal slower than portal.auth.timeout is temporary-auth-failure', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'slow', 'pw-slow')), 'temporary-auth-failure');
  });

  test('a banned portal user is refused with account-disabled', async () => {
    await ts.server.core.users.setFlag(DOMAIN, 'dave', { state: 'banned', reason: 'banned by a moderator' });
    assert.equal(outcome(await plainAttempt(ts.port, 'dave', 'pw-dave')), 'account-disabled');
  });

  test('tokens work in http mode too', async () => {
    const before = portal.hits.get('/auth') ?? 0;
    assert.equal(outcome(await plainAttempt(ts.port, 'erin', token('erin'))), 'success');
    assert.equal(portal.hits.get('/auth') ?? 0, before, 'a token is not sent to the portal');
  });

  test('a message to a portal user who never logged in is stored (existsUrl); to a stranger it bounces', async () => {
    const a = await connectClient({ port: ts.port, username: 'alice', password: 'pw-alice' });
    await a.send(xml('message', { to: `carol@${DOMAIN}`, type: 'chat', id: 'm1' }, xml('body', null, 'hi carol')));
    await a.send(xml('message', { to: `nobody@${DOMAIN}`, type: 'chat', id: 'm2' }, xml('body', null, 'hi?')));
    const bounce = await a.waitFor((el) => el.name === 'message' && el.attrs.type === 'error', 5000, 'bounce');
    assert.equal(bounce.attrs.id, 'm2');
    assert.ok(bounce.getChild('error')?.getChild('service-unavailable'));
    await a.expectNone((el) => el.name === 'message' && el.attrs.id === 'm1', 300);
    assert.equal(await ts.server.core.users.exists(DOMAIN, 'carol'), true);
    await a.stop();
    const c = await connectClient({ port: ts.port, username: 'carol', password: 'pw-carol' });
    const m = await c.message(`alice@${DOMAIN}`);
    assert.equal(m.getChildText('body'), 'hi carol');
    await c.stop();
  });
});

/** The portal's user table, the same rows on SQLite and MariaDB. */
function userRows(): Array<[string, string]> {
  return [
    ['bcrypt', bcrypt.hashSync('pw-bcrypt', 4)],
    ['php', bcrypt.hashSync('pw-php', 4).replace(/^\$2b\$/, '$2y$')],
    ['sha', 'sha256:' + sha256hex('pw-sha')],
    ['salted', 'sha256:NaCl:' + sha256hex('NaClpw-salted')],
    ['weird', 'md5:abcdef'],
  ];
}
function sha256hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

async function sqlLogins(ts: TestServer): Promise<void> {
  assert.deepEqual(await offeredMechanisms(ts.port), ['PLAIN']);
  for (const u of ['bcrypt', 'php', 'sha', 'salted']) assert.equal(outcome(await plainAttempt(ts.port, u, `pw-${u}`)), 'success', u);
  for (const u of ['bcrypt', 'php', 'sha', 'salted']) assert.equal(outcome(await plainAttempt(ts.port, u, 'wrong-password')), 'not-authorized', u);
  assert.equal(outcome(await plainAttempt(ts.port, 'weird', 'abcdef')), 'not-authorized', 'unknown hash form');
  assert.equal(outcome(await plainAttempt(ts.port, 'nobody', 'pw-nobody')), 'not-authorized');
  // SECURITY: values are bound, never put into the SQL.
  assert.equal(outcome(await plainAttempt(ts.port, 'sha', "' OR '1'='1")), 'not-authorized');
  await ts.server.core.users.setFlag(DOMAIN, 'sha', { state: 'banned', reason: 'no' });
  assert.equal(outcome(await plainAttempt(ts.port, 'sha', 'pw-sha')), 'account-disabled');
  assert.equal(await ts.server.core.users.exists(DOMAIN, 'bcrypt'), true, 'provisioned at login');
}

describe('sql source on SQLite', () => {
  let ts: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parley-portal-'));
    const db = new BetterSqlite3(join(dir, 'portal.db'));
    db.exec('CREATE TABLE members (login TEXT PRIMARY KEY, hash TEXT, plain TEXT)');
    const ins = db.prepare('INSERT INTO members (login, hash, plain) VALUES (?, ?, ?)');
    for (const [u, h] of userRows()) ins.run(u, h, null);
    ins.run('plainuser', null, 'pw-plain');
    db.close();
    ts = await startTestServer({
      listen: { c2s: { requireTls: false } },
      portal: { auth: { source: 'sql', query: 'SELECT hash AS password_hash FROM members WHERE login = :user', existsQuery: 'SELECT 1 FROM members WHERE login = :user' }, db: `sqlite:${join(dir, 'portal.db')}` },
    });
  });
  after(async () => {
    await ts.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('bcrypt ($2b$, $2y$), sha256 and salted sha256 hashes log in; wrong passwords and unknown forms do not', async () => {
    await sqlLogins(ts);
  });

  test('existsQuery: a portal user who never logged in exists for the router', async () => {
    assert.equal(await ts.server.core.authenticator.userExists('plainuser'), true);
    assert.equal(await ts.server.core.authenticator.userExists('stranger'), false);
  });
});

describe('sql source on SQLite with a password comparison in the query', () => {
  let ts: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parley-portal-'));
    const db = new BetterSqlite3(join(dir, 'portal.db'));
    db.exec("CREATE TABLE members (login TEXT PRIMARY KEY, plain TEXT); INSERT INTO members VALUES ('plainuser', 'pw-plain')");
    db.close();
    ts = await startTestServer({
      listen: { c2s: { requireTls: false } },
      portal: { auth: { source: 'sql', query: "SELECT 1 FROM members WHERE login = :user AND plain = :password -- ':user' in a comment" }, db: `sqlite:${join(dir, 'portal.db')}` },
    });
  });
  after(async () => {
    await ts.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a row accepts; no row refuses; an injection attempt is just a wrong password', async () => {
    assert.equal(outcome(await plainAttempt(ts.port, 'plainuser', 'pw-plain')), 'success');
    assert.equal(outcome(await plainAttempt(ts.port, 'plainuser', 'nope')), 'not-authorized');
    assert.equal(outcome(await plainAttempt(ts.port, 'plainuser', "x' OR '1'='1")), 'not-authorized');
  });
});

describe('sql source on MariaDB', () => {
  let ts: TestServer;
  const database = `parley_t_portal_${randomBytes(4).toString('hex')}`;
  const conn = () => mysql.createConnection({ host: TEST_MYSQL.host, port: TEST_MYSQL.port, user: TEST_MYSQL.user, password: TEST_MYSQL.password });
  before(async () => {
    const c = await conn();
    await c.query(`CREATE DATABASE \`${database}\``);
    await c.query(`CREATE TABLE \`${database}\`.members (login VARCHAR(64) PRIMARY KEY, hash VARCHAR(255))`);
    for (const [u, h] of userRows()) await c.query(`INSERT INTO \`${database}\`.members VALUES (?, ?)`, [u, h]);
    await c.query(`CREATE TABLE \`${database}\`.friendship (owner VARCHAR(64), friend VARCHAR(64), nick VARCHAR(64), tags VARCHAR(255))`);
    await c.query(`INSERT INTO \`${database}\`.friendship VALUES ('bcrypt', 'sha', 'Sha', 'Work,Chess'), ('sha', 'bcrypt', NULL, NULL)`);
    await c.end();
    const pw = TEST_MYSQL.password ? `:${encodeURIComponent(TEST_MYSQL.password)}` : '';
    ts = await startTestServer({
      listen: { c2s: { requireTls: false } },
      portal: {
        auth: { source: 'sql', query: 'SELECT hash AS password_hash FROM members WHERE login = :user' },
        roster: { source: 'sql', query: 'SELECT friend AS user, nick AS name, tags AS `groups` FROM friendship WHERE owner = :user' },
        db: `mysql://${TEST_MYSQL.user}${pw}@${TEST_MYSQL.host}:${TEST_MYSQL.port}/${database}`,
      },
    });
  });
  after(async () => {
    await ts?.stop();
    const c = await conn();
    await c.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await c.end();
  });

  test('bcrypt ($2b$, $2y$), sha256 and salted sha256 hashes log in; wrong passwords and unknown forms do not', async () => {
    await sqlLogins(ts);
  });

  test('the roster comes from the friendship query, subscription both on both sides', async () => {
    const roster = ts.server.core.service('roster');
    const items = await roster.getItems(Jid.parse(`bcrypt@${DOMAIN}`));
    assert.deepEqual(
      items.map((i) => [i.jid, i.subscription, i.name, i.groups]),
      [[`sha@${DOMAIN}`, 'both', 'Sha', ['Work', 'Chess']]],
    );
    const back = await roster.getItem(Jid.parse(`sha@${DOMAIN}`), `bcrypt@${DOMAIN}`);
    assert.equal(back?.subscription, 'both');
  });
});
