/**
 * Local attackers and leftovers (issue 18, point 8): another account on the machine must
 * not read Parley's data directory, and the demo portal's well-known accounts must not
 * open a server that runs without demo mode on the same data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { outcome, plainAttempt, scramAttempt } from './helpers/portal.js';
import { makeCredentials } from '../src/auth/credentials.js';

const mode = (p: string) => statSync(p).mode & 0o777;

test('the data directory is made 0700 and the SQLite files 0600 under a permissive umask', async () => {
  const root = mkdtempSync(join(tmpdir(), 'parley-perm-'));
  const old = process.umask(0o000); // SECURITY: the worst umask an operator could have
  try {
    const dataDir = join(root, 'nested', 'data');
    const ts = await startTestServer({ dataDir });
    await ts.addUser('alice'); // a write: the WAL file exists now
    assert.equal(mode(dataDir), 0o700);
    assert.equal(mode(join(dataDir, 'parley.db')), 0o600);
    assert.equal(mode(join(dataDir, 'parley.db-wal')), 0o600);
    assert.equal(mode(join(dataDir, 'parley.db-shm')), 0o600);
    await ts.stop();
  } finally {
    process.umask(old);
    rmSync(root, { recursive: true, force: true });
  }
});

test('an existing data directory and database that others could read are tightened at start', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-perm-'));
  chmodSync(dataDir, 0o755);
  writeFileSync(join(dataDir, 'parley.db'), '', { mode: 0o644 });
  chmodSync(join(dataDir, 'parley.db'), 0o644);
  mkdirSync(join(dataDir, 'other'));
  const ts = await startTestServer({ dataDir });
  assert.equal(mode(dataDir), 0o700);
  assert.equal(mode(join(dataDir, 'parley.db')), 0o600);
  await ts.stop();
});

test('demo accounts seeded by a demo run are refused by a server started without demo mode, and work again in demo mode', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-demo-'));
  const plain = { listen: { c2s: { requireTls: false } } }; // PLAIN without TLS: a test shortcut
  let ts: TestServer | null = null;
  try {
    ts = await startTestServer({ ...plain, dataDir, demo: { enabled: true } });
    assert.equal(outcome(await plainAttempt(ts.port, 'alice', 'demo')), 'success', 'demo mode: the demo account logs in');
    // carol's owner changed her password: she is no longer a well-known account.
    await ts.server.core.users.setCredentials(DOMAIN, 'carol', await makeCredentials('carols own password'));
    await ts.stop({ keepData: true });

    ts = await startTestServer({ ...plain, dataDir }); // a real deployment on the same dataDir
    for (const user of ['alice', 'bob', 'dave']) {
      assert.equal(outcome(await plainAttempt(ts.port, user, 'demo')), 'account-disabled', `${user}/demo over PLAIN`);
      assert.equal(outcome(await scramAttempt(ts.port, user, 'demo')), 'account-disabled', `${user}/demo over SCRAM`);
    }
    assert.equal(outcome(await plainAttempt(ts.port, 'carol', 'carols own password')), 'success', 'an account with its own password is not touched');
    await ts.stop({ keepData: true });

    ts = await startTestServer({ ...plain, dataDir, demo: { enabled: true } });
    assert.equal(outcome(await plainAttempt(ts.port, 'alice', 'demo')), 'success', 'demo mode again: seeded again');
  } finally {
    await ts?.stop({ keepData: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
});
