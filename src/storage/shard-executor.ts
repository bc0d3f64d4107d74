/**
 * The executor of the storage router: runs one operation on one named shard, with what
 * every operation gets whatever its placement — the circuit breaker per shard, bounded
 * retries with backoff (only where a retry cannot double a write), a deadline per
 * operation, counters and a latency histogram per shard, a periodic health check, and the
 * hand-over of a shard to a new address (operations in flight finish on the old pool,
 * which closes when idle). It knows shards by name only: which shard holds a user is
 * `placement.ts`, moves and reloads are `shard-admin.ts`.
 */
import type { Kysely } from 'kysely';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../support/logger.js';
import { Histogram, LATENCY_BUCKETS } from '../support/stats.js';
import { ConfigError, StorageError } from '../support/errors.js';
import { CircuitBreaker } from './breaker.js';
import type { Backend } from './mysql.js';
import type { Database } from './schema.js';
import type { ShardSpec } from './shard-map.js';
import { classifyFailure, isServerFailure, toStorageError, type OpOptions, type ShardStatus } from './storage.js';

export interface ExecutorOptions {
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Retries of a failed operation (0: none). */
  retries: number;
  /** First retry delay; doubled each time, with jitter. */
  retryBackoffMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** Health check period (0: none). */
  healthIntervalMs: number;
  healthTimeoutMs: number;
  /**
   * The longest one operation may take, all its queries together (0: no limit). Past it
   * the caller gets a transient error, as for a lost connection, so no message waits on
   * a database for ever; the driver's own timeouts normally fire first.
   */
  opTimeoutMs?: number;
  /** Name the shard in errors (there are several). */
  namesShards: boolean;
}

/** One shard as the executor keeps it. Administration reads `spec` and `draining`. */
export interface Shard {
  readonly name: string;
  /** Set while the shard changes address: new operations wait for it. */
  hold: Promise<void> | null;
  spec: ShardSpec | null;
  backend: Backend;
  readonly breaker: CircuitBreaker;
  draining: boolean;
  healthy: boolean;
  latencyMs: number | null;
  lastError: string | null;
  ops: number;
  errors: number;
  retries: number;
  rejected: number;
  /** Time of each attempt of an operation on this shard, failed ones included (seconds). */
  readonly latency: Histogram;
}

/**
 * Runs operations on named shards.
 *
 * @example
 * const rows = await exec.run('s1', 'list users', (db) => db.selectFrom('users').selectAll().execute());
 */
