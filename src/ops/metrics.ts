/**
 * Prometheus metrics at GET /metrics on the HTTP listener (issue 9), in the text
 * exposition format, from a registry of its own (not prom-client's global one).
 *
 * Nothing here is on the hot path: every family is read at scrape time from the parts
 * that own the numbers — ServerStats (counters and histograms the hot path bumps),
 * the session registry, the BOSH manager, the storage router and the cluster node.
 * Labels come from fixed sets (stanza kinds, transports, SASL mechanisms Parley offers,
 * limit names, BOSH termination reasons, shard names of the map): no per-user labels.
 *
 * Access: `metrics.allowFrom` (loopback by default; others get 403) and, when
 * `metrics.token` is set, `Authorization: Bearer <token>` (401 without it).
 * See docs/metrics.md for every family.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Registry, type Metric } from 'prom-client';
import type { ClusterNode } from '../cluster/cluster-node.js';
import type { ServerCore } from '../core/server.js';
import type { TransportKind } from '../core/session.js';
import { DROP_RULES, LIMIT_NAMES, type Histogram } from '../support/stats.js';
import type { ShardedStorage } from '../storage/sharded.js';
import type { BoshManager } from '../transports/bosh/bosh-manager.js';
import type { HttpRoute } from '../transports/http/http-listener.js';
import { addressAllowed, blockListOf } from '../support/address-list.js';
import { clientAddress } from '../support/client-address.js';

/** What the exporters read besides the core. */
export interface MetricsSources {
  core: ServerCore;
  bosh: BoshManager | null;
  storage: ShardedStorage;
  cluster: ClusterNode | null;
}

export type SessionState = 'available' | 'bound' | 'hibernated';
export const TRANSPORTS: readonly TransportKind[] = ['tcp', 'bosh', 'websocket'];
export const SESSION_STATES: readonly SessionState[] = ['available', 'bound', 'hibernated'];

/** This node's sessions by transport and state (one pass over the registry, at scrape time). */
export function sessionCounts(core: ServerCore): { total: number; byTransport: Record<TransportKind, number>; by: Record<TransportKind, Record<SessionState, number>> } {
  const zero = (): Record<SessionState, number> => ({ available: 0, bound: 0, hibernated: 0 });
  const by: Record<TransportKind, Record<SessionState, number>> = { tcp: zero(), bosh: zero(), websocket: zero() };
  let total = 0;
  for (const s of core.sessions.all()) {
    const state: SessionState = s.isHibernated ? 'hibernated' : s.isAvailable ? 'available' : 'bound';
    const row = by[s.transport];
    if (row) row[state]++;
    total++;
  }
  const byTransport = { tcp: 0, bosh: 0, websocket: 0 } as Record<TransportKind, number>;
  for (const t of TRANSPORTS) byTransport[t] = by[t].available + by[t].bound + by[t].hibernated;
  return { total, byTransport, by };
}

/** The SASL mechanisms a label may name (bounded: what Parley offers, PREBIND, and "other"). */
export function mechanismsOf(core: ServerCore): string[] {
  const seen = new Set(['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'PREBIND']);
  for (const m of Object.keys(core.stats.logins)) seen.add(m);
  for (const m of Object.keys(core.stats.loginFailures)) seen.add(m);
  return [...seen].sort();
}

type Labels = Record<string, string>;
type Sample = [labels: Labels, value: number, suffix?: string];
type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

/**
 * A metric family computed when scraped, in prom-client's metric shape (what
 * Registry#metrics() serializes), so values come straight from their owners.
 */
class Family {
  readonly aggregator = 'omit';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly read: () => Sample[],
  ) {}
  get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.read().map(([labels, value, suffix]) => ({ labels, value, metricName: suffix ? this.name + suffix : this.name })),
    };
  }
  reset(): void {}
}

