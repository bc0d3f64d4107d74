/**
 * The fault campaign's short version (the long one is `npm run faults`, see
 * test/faults/campaign.ts and docs/robustness.md): three faults, each on a fresh cluster
 * of node processes behind haproxy on a private redis-server, under a small counted load.
 * No message may be lost or duplicated, and the cluster must recover.
 *
 * The other faults are covered elsewhere in `npm test`: Redis restarted empty by
 * test/cluster-redis.test.ts, a MySQL shard killed and restarted by test/shards.test.ts,
 * SIGTERM drain by test/cluster-failover.test.ts; the netns partition runs in the long
 * campaign only (it takes ~30 s).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCampaign, type FaultName, type FaultResult } from './faults/campaign.js';
import { needHaproxy, needRedisServer } from './helpers/tools.js';

const skip = needHaproxy() || needRedisServer();
const isRoot = process.getuid?.() === 0;

async function one(fault: FaultName, t: { diagnostic(s: string): void }): Promise<FaultResult> {
  const [r] = await runCampaign([fault], { short: true, loadtest: false, log: (l) => t.diagnostic(l) });
  t.diagnostic(JSON.stringify(r));
  assert.ok(r!.sent > 50, `enough traffic (${r!.sent})`);
  assert.deepEqual(r!.lostIds, [], `no message lost: ${JSON.stringify(r)}`);
  assert.equal(r!.duplicated, 0, `no message duplicated: ${r!.dupIds.join(', ')}`);
  assert.ok(r!.recoveryMs >= 0, `the cluster recovered: ${JSON.stringify(r)}`);
  // A duplicate counts in two fates (live and stored).
  assert.equal(r!.delivered + r!.stored + r!.bounced - r!.storedAndBounced + r!.unacked, r!.sent, 'every message has one fate');
  return r!;
}

test('kill -9 of a node under load: nothing lost or duplicated, its users back through haproxy', { skip, timeout: 60_000 }, async (t) => {
  await one('kill9', t);
});

test('a node frozen past its lease then resumed: expelled, nothing lost or duplicated', { skip, timeout: 60_000 }, async (t) => {
  const r = await one('sigstop', t);
  assert.ok(r.notes.some((n) => /was expelled/.test(n)), r.notes.join('; '));
});

test('the disk of the SQLite file full: senders get errors, nothing silently lost, it recovers once space is freed', { skip: skip || (!isRoot && 'mounting a tmpfs needs root'), timeout: 60_000 }, async (t) => {
  const r = await one('disk-full', t);
  assert.ok(r.bounced > 0, 'messages that could not be stored bounced');
  for (const cond of Object.keys(r.bounceConditions)) assert.match(cond, /^wait\//, 'bounces say "try again later"');
});
