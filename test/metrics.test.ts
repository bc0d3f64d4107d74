/**
 * /metrics after real traffic (issue 9): TCP logins (and a failed one), messages
 * delivered, stored offline and bounced, a BOSH session; the text format parsed and the
 * counters checked, with names, types and labels following Prometheus conventions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from './helpers/until.js';
import { startTestServer, DOMAIN, type TestServer } from './helpers/server.js';
import { authFailure, connectClient, xml, type TestClient } from './helpers/client.js';
import { RawBosh } from './helpers/bosh.js';
import { parseProm, sampleSum, sampleValue, type PromFamily } from './helpers/prom.js';
import { LIMIT_NAMES } from '../src/support/stats.js';

async function scrape(ts: TestServer, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${ts.httpUrl}/metrics`, { headers });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('/metrics', () => {
  let ts: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let bosh: RawBosh;
  let fams: Map<string, PromFamily>;
  let text: string;

  before(async () => {
    ts = await startTestServer();
    for (const u of ['alice', 'bob', 'carol', 'dave']) await ts.addUser(u);
    alice = await connectClient({ port: ts.port, username: 'alice' });
    bob = await connectClient({ port: ts.port, username: 'bob' });
    assert.equal(await authFailure({ port: ts.port, username: 'alice', password: 'wrong', mechanism: 'PLAIN' }), 'not-authorized');
    bosh = new RawBosh(`${ts.httpUrl}/http-bind`);
    await bosh.login('dave');

    await alice.send(xml('message', { to: `bob@${DOMAIN}`, type: 'chat', id: 'm1' }, xml('body', null, 'hello bob')));
    await bob.message(`alice@${DOMAIN}/test`);
    // carol has no session: stored offline (and archived).
    await alice.send(xml('message', { to: `carol@${DOMAIN}`, type: 'chat', id: 'm2' }, xml('body', null, 'for later')));
    // nobody has no account: bounced with service-unavailable.
    await alice.send(xml('message', { to: `nobody@${DOMAIN}`, type: 'chat', id: 'm3' }, xml('body', null, 'anyone?')));
    await alice.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'm3', 5000, 'the bounce');
    await alice.iq(xml('iq', { type: 'get', to: DOMAIN, id: 'p1' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    // The offline write lands after the bounce of m3 at the latest (one chain per recipient, m2 first).
    await until('the offline write of m2', () => ts.server.core.stats.offlineStored >= 1);

    const r = await scrape(ts);
    assert.equal(r.status, 200);
    assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
    text = r.text;
    fams = parseProm(text);
  });

  after(async () => {
    await alice?.stop();
    await bob?.stop();
    await ts?.stop();
  });

  test('every family is parley_*, typed, with help; counters end in _total and nothing else does', () => {
    assert.ok(fams.size > 30, `only ${fams.size} families`);
    for (const f of fams.values()) {
      assert.match(f.name, /^parley_[a-z0-9_]+$/, f.name);
      assert.ok(['counter', 'gauge', 'histogram'].includes(f.type), `${f.name}: type ${f.type}`);
      assert.ok(f.help.length > 0, `${f.name} has no help`);
      assert.equal(f.name.endsWith('_total'), f.type === 'counter', `${f.name} (${f.type})`);
      for (const s of f.samples) assert.ok(Number.isFinite(s.value) && s.value >= 0, `${s.name} = ${s.value}`);
    }
    for (const name of ['parley_process_resident_memory_bytes', 'parley_process_heap_used_bytes', 'parley_event_loop_lag_seconds', 'parley_uptime_seconds']) {
      assert.ok(fams.has(name), `${name} is missing`);
    }
    assert.ok(sampleValue(fams, 'parley_process_resident_memory_bytes')! > 1_000_000);
  });

  test('sessions are counted by transport and state', () => {
    assert.equal(sampleValue(fams, 'parley_sessions', { transport: 'tcp', state: 'available' }), 2);
    assert.equal(sampleSum(fams, 'parley_sessions', { transport: 'bosh' }), 1);
    assert.equal(sampleSum(fams, 'parley_sessions', { transport: 'websocket' }), 0);
    assert.equal(sampleValue(fams, 'parley_bosh_sessions'), 1);
    assert.equal(sampleValue(fams, 'parley_bosh_sessions_created_total'), 1);
  });

  test('logins and failures are counted by mechanism', () => {
    assert.equal(sampleSum(fams, 'parley_logins_total'), 3);
    assert.equal(sampleValue(fams, 'parley_logins_total', { mechanism: 'SCRAM-SHA-256' })! >= 1, true, 'the BOSH login (SCRAM-SHA-256)');
    assert.equal(sampleValue(fams, 'parley_login_failures_total', { mechanism: 'PLAIN' }), 1);
    for (const s of fams.get('parley_logins_total')!.samples) assert.match(s.labels.mechanism!, /^(PLAIN|SCRAM-SHA-(1|256)(-PLUS)?|PREBIND|other)$/);
  });

  test('stanzas in, out and bounced are counted by kind', () => {
    assert.equal(sampleValue(fams, 'parley_stanzas_in_total', { kind: 'message' }), 3);
    // bob's message and alice's bounce.
    assert.equal(sampleValue(fams, 'parley_stanzas_out_total', { kind: 'message' }), 2);
    assert.equal(sampleValue(fams, 'parley_stanzas_bounced_total', { kind: 'message' }), 1);
    assert.ok(sampleValue(fams, 'parley_stanzas_in_total', { kind: 'presence' })! >= 3);
    assert.equal(sampleValue(fams, 'parley_stanzas_in_total', { kind: 'iq' }), 1, 'the ping (resource binding comes before the session is active)');
    assert.equal(sampleValue(fams, 'parley_stanzas_out_total', { kind: 'iq' }), 1, 'the ping result (the session answers its own bind directly)');
  });

  test('offline and archive writes are counted', () => {
    assert.equal(sampleValue(fams, 'parley_offline_stored_total'), 1);
    assert.equal(sampleValue(fams, 'parley_offline_refused_total'), 0);
    // alice→bob for both, alice→carol for both.
    assert.ok(sampleValue(fams, 'parley_archive_writes_total')! >= 4);
  });

  test('the routing histogram has cumulative buckets ending at +Inf = count', () => {
    const h = fams.get('parley_routing_delivery_seconds')!;
    assert.equal(h.type, 'histogram');
    const buckets = h.samples.filter((s) => s.name === 'parley_routing_delivery_seconds_bucket');
    assert.ok(buckets.length > 5);
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(buckets[i]!.labels.le === '+Inf' ? Infinity : buckets[i]!.labels.le) > Number(buckets[i - 1]!.labels.le));
      assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'cumulative');
    }
    const count = sampleValue(fams, 'parley_routing_delivery_seconds', {}, 'parley_routing_delivery_seconds_count')!;
    assert.equal(buckets.at(-1)!.labels.le, '+Inf');
    assert.equal(buckets.at(-1)!.value, count);
    assert.equal(count, 2, 'two messages reached a local session');
    assert.ok(sampleValue(fams, 'parley_routing_delivery_seconds', {}, 'parley_routing_delivery_seconds_sum')! > 0);
  });

  test('the store is measured per shard', () => {
    assert.ok(sampleValue(fams, 'parley_store_operations_total', { shard: 'main' })! > 0);
    assert.equal(sampleValue(fams, 'parley_store_errors_total', { shard: 'main' }), 0);
    assert.equal(sampleValue(fams, 'parley_store_breaker_state', { shard: 'main', state: 'closed' }), 1);
    assert.equal(sampleValue(fams, 'parley_store_breaker_state', { shard: 'main', state: 'open' }), 0);
    assert.equal(sampleValue(fams, 'parley_store_healthy', { shard: 'main' }), 1);
    const count = sampleValue(fams, 'parley_store_operation_seconds', { shard: 'main' }, 'parley_store_operation_seconds_count')!;
    assert.ok(count > 0);
    assert.equal(sampleValue(fams, 'parley_store_operation_seconds', { shard: 'main', le: '+Inf' }, 'parley_store_operation_seconds_bucket'), count);
  });

  test('limit hits are exported for every limit, cluster and BOSH families are there', () => {
    const limits = fams.get('parley_limit_hits_total')!.samples.map((s) => s.labels.limit);
    assert.deepEqual([...limits].sort(), [...LIMIT_NAMES].sort());
    assert.equal(sampleValue(fams, 'parley_cluster_members'), 1);
    assert.equal(sampleValue(fams, 'parley_cluster_forwarded_total'), 0);
    for (const n of ['parley_bosh_held_requests', 'parley_bosh_retransmissions_total', 'parley_bosh_out_of_order_total', 'parley_bosh_cut_requests_total', 'parley_bosh_effective_wait_seconds', 'parley_bosh_terminations_total']) {
      assert.ok(fams.has(n), `${n} is missing`);
    }
  });

  test('counters move with more traffic between two scrapes', async () => {
    await bob.send(xml('message', { to: `alice@${DOMAIN}`, type: 'chat', id: 'm4' }, xml('body', null, 'hi alice')));
    await alice.message(`bob@${DOMAIN}/test`);
    const again = parseProm((await scrape(ts)).text);
    assert.equal(sampleValue(again, 'parley_stanzas_in_total', { kind: 'message' }), 4);
    assert.equal(sampleValue(again, 'parley_stanzas_out_total', { kind: 'message' }), 3);
    assert.equal(sampleValue(again, 'parley_routing_delivery_seconds', {}, 'parley_routing_delivery_seconds_count'), 3);
  });

  test('a prebind counts as a login with mechanism PREBIND', async () => {
    await ts.server.bosh!.prebind('carol');
    const again = parseProm((await scrape(ts)).text);
    assert.equal(sampleValue(again, 'parley_logins_total', { mechanism: 'PREBIND' }), 1);
  });
});

describe('/metrics access', () => {
  test('an address outside metrics.allowFrom gets 403', async () => {
    const ts = await startTestServer({ metrics: { allowFrom: ['10.0.0.0/8'] } });
    try {
      const r = await scrape(ts);
      assert.equal(r.status, 403);
      assert.match(r.text, /metrics\.allowFrom/);
    } finally {
      await ts.stop();
    }
  });

  test('with metrics.token, a scrape needs the bearer token', async () => {
    const ts = await startTestServer({ metrics: { token: 's3cret-token' } });
    try {
      assert.equal((await scrape(ts)).status, 401);
      assert.equal((await scrape(ts, { Authorization: 'Bearer wrong' })).status, 401);
      const ok = await scrape(ts, { Authorization: 'Bearer s3cret-token' });
      assert.equal(ok.status, 200);
      assert.ok(parseProm(ok.text).has('parley_sessions'));
    } finally {
      await ts.stop();
    }
  });

  test('metrics.enabled false: no /metrics', async () => {
    const ts = await startTestServer({ metrics: { enabled: false } });
    try {
      assert.equal((await scrape(ts)).status, 404);
    } finally {
      await ts.stop();
    }
  });
});
