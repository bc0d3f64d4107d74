/**
 * The storage router: every user's data lives on exactly one shard, and every store
 * operation goes through here to reach it. One class serves both backends: the embedded
 * SQLite file is a single shard that never moves; MySQL is many shards placed by a
 * consistent-hash ring over the bare JID, with per-user overrides from a small directory
 * table (kept in memory, written through to the directory shard).
 *
 * What it adds around each operation:
 * - placement: `placeOf(host, user)` = override, else ring;
 * - moves: a user being moved (`moveUser`) has their operations wait (a write freeze for
 *   that user alone) and then run on the new shard;
 * - failures: bounded retries with backoff (only where a retry cannot double a write),
 *   a circuit breaker per shard, a health check per shard, counters per shard;
 * - live changes (`reload`): shards added, addresses replaced (operations in flight finish
 *   on the old pool, which closes when idle), shards drained; when the ring changes, users
 *   whose ring placement would change are first pinned where their data is.
 */
import type { Kysely } from 'kysely';
import type { Logger } from '../support/logger.js';
import { performance } from 'node:perf_hooks';
import { Histogram, LATENCY_BUCKETS } from '../support/stats.js';
import { ConfigError, StorageError } from '../support/errors.js';
import { CircuitBreaker } from './breaker.js';
import type { Dialect } from './migrations.js';
import { copyArchive, copyUser, dropMovedUser, SMALL_TABLES, syncArchive } from './mover.js';
import type { Backend } from './mysql.js';
import { HashRing } from './ring.js';
import type { Database } from './schema.js';
import { sameConnection, type ShardMap, type ShardSpec } from './shard-map.js';
import { classifyFailure, isServerFailure, toStorageError, type OpOptions, type ShardStatus, type Storage } from './storage.js';

export interface ShardedOptions {
  dialect: Dialect;
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
  /** How long a move waits for the user's operations in flight before giving up. */
  moveTimeoutMs: number;
  /**
   * The longest one operation may take, all its queries together (0: no limit). Past it
   * the caller gets a transient error, as for a lost connection, so no message waits on
   * a database for ever; the driver's own timeouts normally fire first.
   */
  opTimeoutMs?: number;
}

/** Opens (and migrates) a backend for a shard; used at start and by reloads. */
export type BackendFactory = (spec: ShardSpec) => Promise<Backend>;

interface Shard {
  name: string;
  /** Set while the shard changes address: new operations wait for it. */
  hold: Promise<void> | null;
  spec: ShardSpec | null;
  backend: Backend;
  breaker: CircuitBreaker;
  draining: boolean;
  healthy: boolean;
  latencyMs: number | null;
  lastError: string | null;
  ops: number;
  errors: number;
  retries: number;
  rejected: number;
  /** Time of each attempt of an operation on this shard, failed ones included (seconds). */
  latency: Histogram;
}

export interface MoveResult {
  jid: string;
  from: string;
  to: string;
  moved: boolean;
  rows: number;
  /** How long the user's operations were held. */
  frozenMs: number;
}

export interface ReloadResult {
  added: string[];
  replaced: string[];
  removed: string[];
  draining: string[];
  /** Users pinned to their current shard because the ring changed under them. */
  pinned: number;
}

const jidKey = (host: string, username: string) => `${username}@${host}`;