export class ShardExecutor {
  readonly #opts: ExecutorOptions;
  readonly #shards = new Map<string, Shard>();
  /** Old pools of replaced or removed shards, closed once their last operation ends. */
  readonly #retired = new Set<Backend>();
  #health: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: ExecutorOptions) {
    this.#opts = opts;
  }

  get names(): string[] {
    return [...this.#shards.keys()];
  }

  get closed(): boolean {
    return this.#closed;
  }

  has(name: string): boolean {
    return this.#shards.has(name);
  }

  /** The shard's record (undefined when it is not in the map). */
  shard(name: string): Shard | undefined {
    return this.#shards.get(name);
  }

  /** The query layer of a shard's current pool, for bulk copies that run outside `run`. */
  db(name: string): Kysely<Database> {
    const s = this.#shards.get(name);
    if (!s) throw new StorageError(`no shard ${name} in the shard map`, false);
    return s.backend.db;
  }

  /** Adds a shard (at start, or a reload adding one). */
  add(name: string, spec: ShardSpec | null, backend: Backend, draining: boolean): void {
    const breaker = new CircuitBreaker({ failureThreshold: this.#opts.breakerThreshold, cooldownMs: this.#opts.breakerCooldownMs });
    const shard: Shard = { name, hold: null, spec, backend, breaker, draining, healthy: true, latencyMs: null, lastError: null, ops: 0, errors: 0, retries: 0, rejected: 0, latency: new Histogram(LATENCY_BUCKETS) };
    breaker.onChange = (state) => {
      const log = this.#opts.log;
      if (state === 'open') log?.error({ shard: name, address: shard.backend.address, lastError: shard.lastError }, 'shard unavailable: circuit open');
      else if (state === 'closed') log?.info({ shard: name }, 'shard available again: circuit closed');
    };
    this.#shards.set(name, shard);
  }

  /** Takes a shard out of the map; its pool closes once the operations in flight end. */
  remove(name: string): void {
    const s = this.#shards.get(name);
    if (!s) return;
    this.#shards.delete(name);
    this.#retire(s.backend);
  }

  /** Runs one operation on a shard: breaker, retries, deadline, counters, StorageError. */
  async run<T>(name: string, what: string, fn: (db: Kysely<Database>) => Promise<T>, opts?: OpOptions): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let shard = this.#shards.get(name);
      while (shard?.hold) {
        await shard.hold;
        shard = this.#shards.get(name);
      }
      if (!shard) throw new StorageError(`${what} failed: no shard ${name} in the shard map`, false);
      if (this.#closed) throw new StorageError(`${what} failed: storage is closed`, true);
      if (!shard.breaker.allow()) {
        shard.rejected++;
        throw new StorageError(`${what} failed: shard ${name} is unavailable (circuit open after repeated failures)`, true);
      }
      const backend = shard.backend;
      backend.inFlight++;
      shard.ops++;
      const started = performance.now();
      try {
        const r = await withDeadline(fn(backend.db), opts?.long ? 0 : (this.#opts.opTimeoutMs ?? 0));
        shard.breaker.success();
        return r;
      } catch (e) {
        if (e instanceof StorageError || e instanceof ConfigError) {
          shard.breaker.release();
          throw e;
        }
        const kind = classifyFailure(e);
        shard.errors++;
        if (isServerFailure(kind)) {
          shard.breaker.failure();
          shard.healthy = false;
          shard.lastError = describeError(e);
        } else {
          // The server answered (a constraint, a rolled-back transaction): it is alive.
          shard.breaker.success();
        }
        const retryable = kind === 'not-sent' || kind === 'rolled-back' || (kind === 'ambiguous' && opts?.idempotent !== false);
        if (retryable && attempt < this.#opts.retries && shard.breaker.state === 'closed' && !this.#closed) {
          shard.retries++;
          const delay = this.#opts.retryBackoffMs * 2 ** attempt * (0.5 + Math.random());
          await new Promise((r) => setTimeout(r, delay));
          continue;
        }
        const err = toStorageError(what, e, this.#opts.namesShards ? name : undefined);
        this.#opts.log?.warn({ shard: name, kind, attempt, err: err.message }, 'storage operation failed');
        throw err;
      } finally {
        shard.latency.observe((performance.now() - started) / 1000);
        backend.inFlight--;
        if (backend.inFlight === 0 && this.#retired.has(backend)) {
          this.#retired.delete(backend);
          void backend.close();
        }
      }
    }
  }

  /**
   * Points a shard at a new address (failover to a replica, a new VIP) so that no write
   * lands on the old server after one landed on the new: new operations are held, the
   * ones in flight finish on the old pool, a replica is given time to apply everything
   * the old server wrote (GTID wait, when both can tell), then the hold is released onto
   * the new pool. A replica that does not catch up in time fails with a transient
   * StorageError: the shard stays where it was. The hold lasts as long as the operations
   * in flight (milliseconds).
   */
  async swapBackend(name: string, next: Backend, timeoutMs: number): Promise<void> {
    const shard = this.#shards.get(name);
    if (!shard) throw new StorageError(`no shard ${name} in the shard map`, false);
    let release!: () => void;
    shard.hold = new Promise<void>((r) => (release = r));
    const old = shard.backend;
    const started = performance.now();
    try {
      const deadline = Date.now() + timeoutMs;
      while (old.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
      const pos = (await old.replicationPosition?.()) ?? null;
      if (pos !== null && next.waitForPosition) {
        const caughtUp = await next.waitForPosition(pos, timeoutMs).catch(() => false);
        if (!caughtUp) throw new StorageError(`shard ${name}: ${next.address} did not reach ${old.address}'s position ${pos} in ${timeoutMs} ms; address not changed`, true);
      }
      shard.backend = next;
      shard.healthy = true;
      shard.lastError = null;
      shard.breaker.success();
      this.#retire(old);
      this.#opts.log?.info({ shard: name, from: old.address, to: next.address, position: pos, heldMs: Math.round(performance.now() - started) }, 'shard address replaced');
    } finally {
      shard.hold = null;
      release();
    }
  }

  #retire(b: Backend): void {
    if (b.inFlight === 0) void b.close();
    else this.#retired.add(b);
  }

  // ------------------------------------------------------------------ health

  startHealth(): void {
    if (this.#opts.healthIntervalMs <= 0 || this.#health) return;
    this.#health = setInterval(() => void this.checkHealth(), this.#opts.healthIntervalMs);
    this.#health.unref();
  }

  /** Pings every shard once: latency, health, and the breaker closes when a dead shard answers again. */
  async checkHealth(): Promise<void> {
    await Promise.all(
      [...this.#shards.values()].map(async (shard) => {
        try {
          shard.latencyMs = await shard.backend.ping(this.#opts.healthTimeoutMs);
          if (!shard.healthy) this.#opts.log?.info({ shard: shard.name }, 'shard healthy again');
          shard.healthy = true;
          shard.breaker.success();
        } catch (e) {
          shard.healthy = false;
          shard.lastError = describeError(e);
          shard.breaker.failure();
        }
      }),
    );
  }

  /** The latency histogram of every shard in the map (for the metrics; live objects, read only). */
  latencies(): Array<{ shard: string; latency: Histogram }> {
    return [...this.#shards.values()].map((s) => ({ shard: s.name, latency: s.latency }));
  }

  status(): ShardStatus[] {
    return [...this.#shards.values()].map((s) => ({
      name: s.name,
      address: s.backend.address,
      healthy: s.healthy,
      breaker: s.breaker.state,
      draining: s.draining,
      latencyMs: s.latencyMs === null ? null : Math.round(s.latencyMs * 100) / 100,
      lastError: s.lastError,
      ops: s.ops,
      errors: s.errors,
      retries: s.retries,
      rejected: s.rejected,
      inFlight: s.backend.inFlight,
    }));
  }

  /** Refuses new operations, stops the health check and closes every pool. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#health) clearInterval(this.#health);
    await Promise.all([...[...this.#shards.values()].map((s) => s.backend.close()), ...[...this.#retired].map((b) => b.close())]);
  }
}

/** Rejects with an ambiguous failure (the work may still complete) when `p` takes longer than `ms`. */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  if (ms <= 0) return p;
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'PROTOCOL_SEQUENCE_TIMEOUT' })), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** A driver error as one line for logs and status: its code, then its message. */
export function describeError(e: unknown): string {
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