/** A fixed-bucket histogram as Prometheus samples: cumulative buckets, +Inf, sum, count. */
function histogramSamples(h: Histogram, labels: Labels = {}): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    cumulative += h.counts[i]!;
    out.push([{ ...labels, le: String(h.bounds[i]) }, cumulative, '_bucket']);
  }
  cumulative += h.counts[h.bounds.length]!;
  out.push([{ ...labels, le: '+Inf' }, cumulative, '_bucket']);
  out.push([labels, h.sum, '_sum']);
  out.push([labels, h.count, '_count']);
  return out;
}

const byKind = (r: Record<string, number>): Sample[] => Object.entries(r).map(([kind, v]) => [{ kind }, v]);

export interface MetricsExporter {
  readonly registry: Registry;
  /** The exposition text. */
  text(): Promise<string>;
  /** Stops the event-loop delay monitor. */
  stop(): void;
}

export function createMetrics(src: MetricsSources): MetricsExporter {
  const { core, bosh, storage, cluster } = src;
  const stats = core.stats;
  const registry = new Registry();
  const loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  const families: Family[] = [];
  const add = (name: string, help: string, type: MetricType, read: () => Sample[]) => families.push(new Family(name, help, type, read));
  const one = (v: number): Sample[] => [[{}, v]];

  // ---------------------------------------------------------------- sessions and logins
  add('parley_sessions', 'Sessions on this node by transport and state (available: sent presence; bound: no presence yet; hibernated: waiting for resumption).', 'gauge', () => {
    const c = sessionCounts(core);
    const out: Sample[] = [];
    for (const t of TRANSPORTS) for (const st of SESSION_STATES) out.push([{ transport: t, state: st }, c.by[t][st]]);
    return out;
  });
  add('parley_logins_total', 'Successful logins by SASL mechanism (PREBIND: sessions the portal prebound).', 'counter', () => mechanismsOf(core).map((m) => [{ mechanism: m }, stats.logins[m] ?? 0]));
  add('parley_login_failures_total', 'Failed login attempts by SASL mechanism ("other": a mechanism not offered).', 'counter', () => mechanismsOf(core).map((m) => [{ mechanism: m }, stats.loginFailures[m] ?? 0]));

  // ---------------------------------------------------------------- stanzas and routing
  add('parley_stanzas_in_total', 'Stanzas received from clients of this node, by kind.', 'counter', () => byKind(stats.stanzasIn));
  add('parley_stanzas_out_total', 'Stanzas delivered to sessions of this node, by kind.', 'counter', () => byKind(stats.stanzasOut));
  add('parley_stanzas_bounced_total', 'Stanzas bounced to their sender with a stanza error, by kind.', 'counter', () => byKind(stats.stanzasBounced));
  add('parley_stanzas_dropped_total', 'Stanzas dropped without an error to their sender, by the rule that says so.', 'counter', () => DROP_RULES.map((r) => [{ rule: r }, stats.stanzasDropped[r]]));
  add('parley_routing_delivery_seconds', 'Time from a message entering the router to its delivery to a local session.', 'histogram', () => histogramSamples(stats.routing));
  add('parley_offline_stored_total', 'Messages written to offline storage.', 'counter', () => one(stats.offlineStored));
  add('parley_offline_refused_total', 'Messages offline storage refused (full, store down): bounced to the sender.', 'counter', () => one(stats.offlineRefused));
  add('parley_archive_writes_total', 'Messages written to the message archive (one per owner).', 'counter', () => one(stats.archiveWrites));
  add('parley_limit_hits_total', 'Times a limit refused or slowed something, by limit.', 'counter', () => LIMIT_NAMES.map((l) => [{ limit: l }, stats.limitHits[l]]));

  // ---------------------------------------------------------------- BOSH
  if (bosh) {
    const snap = (() => {
      // One snapshot per scrape (it walks the BOSH sessions), shared by the BOSH families.
      let at = -1;
      let last = bosh.snapshot();
      return () => {
        if (at !== scrapes) {
          last = bosh.snapshot();
          at = scrapes;
        }
        return last;
      };
    })();
    add('parley_bosh_sessions', 'BOSH sessions open.', 'gauge', () => one(snap().sessions));
    add('parley_bosh_held_requests', 'BOSH requests held open (waiting for something to send).', 'gauge', () => one(snap().heldRequests));
    add('parley_bosh_paused_sessions', 'BOSH sessions paused by their client.', 'gauge', () => one(snap().pausedSessions));
    add('parley_bosh_hibernated_sessions', 'BOSH sessions hibernated (no request held for a while).', 'gauge', () => one(snap().hibernatedSessions));
    add('parley_bosh_effective_wait_seconds', 'Mean effective wait over BOSH sessions (shortened for sessions whose requests get cut).', 'gauge', () => one(snap().meanEffectiveWaitMs / 1000));
    add('parley_bosh_adapted_sessions', 'BOSH sessions whose wait was shortened after cut requests.', 'gauge', () => one(snap().adaptedSessions));
    add('parley_bosh_sessions_created_total', 'BOSH sessions created (prebind included).', 'counter', () => one(snap().sessionsCreated));
    add('parley_bosh_requests_total', 'BOSH requests received.', 'counter', () => one(snap().requests));
    add('parley_bosh_retransmissions_total', 'BOSH requests answered from the response buffer (a repeated rid).', 'counter', () => one(snap().retransmissions));
    add('parley_bosh_out_of_order_total', 'BOSH requests that arrived before their predecessor and were held back.', 'counter', () => one(snap().outOfOrder));
    add('parley_bosh_cut_requests_total', 'Held BOSH requests whose connection closed before their response.', 'counter', () => one(snap().cutRequests));
    add('parley_bosh_reports_total', 'BOSH responses sent with a report (a response the client missed).', 'counter', () => one(snap().reports));
    add('parley_bosh_grouped_presences_total', 'Presence stanzas sent grouped with others after waiting.', 'counter', () => one(snap().groupedPresences));
    add('parley_bosh_terminations_total', 'BOSH sessions ended, by reason.', 'counter', () => Object.entries(snap().terminations).map(([reason, v]) => [{ reason }, v]));
  }

  // ---------------------------------------------------------------- storage
  add('parley_store_operation_seconds', 'Time of each store operation attempt, by shard.', 'histogram', () => storage.latencies().flatMap(({ shard, latency }) => histogramSamples(latency, { shard })));
  add('parley_store_operations_total', 'Store operations started, by shard.', 'counter', () => storage.status().map((s) => [{ shard: s.name }, s.ops]));
  add('parley_store_errors_total', 'Store operation attempts that failed, by shard.', 'counter', () => storage.status().map((s) => [{ shard: s.name }, s.errors]));
  add('parley_store_retries_total', 'Store operations retried after a transient failure, by shard.', 'counter', () => storage.status().map((s) => [{ shard: s.name }, s.retries]));
  add('parley_store_rejected_total', 'Store operations refused at once because the shard breaker was open, by shard.', 'counter', () => storage.status().map((s) => [{ shard: s.name }, s.rejected]));
  add('parley_store_in_flight', 'Store operations in flight, by shard.', 'gauge', () => storage.status().map((s) => [{ shard: s.name }, s.inFlight]));
  add('parley_store_healthy', '1 when the shard answered its last health check.', 'gauge', () => storage.status().map((s) => [{ shard: s.name }, s.healthy ? 1 : 0]));
  add('parley_store_breaker_state', 'Circuit breaker of each shard: 1 for its current state.', 'gauge', () =>
    storage.status().flatMap((s) => (['closed', 'half-open', 'open'] as const).map((st): Sample => [{ shard: s.name, state: st }, s.breaker === st ? 1 : 0])),
  );

  // ---------------------------------------------------------------- cluster
  add('parley_cluster_members', 'Nodes in the cluster as this node sees them (1 without a cluster).', 'gauge', () => one(cluster ? cluster.members().length : 1));
  add('parley_cluster_remote_sessions', 'Sessions of other nodes in this node\'s directory replica.', 'gauge', () => one(cluster ? cluster.stats().remoteSessions : 0));
  add('parley_cluster_forwarded_total', 'Stanzas forwarded to other nodes.', 'counter', () => one(cluster?.forwarded ?? 0));
  add('parley_cluster_received_total', 'Stanzas received from other nodes.', 'counter', () => one(cluster?.received ?? 0));
  add('parley_cluster_rerouted_total', 'Stanzas routed again after their node died.', 'counter', () => one(cluster?.rerouted ?? 0));
  add('parley_cluster_overflowed_total', 'Stanzas refused because a link queue to another node was full.', 'counter', () => one(cluster?.overflowed ?? 0));
  add('parley_cluster_queued', 'Frames queued to other nodes and not yet acknowledged.', 'gauge', () => one(cluster ? cluster.stats().queued : 0));
  add('parley_cluster_links_refused_total', 'Incoming cluster links refused or ended by a failed check (bad hello, not a member, wrong secret, a forged or altered record).', 'counter', () => one(cluster ? cluster.stats().linksRefused : 0));

  // ---------------------------------------------------------------- process
  add('parley_uptime_seconds', 'Seconds since this server started.', 'gauge', () => one((Date.now() - core.startedAt.getTime()) / 1000));
  add('parley_process_resident_memory_bytes', 'Resident set size.', 'gauge', () => one(process.memoryUsage.rss()));
  add('parley_process_heap_used_bytes', 'V8 heap in use.', 'gauge', () => one(process.memoryUsage().heapUsed));
  add('parley_process_heap_total_bytes', 'V8 heap allocated.', 'gauge', () => one(process.memoryUsage().heapTotal));
  add('parley_process_cpu_seconds_total', 'CPU time of the process (user and system).', 'counter', () => {
    const u = process.cpuUsage();
    return [[{ mode: 'user' }, u.user / 1e6], [{ mode: 'system' }, u.system / 1e6]];
  });
  add('parley_event_loop_lag_seconds', 'Event-loop delay since the previous scrape (perf_hooks.monitorEventLoopDelay, 20 ms resolution), by quantile.', 'gauge', () => {
    const q = (p: number) => (loop.count > 0 ? loop.percentile(p) / 1e9 : 0);
    return [
      [{ quantile: '0.5' }, q(50)],
      [{ quantile: '0.99' }, q(99)],
      [{ quantile: '1' }, loop.count > 0 ? loop.max / 1e9 : 0],
    ];
  });

  for (const f of families) registry.registerMetric(f as unknown as Metric);
  let scrapes = 0;
  return {
    registry,
    async text() {
      scrapes++;
      const t = await registry.metrics();
      loop.reset();
      return t;
    },
    stop() {
      loop.disable();
    },
  };
}

/** The /metrics route: access checks, then the exposition text. */
export function metricsRoute(exporter: MetricsExporter, cfg: { allowFrom: string[]; token?: string | undefined }): HttpRoute {
  const allowed = blockListOf(cfg.allowFrom, 'metrics.allowFrom');
  const tokenHash = cfg.token === undefined ? null : createHash('sha256').update(cfg.token).digest();
  return async (req, res, url) => {
    if (url.pathname !== '/metrics') return false;
    const remote = clientAddress(req).replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    if (!addressAllowed(allowed, remote)) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`metrics are not served to ${remote} (metrics.allowFrom)\n`);
      return true;
    }
    if (tokenHash !== null) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
      // SECURITY: compare digests in constant time (no length or prefix leak).
      const given = createHash('sha256').update(m?.[1] ?? '').digest();
      if (!m || !timingSafeEqual(given, tokenHash)) {
        res.writeHead(401, { 'WWW-Authenticate': 'Bearer', 'Content-Type': 'text/plain; charset=utf-8' }).end('a bearer token is required (metrics.token)\n');
        return true;
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return true;
    }
    const body = await exporter.text();
    res.writeHead(200, { 'Content-Type': exporter.registry.contentType, 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
