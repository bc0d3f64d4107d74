/**
 * The server's statistics: plain counters and fixed-bucket histograms that the hot path
 * bumps for the price of an integer increment. Two exporters read the same object:
 * Prometheus text on /metrics and the SNMP agent (src/ops). Gauges (sessions, held BOSH
 * requests, cluster members, breaker states) are not kept here: the exporters compute
 * them when asked, from the parts that own them.
 *
 * Cardinality stays bounded by construction: every label is one of a fixed set (stanza
 * kinds, limit names, SASL mechanisms Parley offers, shard names of the map).
 */


export type StanzaKind = 'message' | 'presence' | 'iq';

/** Every limit Parley enforces (issue 9): the label of `limitHits`. */
export const LIMIT_NAMES = [
  'message-rate',
  'presence-rate',
  'directed-presences',
  'sessions-per-user',
  'roster-size',
  'offline-per-user',
  'stanza-size',
  'bosh-body-size',
  'unauthenticated-per-ip',
  'login-attempts-per-ip',
  'login-attempts-per-account',
  'bosh-sessions-per-ip',
  'sasl-attempts-per-connection',
  'sasl-attempts-per-ip',
  'pep-quota',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/**
 * The rules by which a stanza is dropped without an error to its sender, each one the
 * RFC's or the XEP's (core/delivery.ts decides; `parley_stanzas_dropped_total{rule}`).
 */
export const DROP_RULES = [
  /** A policy (privacy list, blocking, invisibility) said drop: XEP-0016 §2.1, XEP-0191 §3.5. */
  'policy',
  /** An error is never answered with an error (RFC 6120 §8.3.1) nor stored (RFC 6121 §8.5.2.1.1). */
  'error-stanza',
  /** A headline with no available resource (RFC 6121 §8.5.2.1.1). */
  'headline-no-resource',
  /** Presence that has no one to go to (to a gone resource, or to the server): RFC 6121 §8.5.3.2.2. */
  'presence-no-resource',
  /** An IQ result or error that answers no request of the server's. */
  'unsolicited-reply',
  /** A message the offline store declines by design: chat states, no-store hints (XEP-0160 §3, XEP-0334). */
  'not-worth-storing',
  /** A message to a user whose other resources have the copy already (a resource gone on the way). */
  'already-delivered',
  /** Presence to a node whose link is full: presence is never bounced (RFC 6121 §4.3.2). */
  'link-full-presence',
] as const;
export type DropRule = (typeof DROP_RULES)[number];

/** A histogram with fixed upper bounds (seconds), Prometheus-style (cumulative when exported). */
export class Histogram {
  readonly bounds: readonly number[];
  /** counts[i]: observations ≤ bounds[i] and > bounds[i-1]; the last one is +Inf. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** Buckets for times from 100 µs to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function byKind(): Record<StanzaKind, number> {
  return { message: 0, presence: 0, iq: 0 };
}

export class ServerStats {
  /** Stanzas from clients, by kind. */
  readonly stanzasIn = byKind();
  /** Stanzas delivered to local sessions, by kind. */
  readonly stanzasOut = byKind();
  /** Stanzas bounced with an error to their sender, by kind. */
  readonly stanzasBounced = byKind();
  /** Stanzas dropped without an error, by rule (core/delivery.ts). */
  readonly stanzasDropped = Object.fromEntries(DROP_RULES.map((n) => [n, 0])) as Record<DropRule, number>;
  /** Successful SASL logins by mechanism (PLAIN, SCRAM-SHA-256, ..., PREBIND). */
  readonly logins: Record<string, number> = Object.create(null) as Record<string, number>;
  /** Failed SASL attempts by mechanism. */
  readonly loginFailures: Record<string, number> = Object.create(null) as Record<string, number>;
  /** Times a limit refused or slowed something, by limit. */
  readonly limitHits = Object.fromEntries(LIMIT_NAMES.map((n) => [n, 0])) as Record<LimitName, number>;
  /** Messages written to offline storage, and refused by it (full, store down). */
  offlineStored = 0;
  offlineRefused = 0;
  /** Messages written to the archive (one per owner). */
  archiveWrites = 0;
  /** Time from a message entering the router to its delivery to a local session (seconds). */
  readonly routing = new Histogram(LATENCY_BUCKETS);

  login(mechanism: string, ok: boolean): void {
    const m = ok ? this.logins : this.loginFailures;
    m[mechanism] = (m[mechanism] ?? 0) + 1;
  }

  limitHit(name: LimitName): void {
    this.limitHits[name]++;
  }
}
