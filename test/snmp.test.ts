/**
 * The SNMP agent (issue 9), read with Debian's `snmpget`/`snmpwalk` (package `snmp`)
 * after real traffic: sessions and stanza counters match /metrics, the walk shows
 * PARLEY-MIB names (deploy/PARLEY-MIB.txt), v2c with the configured community only,
 * and the SNMPv3 user with authentication and privacy.
 *
 * The IETF base modules the MIB imports (SNMPv2-SMI, -TC, -CONF) are not in Debian's
 * `snmp` package (they are in non-free snmp-mibs-downloader); net-snmp (npm) ships them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { connectClient, xml, type TestClient } from './helpers/client.js';
import { parseProm, sampleSum, sampleValue } from './helpers/prom.js';
import { needSnmpTools } from './helpers/tools.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MIBDIRS = `+${join(ROOT, 'deploy')}:${join(ROOT, 'node_modules/net-snmp/lib/mibs')}`;
const COMMUNITY = 'parley-test';
const V3 = { user: 'ops', authKey: 'auth-pass-123', privKey: 'priv-pass-456' };

const skip = needSnmpTools();

/** A UDP port nobody uses right now (never 161/1161). */
async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `name = value` per line from snmpget/snmpwalk with -Oqv-less output (-OQ: `name = value`). */
function values(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(' = ');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 3).trim());
  }
  return m;
}

describe('SNMP agent', { skip }, () => {
  let ts: TestServer;
  let port: number;
  let alice: TestClient;
  let bob: TestClient;
  const v2 = (...a: string[]) => ['-v2c', '-c', COMMUNITY, '-m', '+PARLEY-MIB', '-M', MIBDIRS, '-OQs', '-t', '3', '-r', '1', `127.0.0.1:${port}`, ...a];

  before(async () => {
    port = await freeUdpPort();
    ts = await startTestServer({
      snmp: { host: '127.0.0.1', port, community: COMMUNITY, v3: { user: V3.user, authProtocol: 'sha256', authKey: V3.authKey, privProtocol: 'aes', privKey: V3.privKey } },
    });
    await ts.addUser('alice');
    await ts.addUser('bob');
    alice = await connectClient({ port: ts.port, username: 'alice' });
    bob = await connectClient({ port: ts.port, username: 'bob' });
    for (let i = 0; i < 3; i++) {
      await alice.send(xml('message', { to: `bob@${DOMAIN}`, type: 'chat', id: `s${i}` }, xml('body', null, `hello ${i}`)));
      await bob.message(`alice@${DOMAIN}/test`);
    }
    await alice.send(xml('message', { to: `nobody@${DOMAIN}`, type: 'chat', id: 'bounce' }, xml('body', null, '?')));
    await alice.waitFor((el) => el.is('message') && el.attrs.type === 'error', 5000, 'the bounce');
    // The agent refreshes its copy at most every 200 ms.
    await new Promise((r) => setTimeout(r, 300));
  });

  after(async () => {
    await alice?.stop();
    await bob?.stop();
    await ts?.stop();
  });

  test('snmpget reads sessions and stanza counters that match /metrics', async () => {
    const out = values(
      await run(
        'snmpget',
        v2('PARLEY-MIB::parleySessionsTotal.0', 'PARLEY-MIB::parleySessionsTcp.0', 'PARLEY-MIB::parleyMessagesIn.0', 'PARLEY-MIB::parleyMessagesOut.0', 'PARLEY-MIB::parleyMessagesBounced.0', 'PARLEY-MIB::parleyLogins.0', 'PARLEY-MIB::parleyPresencesIn.0'),
      ),
    );
    const fams = parseProm(await (await fetch(`${ts.httpUrl}/metrics`)).text());
    assert.equal(out.get('parleySessionsTotal.0'), String(sampleSum(fams, 'parley_sessions')));
    assert.equal(out.get('parleySessionsTcp.0'), '2');
    assert.equal(out.get('parleyMessagesIn.0'), String(sampleValue(fams, 'parley_stanzas_in_total', { kind: 'message' })));
    assert.equal(out.get('parleyMessagesIn.0'), '4');
    assert.equal(out.get('parleyMessagesOut.0'), String(sampleValue(fams, 'parley_stanzas_out_total', { kind: 'message' })));
    assert.equal(out.get('parleyMessagesOut.0'), '4', 'three to bob, one bounce to alice');
    assert.equal(out.get('parleyMessagesBounced.0'), '1');
    assert.equal(out.get('parleyLogins.0'), String(sampleSum(fams, 'parley_logins_total')));
    assert.equal(out.get('parleyPresencesIn.0'), String(sampleValue(fams, 'parley_stanzas_in_total', { kind: 'presence' })));
  });

  test('snmpwalk of PARLEY-MIB::parley shows the names, the limit table and the shard table', async () => {
    const out = await run('snmpwalk', v2('PARLEY-MIB::parley'));
    const v = values(out);
    assert.match(v.get('parleyUptime.0') ?? '', /\d+:\d+:\d+/);
    assert.match(v.get('parleyHeapUsedKBytes.0') ?? '', /^\d{4,} kilobytes$/);
    assert.match(v.get('parleyRssKBytes.0') ?? '', /^\d{4,} kilobytes$/);
    assert.equal(v.get('parleyClusterMembers.0'), '1');
    assert.equal(v.get('parleyLimitName.1'), 'message-rate');
    assert.equal(v.get('parleyLimitHits.1'), '0');
    assert.equal(v.get('parleyLimitName.12'), 'bosh-sessions-per-ip');
    assert.equal(v.get('parleyShardName.1'), 'main');
    assert.equal(v.get('parleyShardHealthy.1'), 'true');
    assert.equal(v.get('parleyShardBreaker.1'), 'closed');
    assert.ok(Number(v.get('parleyShardOperations.1')) > 0);
    for (const n of ['parleyBoshSessions.0', 'parleyBoshHeldRequests.0', 'parleyOfflineStored.0', 'parleyArchiveWrites.0', 'parleyLoginFailures.0']) assert.ok(v.has(n), `${n} is missing`);
  });

  test('a wrong community gets no answer', async () => {
    await assert.rejects(run('snmpget', ['-v2c', '-c', 'wrong', '-t', '1', '-r', '0', `127.0.0.1:${port}`, '1.3.6.1.4.1.32473.1.1.2.1.0']), /Timeout/);
  });

  test('the SNMPv3 user reads with authentication and privacy', async () => {
    const out = values(
      await run('snmpget', ['-v3', '-l', 'authPriv', '-u', V3.user, '-a', 'SHA-256', '-A', V3.authKey, '-x', 'AES', '-X', V3.privKey, '-m', '+PARLEY-MIB', '-M', MIBDIRS, '-OQs', '-t', '3', '-r', '1', `127.0.0.1:${port}`, 'PARLEY-MIB::parleySessionsTotal.0']),
    );
    assert.equal(out.get('parleySessionsTotal.0'), '2');
    await assert.rejects(run('snmpget', ['-v3', '-l', 'authPriv', '-u', V3.user, '-a', 'SHA-256', '-A', 'not-the-key', '-x', 'AES', '-X', V3.privKey, '-t', '1', '-r', '0', `127.0.0.1:${port}`, '1.3.6.1.4.1.32473.1.1.2.1.0']));
  });
});