export class ShardedStorage implements Storage {
  readonly dialect: Dialect;
  readonly #opts: ShardedOptions;
  readonly #shards = new Map<string, Shard>();
  #ring: HashRing;
  /** Bare JID → shard, for users not where the ring puts them. */
  readonly #overrides = new Map<string, string>();
  readonly #directory: string | null;
  readonly #factory: BackendFactory | null;
  /** Users whose move has begun (one move per user at a time). */
  readonly #moving = new Set<string>();
  /** Users being moved: their operations wait on the promise. */
  readonly #frozen = new Map<string, Promise<void>>();
  /** Operations in flight per user (only counted where moves are possible). */
  readonly #userOps = new Map<string, number>();
  readonly #idleWaiters = new Map<string, () => void>();
  /** Set while a ring change pins users: account creation waits. */
  #placing: Promise<void> | null = null;
  #reloading: Promise<unknown> = Promise.resolve();
  readonly #retired = new Set<Backend>();
  readonly #movable: boolean;
  #health: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(opts: ShardedOptions, shards: Array<{ spec: ShardSpec | null; name: string; backend: Backend; draining: boolean; weight: number }>, directory: string | null, factory: BackendFactory | null) {
    this.dialect = opts.dialect;
    this.#opts = opts;
    this.#directory = directory;
    this.#factory = factory;
    this.#movable = directory !== null;
    for (const s of shards) this.#shards.set(s.name, this.#newShard(s.name, s.spec, s.backend, s.draining));
    this.#ring = new HashRing(shards.filter((s) => !s.draining).map((s) => ({ name: s.name, weight: s.weight })));
  }

  /** A single database that holds everyone (the embedded SQLite file). */
  static single(opts: ShardedOptions, backend: Backend): ShardedStorage {
    const s = new ShardedStorage(opts, [{ name: 'main', spec: null, backend, draining: false, weight: 1 }], null, null);
    s.#startHealth();
    return s;
  }

  /**
   * Shards from a shard map: opens every shard (each migrated by the factory), loads the
   * directory. Fails when a shard cannot be reached: placement must be known to start.
   */
  static async fromMap(opts: ShardedOptions, map: ShardMap, factory: BackendFactory): Promise<ShardedStorage> {
    const opened: Array<{ spec: ShardSpec; name: string; backend: Backend; draining: boolean; weight: number }> = [];
    try {
      for (const spec of map.shards) opened.push({ spec, name: spec.name, backend: await factory(spec), draining: spec.draining, weight: spec.weight });
    } catch (e) {
      await Promise.all(opened.map((o) => o.backend.close()));
      throw e;
    }
    const s = new ShardedStorage(opts, opened, map.directory, factory);
    try {
      await s.#loadDirectory();
    } catch (e) {
      await s.close();
      throw e;
    }
    s.#startHealth();
    return s;
  }

  // ------------------------------------------------------------------ placement

  /** The shard holding a user's data. */
  placeOf(host: string, username: string): string {
    if (!this.#movable) return 'main';
    const jid = jidKey(host, username);
    return this.#overrides.get(jid) ?? this.#ring.lookup(jid);
  }

  /** Where the ring alone would put a user. */
  ringPlaceOf(host: string, username: string): string {
    return this.#movable ? this.#ring.lookup(jidKey(host, username)) : 'main';
  }

  get shardNames(): string[] {
    return [...this.#shards.keys()];
  }

  /** Per-user overrides in force (copies). */
  overrides(): Map<string, string> {
    return new Map(this.#overrides);
  }

  // ------------------------------------------------------------------ operations

  async forUser<T>(host: string, username: string, what: string, fn: (db: Kysely<Database>) => Promise<T>, opts?: OpOptions): Promise<T> {
    if (!this.#movable) return this.#run('main', what, fn, opts);
    const jid = jidKey(host, username);
    await this.#enter(jid, opts);
    try {
      return await this.#run(this.placeOf(host, username), what, fn, opts);
    } finally {
      this.#leave(jid);
    }
  }

  async forUsers<T>(host: string, usernames: string[], what: string, fn: (db: Kysely<Database>, usernames: string[]) => Promise<T>, opts?: OpOptions): Promise<T[]> {
    if (usernames.length === 0) return [];
    if (!this.#movable) return [await this.#run('main', what, (db) => fn(db, usernames), opts)];
    const jids = [...new Set(usernames.map((u) => jidKey(host, u)))];
    for (const jid of jids) await this.#enter(jid, opts);
    try {
      const groups = new Map<string, string[]>();
      for (const u of new Set(usernames)) {
        const shard = this.placeOf(host, u);
        let g = groups.get(shard);
        if (!g) groups.set(shard, (g = []));
        g.push(u);
      }
      return await Promise.all([...groups].map(([shard, names]) => this.#run(shard, what, (db) => fn(db, names), opts)));
    } finally {
      for (const jid of jids) this.#leave(jid);
    }
  }

  forEachShard<T>(what: string, fn: (db: Kysely<Database>, shard: string) => Promise<T>): Promise<T[]> {
    return Promise.all([...this.#shards.keys()].map((name) => this.#run(name, `${what} (all shards)`, (db) => fn(db, name), { long: true })));
  }

  /** Waits while the user is frozen (or, for account creation, while users are pinned); then counts the operation. */
  async #enter(jid: string, opts?: OpOptions): Promise<void> {
    for (;;) {
      const frozen = this.#frozen.get(jid);
      if (frozen) {
        await frozen;
        continue;
      }
      if (opts?.creates && this.#placing) {
        await this.#placing;
        continue;
      }
      break;
    }
    this.#userOps.set(jid, (this.#userOps.get(jid) ?? 0) + 1);
  }

  #leave(jid: string): void {
    const n = (this.#userOps.get(jid) ?? 1) - 1;
    if (n > 0) {
      this.#userOps.set(jid, n);
      return;
    }
    this.#userOps.delete(jid);
    const w = this.#idleWaiters.get(jid);
    if (w) {
      this.#idleWaiters.delete(jid);
      w();
    }
  }

  /** Runs one operation on a shard: breaker, retries, counters, StorageError. */
  async #run<T>(name: string, what: string, fn: (db: Kysely<Database>) => Promise<T>, opts?: OpOptions): Promise<T> {
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
        const err = toStorageError(what, e, this.#movable ? name : undefined);
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

  // ------------------------------------------------------------------ health

  #newShard(name: string, spec: ShardSpec | null, backend: Backend, draining: boolean): Shard {
    const breaker = new CircuitBreaker({ failureThreshold: this.#opts.breakerThreshold, cooldownMs: this.#opts.breakerCooldownMs });
    const shard: Shard = { name, hold: null, spec, backend, breaker, draining, healthy: true, latencyMs: null, lastError: null, ops: 0, errors: 0, retries: 0, rejected: 0, latency: new Histogram(LATENCY_BUCKETS) };
    breaker.onChange = (state) => {
      const log = this.#opts.log;
      if (state === 'open') log?.error({ shard: name, address: shard.backend.address, lastError: shard.lastError }, 'shard unavailable: circuit open');
      else if (state === 'closed') log?.info({ shard: name }, 'shard available again: circuit closed');
    };
    return shard;
  }

  #startHealth(): void {
    if (this.#opts.healthIntervalMs <= 0) return;
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

  // ------------------------------------------------------------------ directory

  async #loadDirectory(): Promise<void> {
    if (this.#directory === null) return;
    const rows = await this.#run(this.#directory, 'load shard directory', (db) => db.selectFrom('shard_directory').select(['host', 'username', 'shard']).execute());
    this.#overrides.clear();
    for (const r of rows) this.#overrides.set(jidKey(r.host, r.username), r.shard);
  }

  /** Writes (or with null, removes) a user's override, then applies it here. */
  async #setOverride(host: string, username: string, shard: string | null): Promise<void> {
    const dir = this.#directory!;
    await this.#run(dir, 'write shard directory', (db) =>
      db.transaction().execute(async (tx) => {
        await tx.deleteFrom('shard_directory').where('host', '=', host).where('username', '=', username).execute();
        if (shard !== null) await tx.insertInto('shard_directory').values({ host, username, shard, updated_at: Date.now() }).execute();
      }),
    );
    if (shard === null) this.#overrides.delete(jidKey(host, username));
    else this.#overrides.set(jidKey(host, username), shard);
  }

  // ------------------------------------------------------------------ moves

  /**
   * Moves one user's data to another shard while Parley runs. First, with the user still
   * live on the old shard, the archive (the big table) is copied. Then the user's new
   * operations wait (others are untouched); once the ones in flight finish, the other
   * tables are copied and the archive brought up to date, the directory is switched, and
   * the waiting operations run on the target. The old rows are deleted after the freeze
   * (nobody reads them any more). A message to the user during the freeze waits with it:
   * none is lost. An interrupted move leaves the user where they were.
   */
  async moveUser(host: string, username: string, target: string, hooks?: { onFrozen?: () => void }): Promise<MoveResult> {
    if (!this.#movable) throw new StorageError('moving users needs the mysql driver with a shard map', false);
    if (!this.#shards.has(target)) throw new ConfigError('shard', `no shard "${target}" (shards: ${this.shardNames.join(', ')})`);
    const jid = jidKey(host, username);
    if (this.#moving.has(jid)) throw new StorageError(`${jid} is already being moved`, true);
    this.#moving.add(jid);
    let frozenMs = 0;
    try {
      const from = this.placeOf(host, username);
      if (from === target) return { jid, from, to: target, moved: false, rows: 0, frozenMs };
      const src = () => this.#shards.get(from)!.backend.db;
      const exists = await this.#run(from, 'move: find user', (db) =>
        db.selectFrom('users').select('username').where('host', '=', host).where('username', '=', username).executeTakeFirst(),
      );
      if (!exists) throw new StorageError(`${jid} has no account on shard ${from}`, false);
      const dropCopy = () => this.#run(target, 'move: drop copy', (db) => dropMovedUser(db, host, username), { long: true }).catch(() => 0);
      // 1. The archive, live: the user keeps writing to the old shard meanwhile.
      let pre: { rows: number; lastId: number | null };
      try {
        await this.#run(target, 'move: clear target', (db) => dropMovedUser(db, host, username), { long: true });
        pre = await this.#run(target, 'move: copy archive', (dst) => copyArchive(src(), dst, host, username, null), { long: true });
      } catch (e) {
        await dropCopy();
        throw e;
      }
      // 2. The freeze: the rest, and what the archive gained or lost since.
      let release!: () => void;
      this.#frozen.set(jid, new Promise<void>((r) => (release = r)));
      const started = performance.now();
      let rows = pre.rows;
      try {
        hooks?.onFrozen?.();
        await this.#waitIdle(jid);
        rows += await this.#run(target, 'move: copy user', (dst) => copyUser(src(), dst, host, username, SMALL_TABLES), { long: true });
        rows += await this.#run(target, 'move: sync archive', (dst) => syncArchive(src(), dst, host, username, pre.lastId), { long: true });
        await this.#setOverride(host, username, this.#ring.lookup(jid) === target ? null : target);
      } catch (e) {
        // The directory was not switched: the user stays on `from`; drop the copy.
        await dropCopy();
        throw e;
      } finally {
        frozenMs = performance.now() - started;
        this.#frozen.delete(jid);
        release();
      }
      // 3. The old rows, now read by nobody.
      try {
        await this.#run(from, 'move: delete old rows', (db) => dropMovedUser(db, host, username), { long: true });
      } catch (e) {
        this.#opts.log?.warn({ jid, shard: from, err: describeError(e) }, 'moved user: old rows left behind; delete them when the shard is back');
      }
      this.#opts.log?.info({ jid, from, to: target, rows, frozenMs: Math.round(frozenMs) }, 'user moved');
      return { jid, from, to: target, moved: true, rows, frozenMs };
    } finally {
      this.#moving.delete(jid);
    }
  }

  #waitIdle(jid: string): Promise<void> {
    if (!this.#userOps.has(jid)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#idleWaiters.delete(jid);
        reject(new StorageError(`${jid}: operations still running after ${this.#opts.moveTimeoutMs} ms; not moved`, true));
      }, this.#opts.moveTimeoutMs);
      this.#idleWaiters.set(jid, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Users (host, username) on a shard, in pages: drains and pins walk them. */
  async *usersOn(shard: string, page = 1000): AsyncGenerator<Array<{ host: string; username: string }>> {
    let after: { host: string; username: string } | null = null;
    for (;;) {
      const a = after;
      const rows = await this.#run(shard, 'list users', (db) => {
        let q = db.selectFrom('users').select(['host', 'username']);
        if (a) q = q.where((eb) => eb.or([eb('host', '>', a.host), eb.and([eb('host', '=', a.host), eb('username', '>', a.username)])]));
        return q.orderBy('host').orderBy('username').limit(page).execute();
      });
      if (rows.length === 0) return;
      yield rows;
      after = rows[rows.length - 1]!;
      if (rows.length < page) return;
    }
  }

  // ------------------------------------------------------------------ reload

  /** Applies a new shard map without a restart. Reloads run one at a time. */
  reload(next: ShardMap): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#reload(next));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(next: ShardMap): Promise<ReloadResult> {
    if (!this.#movable || !this.#factory) throw new ConfigError('storage.driver', 'the shard map is for the mysql driver');
    if (next.directory !== this.#directory) {
      throw new ConfigError('directory', `the directory shard cannot change while running (it is ${this.#directory}; change its address instead)`);
    }
    const result: ReloadResult = { added: [], replaced: [], removed: [], draining: [], pinned: 0 };
    const nextNames = new Set(next.shards.map((s) => s.name));
    for (const name of this.#shards.keys()) if (!nextNames.has(name)) result.removed.push(name);
    // A shard leaves the map only empty: its users must be moved off first.
    for (const name of result.removed) {
      let users = 0;
      for await (const page of this.usersOn(name, 1)) {
        users += page.length;
        break;
      }
      const pinned = [...this.#overrides.values()].filter((s) => s === name).length;
      if (users > 0 || pinned > 0) {
        throw new ConfigError(`shards.${name}`, `shard ${name} still holds users; mark it draining and move them off first (parley shards drain ${name})`);
      }
    }
    // Open what is new or moved to another address, before changing anything.
    const fresh = new Map<string, Backend>();
    try {
      for (const spec of next.shards) {
        const cur = this.#shards.get(spec.name);
        if (cur && cur.spec && sameConnection(cur.spec, spec)) continue;
        fresh.set(spec.name, await this.#factory(spec));
        (cur ? result.replaced : result.added).push(spec.name);
      }
    } catch (e) {
      await Promise.all([...fresh.values()].map((b) => b.close()));
      throw e;
    }
    const nextRing = new HashRing(next.shards.filter((s) => !s.draining).map((s) => ({ name: s.name, weight: s.weight })));
    let donePlacing!: () => void;
    if (!nextRing.sameAs(this.#ring)) {
      this.#placing = new Promise<void>((r) => (donePlacing = r));
    }
    try {
      if (this.#placing) result.pinned = await this.#pinMovedUsers(nextRing, result.removed);
      // Swap: new shards appear, replaced ones get the new pool (in-flight work finishes on the old one).
      for (const spec of next.shards) {
        const cur = this.#shards.get(spec.name);
        const b = fresh.get(spec.name);
        if (!cur) {
          this.#shards.set(spec.name, this.#newShard(spec.name, spec, b!, spec.draining));
          fresh.delete(spec.name);
          continue;
        }
        if (b) {
          await this.#switchBackend(cur, b);
          fresh.delete(spec.name);
        }
        cur.spec = spec;
        cur.draining = spec.draining;
        if (spec.draining) result.draining.push(spec.name);
      }
      for (const name of result.removed) {
        const s = this.#shards.get(name)!;
        this.#shards.delete(name);
        if (s.backend.inFlight === 0) void s.backend.close();
        else this.#retired.add(s.backend);
      }
      this.#ring = nextRing;
    } catch (e) {
      await Promise.all([...fresh.values()].map((b) => b.close()));
      throw e;
    } finally {
      if (this.#placing) {
        this.#placing = null;
        donePlacing();
      }
    }
    this.#opts.log?.info(result, 'shard map reloaded');
    return result;
  }

  /**
   * Points a shard at a new address (failover to a replica, a new VIP) so that no write
   * lands on the old server after one landed on the new: new operations are held, the
   * ones in flight finish on the old pool, a replica is given time to apply everything
   * the old server wrote (GTID wait, when both can tell), then the hold is released onto
   * the new pool. A replica that does not catch up in time fails the reload: the shard
   * stays where it was. The hold lasts as long as the operations in flight (milliseconds).
   */
  async #switchBackend(shard: Shard, next: Backend): Promise<void> {
    let release!: () => void;
    shard.hold = new Promise<void>((r) => (release = r));
    const old = shard.backend;
    const started = performance.now();
    try {
      const deadline = Date.now() + this.#opts.moveTimeoutMs;
      while (old.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
      const pos = (await old.replicationPosition?.()) ?? null;
      if (pos !== null && next.waitForPosition) {
        const caughtUp = await next.waitForPosition(pos, this.#opts.moveTimeoutMs).catch(() => false);
        if (!caughtUp) throw new StorageError(`shard ${shard.name}: ${next.address} did not reach ${old.address}'s position ${pos} in ${this.#opts.moveTimeoutMs} ms; address not changed`, true);
      }
      shard.backend = next;
      shard.healthy = true;
      shard.lastError = null;
      shard.breaker.success();
      if (old.inFlight === 0) void old.close();
      else this.#retired.add(old);
      this.#opts.log?.info({ shard: shard.name, from: old.address, to: next.address, position: pos, heldMs: Math.round(performance.now() - started) }, 'shard address replaced');
    } finally {
      shard.hold = null;
      release();
    }
  }

  /**
   * Before the ring changes: every user whose data is where the old ring put them, but
   * whom the new ring would put elsewhere, gets an override to stay (account creation
   * waits meanwhile). Their data moves later, one user at a time, with `moveUser`.
   */
  async #pinMovedUsers(nextRing: HashRing, removed: string[]): Promise<number> {
    let pinned = 0;
    for (const name of this.#shards.keys()) {
      if (removed.includes(name)) continue;
      for await (const page of this.usersOn(name)) {
        const pins = page.filter((u) => {
          const jid = jidKey(u.host, u.username);
          if (this.#overrides.has(jid)) return false;
          if (this.#ring.lookup(jid) !== name) return false; // an orphan copy, not the user's data
          return nextRing.lookup(jid) !== name;
        });
        if (pins.length === 0) continue;
        // One multi-row insert per page: a ring change over millions of users pins a
        // quarter of them, and account creation waits until it is done.
        const now = Date.now();
        try {
          await this.#run(this.#directory!, 'write shard directory', (db) =>
            db
              .insertInto('shard_directory')
              .values(pins.map((u) => ({ host: u.host, username: u.username, shard: name, updated_at: now })))
              .execute(),
          );
          for (const u of pins) this.#overrides.set(jidKey(u.host, u.username), name);
        } catch {
          // A row already there (written by another node): one at a time, replacing.
          for (const u of pins) await this.#setOverride(u.host, u.username, name);
        }
        pinned += pins.length;
      }
    }
    return pinned;
  }

  // ------------------------------------------------------------------ shutdown

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

function describeError(e: unknown): string {
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
