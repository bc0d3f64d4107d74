/**
 * The load generator tested against a Parley it starts itself (all three transports,
 * nothing may be lost) and against a server that drops every tenth message (the
 * generator must report exactly those as lost).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from './helpers/server.js';
import { startLossyServer } from './helpers/lossy-server.js';
import { makeScenario } from '../loadtest/scenario.js';
import { run, provisionRosters } from '../loadtest/coordinator.js';
import { SqlUserStore } from '../src/auth/user-store-sql.js';
import { makeCredentials } from '../src/auth/credentials.js';

test('a small mixed scenario against Parley loses nothing and reports sane figures', async () => {
  const ts = await startTestServer({ listen: { c2s: { requireTls: false }, http: { secure: true } } });
  try {
    const users = 240;
    const creds = await makeCredentials('pw');
    await (ts.server.core.users as SqlUserStore).createMany(
      'example.test',
      Array.from({ length: users }, (_, i) => ({ username: `user${i + 1}`, creds })),
    );
    const sc = makeScenario({
      domain: 'example.test',
      tcpPort: ts.port,
      httpPort: ts.httpPort,
      users,
      password: 'pw',
      transports: 'tcp:1,bosh:1,websocket:1',
      rosterSize: 4,
      loginRate: 400,
      messagesPerMinute: 120,
      presencePerMinute: 12,
      warmup: '500ms',
      duration: '3s',
      drain: '5s',
      serverPids: String(process.pid),
      progress: false,
    });
    const rosters = await provisionRosters(sc);
    assert.equal(rosters.complete, users, 'every friendship is mutual');
    const r = await run(sc);
    assert.equal(r.sessions.online, users);
    assert.equal(r.sessions.loginErrors, 0);
    assert.ok(r.messages.sent > 500, `sent ${r.messages.sent}`);
    assert.equal(r.messages.lost, 0);
    assert.equal(r.messages.duplicated, 0);
    assert.equal(r.messages.delivered, r.messages.sent);
    assert.ok(r.messages.latencyMs.p50 > 0 && r.messages.latencyMs.p99 < 2000, JSON.stringify(r.messages.latencyMs));
    assert.ok(r.presencesReceived > 0, 'presence changes reached friends');
    assert.ok(r.httpRequestsPerSecond > 0, 'BOSH requests counted');
    assert.ok(r.server && r.server.cpuPercentMeasure !== null);
    assert.ok(r.timeline.length >= 4);
    assert.deepEqual(r.errors, {});
  } finally {
    await ts.stop();
  }
});

test('messages a server drops are reported as lost, exactly', async () => {
  const lossy = await startLossyServer('lossy.test', 10);
  try {
    const sc = makeScenario({
      domain: 'lossy.test',
      tcpPort: lossy.port,
      users: 40,
      password: 'any',
      transports: 'tcp:1',
      loginRate: 400,
      messagesPerMinute: 600,
      warmup: '200ms',
      duration: '2s',
      drain: '3s',
      progress: false,
      workers: 2,
    });
    const r = await run(sc);
    assert.ok(lossy.dropped() >= 10, `dropped ${lossy.dropped()}`);
    assert.equal(r.messages.lost, lossy.dropped());
    assert.equal(r.messages.delivered, lossy.routed());
    assert.equal(r.messages.duplicated, 0);
  } finally {
    await lossy.close();
  }
});
