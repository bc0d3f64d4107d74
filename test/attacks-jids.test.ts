/**
 * JIDs as attacks (issue 10, point 2): SQL metacharacters in localparts, resources,
 * roster items and message targets, on SQLite and on MariaDB (a database of its own on
 * 127.0.0.1:3306, dropped at the end): nothing breaks, `%` and `_` match nothing but
 * themselves, data stays intact. Unicode confusables (RFC 8265 PRECIS, RFC 7622):
 * fullwidth and case forms map to the same account, disallowed code points are refused,
 * a Cyrillic look-alike is another account.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { Conn, login, plainAttempt } from './helpers/limits.js';
import { createDatabase, serverQuery } from '../src/storage/mysql.js';
import { TEST_MYSQL, TEST_TUNING } from '../src/storage/mysql-testing.js';
import type { ShardSpec } from '../src/storage/shard-map.js';

const conns: Conn[] = [];
after(() => {
  for (const c of conns) c.close();
});

const EVIL_LOCALS = ['100%', 'a_b', 'back\\slash', 'semi;colon--', 'drop\\table;--users', '%', '_'];
const EVIL_RESOURCE = `'; DROP TABLE users; -- "%_\\`;

let n = 0;
async function iq(c: Conn, type: string, payload: string, to = ''): Promise<string> {
  const id = `j${++n}`;
  const at = c.text.length;
  c.write(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ''}>${payload}</iq>`);
  const re = new RegExp(`<iq[^>]*id='${id}'[^>]*(/>|>[\\s\\S]*?</iq>)`);
  return re.exec(await c.until(re, at))![0];
}
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

async function sqlScenario(ts: TestServer): Promise<void> {
  for (const u of ['alice', 'axb', ...EVIL_LOCALS]) await ts.addUser(u, `pw-${u}`);
  // Logins with metacharacters in the localpart and the resource.
  for (const u of EVIL_LOCALS) {
    const c = await login(ts.port, u, `pw-${u}`, esc(EVIL_RESOURCE));
    conns.push(c);
    assert.ok(c.text.includes(`<jid>${esc(u).replace(/&apos;/g, "'")}`) || c.text.includes('<jid>'), c.text);
    c.close();
  }
  // '%' and '_' match only themselves: the password of '%' does not open 'alice', nor 'a_b' 'axb'.
  const wrong = await plainAttempt(ts.port, 'alice', 'pw-%');
  conns.push(wrong.conn);
  assert.match(wrong.answer, /<not-authorized\/>/);
  const wrong2 = await plainAttempt(ts.port, 'axb', 'pw-a_b');
  conns.push(wrong2.conn);
  assert.match(wrong2.answer, /<not-authorized\/>/);

  const alice = await login(ts.port, 'alice', 'pw-alice', esc(EVIL_RESOURCE));
  conns.push(alice);
  // Roster items with metacharacters in the JID and the name, stored and read back exactly.
  for (const [i, u] of EVIL_LOCALS.entries()) {
    const r = await iq(alice, 'set', `<query xmlns='jabber:iq:roster'><item jid='${esc(u)}@${DOMAIN}' name='${esc(`n${i} ${EVIL_RESOURCE}`)}'><group>${esc(EVIL_RESOURCE)}</group></item></query>`);
    assert.match(r, /type='result'/, r);
  }
  const roster = await iq(alice, 'get', `<query xmlns='jabber:iq:roster'/>`);
  for (const u of EVIL_LOCALS) assert.ok(roster.includes(`jid='${esc(u)}@${DOMAIN}'`) || roster.includes(`jid='${u}@${DOMAIN}'`), `${u} in ${roster}`);
  assert.equal((roster.match(/<item /g) ?? []).length, EVIL_LOCALS.length);
  // Removing '%' removes that item only.
  assert.match(await iq(alice, 'set', `<query xmlns='jabber:iq:roster'><item jid='%@${DOMAIN}' subscription='remove'/></query>`), /type='result'/);
  assert.equal(((await iq(alice, 'get', `<query xmlns='jabber:iq:roster'/>`)).match(/<item /g) ?? []).length, EVIL_LOCALS.length - 1);
  // Message targets: a quote is not allowed in a localpart (jid-malformed); '%x' and 'a_' match no account.
  const at = alice.text.length;
  alice.write(`<message to='${esc("'; DROP TABLE users; --")}@${DOMAIN}' id='m1' type='chat'><body>x</body></message>`);
  alice.write(`<message to='%25@${DOMAIN}' id='m2' type='chat'><body>x</body></message>`);
  alice.write(`<message to='a_@${DOMAIN}' id='m3' type='chat'><body>x</body></message>`);
  alice.write(`<message to='%@${DOMAIN}' id='m4' type='chat'><body>stored for %</body></message>`);
  await alice.until(/id='m3'[\s\S]*<\/message>/, at);
  const got = alice.text.slice(at);
  assert.match(/<message[^>]*id='m1'[\s\S]*?<\/message>/.exec(got)![0], /jid-malformed/);
  assert.match(/<message[^>]*id='m2'[\s\S]*?<\/message>/.exec(got)![0], /service-unavailable/);
  assert.match(/<message[^>]*id='m3'[\s\S]*?<\/message>/.exec(got)![0], /service-unavailable/);
  // The message to '%' went to '%' only (offline), not to every account.
  const pct = await login(ts.port, '%', 'pw-%', 'x');
  conns.push(pct);
  pct.write('<presence/>');
  await pct.until(/stored for %/);
  // Everything is still there: every account logs in.
  for (const u of ['alice', 'axb', ...EVIL_LOCALS]) {
    const a = await plainAttempt(ts.port, u, `pw-${u}`);
    conns.push(a.conn);
    assert.match(a.answer, /<success/, u);
    a.conn.close();
  }
}

describe('SQL metacharacters in JIDs', () => {
  test('on SQLite: logins, roster items, resources and message targets with quotes, %, _, backslashes; data intact', async () => {
    const ts = await startTestServer({ listen: { c2s: { requireTls: false } } });
    try {
      await sqlScenario(ts);
    } finally {
      await ts.stop();
    }
  });

  test('on MariaDB: the same, in a database of its own, dropped at the end', async () => {
    const spec: ShardSpec = { name: 's1', ...TEST_MYSQL, database: `parley_t_attacks_${randomBytes(4).toString('hex')}`, weight: 1, draining: false };
    await createDatabase(spec, TEST_TUNING);
    const dir = mkdtempSync(join(tmpdir(), 'parley-attacks-'));
    const mapFile = join(dir, 'shards.yaml');
    writeFileSync(mapFile, `directory: s1\nshards:\n  s1: { host: ${spec.host}, port: ${spec.port}, user: ${spec.user}, password: "${spec.password}", database: ${spec.database} }\n`);
    let ts: TestServer | undefined;
    try {
      ts = await startTestServer({ listen: { c2s: { requireTls: false } }, storage: { driver: 'mysql', mysql: { shardMap: mapFile } } });
      await sqlScenario(ts);
    } finally {
      await ts?.stop();
      await serverQuery(spec, TEST_TUNING, `DROP DATABASE IF EXISTS \`${spec.database}\``);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Unicode confusables (PRECIS)', () => {
  test('fullwidth and case forms log in as alice; a Cyrillic look-alike is another account; disallowed code points are refused', async () => {
    const ts = await startTestServer({ listen: { c2s: { requireTls: false } } });
    try {
      await ts.addUser('alice', 'pw-alice');
      await ts.addUser('\u0430lice', 'pw-cyrillic'); // а = U+0430 CYRILLIC SMALL LETTER A
      for (const name of ['ＡＬＩＣＥ', 'Alice', 'ALICE', 'ａｌｉｃｅ']) {
        const c = await login(ts.port, name, 'pw-alice', 'r');
        conns.push(c);
        assert.match(c.text, new RegExp(`<jid>alice@${DOMAIN}/r</jid>`), name);
        c.close();
      }
      // The look-alike is its own account: alice's password does not open it, nor its password alice.
      const a = await plainAttempt(ts.port, '\u0430lice', 'pw-alice');
      conns.push(a.conn);
      assert.match(a.answer, /<not-authorized\/>/);
      const b = await plainAttempt(ts.port, 'alice', 'pw-cyrillic');
      conns.push(b.conn);
      assert.match(b.answer, /<not-authorized\/>/);
      // Messages: to ＡＬＩＣＥ reaches alice; to the look-alike does not.
      const alice = await login(ts.port, 'alice', 'pw-alice', 'home');
      conns.push(alice);
      const look = await login(ts.port, '\u0430lice', 'pw-cyrillic', 'home');
      conns.push(look);
      alice.write('<presence/>');
      look.write('<presence/>');
      look.write(`<message to='ＡＬＩＣＥ@${DOMAIN}' type='chat' id='c1'><body>to the real one</body></message>`);
      alice.write(`<message to='\u0430lice@${DOMAIN}' type='chat' id='c2'><body>to the look-alike</body></message>`);
      await alice.until(/to the real one/);
      await look.until(/to the look-alike/);
      assert.doesNotMatch(alice.text, /<message[^>]*id='c2'[^>]*from=/, 'the look-alike message did not reach alice');
      // Disallowed code points: jid-malformed for a message target, not-authorized (no such account) at login.
      const at = alice.text.length;
      for (const [i, bad] of ['\u2163x', 'a\u0000b'.replace('\u0000', '\u200b'), '\u{1F600}', 'a b'].entries()) {
        alice.write(`<message to='${bad}@${DOMAIN}' type='chat' id='bad${i}'><body>x</body></message>`);
      }
      await alice.until(/id='bad3'[\s\S]*<\/message>/, at);
      for (let i = 0; i < 4; i++) {
        const m = new RegExp(`<message[^>]*id='bad${i}'[\\s\\S]*?</message>`).exec(alice.text.slice(at));
        assert.ok(m, `bounce ${i}`);
        assert.match(m[0], /jid-malformed/, m[0]);
      }
      const d = await plainAttempt(ts.port, '\u{1F600}', 'pw');
      conns.push(d.conn);
      assert.match(d.answer, /<failure/);
    } finally {
      await ts.stop();
    }
  });
});
