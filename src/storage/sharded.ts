/**
 * The storage router: every user's data lives on exactly one shard, and every store
 * operation goes through here to reach it. One class serves both backends: the embedded
 * SQLite file is a single shard that never moves; MySQL is many shards placed by a
 * consistent-hash ring over the bare JID, with per-user overrides from a small directory
 * table (kept in memory, written through to the directory shard).
 *
 * It puts three parts together, each in its own file:
 * - `shard-executor.ts`: runs one operation on one shard — bounded retries with backoff
 *   (only where a retry cannot double a write), a circuit breaker, a deadline, a health
 *   check and counters per shard;
 * - `placement.ts`: which shard holds a user (`placeOf` = override, else ring), and the
 *   gate that holds a user's operations while the user moves;
 * - `shard-admin.ts`: moves of one user (`moveUser`) and live changes of the shard map
 *   (`reload`: shards added, addresses replaced, shards drained; when the ring changes,
 *   users whose ring placement would change are first pinned where their data is).
 */
import type { Kysely } from 'kysely';
import type { Logger } from '../support/logger.js';
import type { Histogram } from '../support/stats.js';
import type { Dialect } from './migrations.js';
import type { UserTable } from './mover.js';
import type { Backend } from './mysql.js';
import { jidKey, Placement, SINGLE_SHARD, UserGate } from './placement.js';
import { HashRing } from './ring.js';
import type { Database } from './schema.js';
import { ShardAdmin, type BackendFactory, type MoveResult, type ReloadResult } from './shard-admin.js';
import { ShardExecutor } from './shard-executor.js';
import type { ShardMap, ShardSpec } from './shard-map.js';
import type { OpOptions, ShardStatus, Storage } from './storage.js';

export type { BackendFactory, MoveResult, ReloadResult } from './shard-admin.js';

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
  /** Every per-user table (the composed schema's): what a move carries. */
  userTables: readonly UserTable[];
}

interface Opened {
  spec: ShardSpec | null;
  name: string;
  backend: Backend;
  draining: boolean;
  weight: number;
}

export class ShardedStorage implements Storage {
  readonly dialect: Dialect;
  /** Every per-user table of the schema this storage was opened with. */
  readonly userTables: readonly UserTable[];
  readonly #exec: ShardExecutor;
  readonly #placement: Placement;
  readonly #gate = new UserGate();
  readonly #admin: ShardAdmin;

  private constructor(opts: ShardedOptions, shards: Opened[], directory: string | null, factory: BackendFactory | null) {
    this.dialect = opts.dialect;
    this.userTables = opts.userTables;
    this.#exec = new ShardExecutor({ ...opts, namesShards: directory !== null });
    for (const s of shards) this.#exec.add(s.name, s.spec, s.backend, s.draining);
    const ring = directory === null ? null : new HashRing(shards.filter((s) => !s.draining).map((s) => ({ name: s.name, weight: s.weight })));
    this.#placement = new Placement(this.#exec, directory, ring);
    this.#admin = new ShardAdmin(this.#exec, this.#placement, this.#gate, factory, { log: opts.log, moveTimeoutMs: opts.moveTimeoutMs, userTables: opts.userTables });
  }

  /** A single database that holds everyone (the embedded SQLite file). */
  static single(opts: ShardedOptions, backend: Backend): ShardedStorage {
    const s = new ShardedStorage(opts, [{ name: SINGLE_SHARD, spec: null, backend, draining: false, weight: 1 }], null, null);
    s.#exec.startHealth();
    return s;
  }

  /**
   * Shards from a shard map: opens every shard (each migrated by the factory), loads the
   * directory. Fails when a shard cannot be reached: placement must be known to start.
   */
  static async fromMap(opts: ShardedOptions, map: ShardMap, factory: BackendFactory): Promise<ShardedStorage> {
    const opened: Opened[] = [];
    try {
      for (const spec of map.shards) opened.push({ spec, name: spec.name, backend: await factory(spec), draining: spec.draining, weight: spec.weight });
    } catch (e) {
      await Promise.all(opened.map((o) => o.backend.close()));
      throw e;
    }
    const s = new ShardedStorage(opts, opened, map.directory, factory);
    try {
      await s.#placement.loadDirectory();
    } catch (e) {
      await s.close();
      throw e;
    }
    s.#exec.startHealth();
    return s;
  }

  // ------------------------------------------------------------------ placement

  /** The shard holding a user's data. */
  placeOf(host: string, username: string): string {
    return this.#placement.placeOf(host, username);
  }

  /** Where the ring alone would put a user. */
  ringPlaceOf(host: string, username: string): string {
    return this.#placement.ringPlaceOf(host, username);
  }

  get shardNames(): string[] {
    return this.#exec.names;
  }

  /** Per-user overrides in force (copies). */
  overrides(): Map<string, string> {
    return this.#placement.overrides();
  }

  // ------------------------------------------------------------------ operations

  async forUser<T>(host: string, username: string, what: string, fn: (db: Kysely<Database>) => Promise<T>, opts?: OpOptions): Promise<T> {
    if (!this.#placement.movable) return this.#exec.run(SINGLE_SHARD, what, fn, opts);
    const jid = jidKey(host, username);
    await this.#gate.enter(jid, opts);
    try {
      return await this.#exec.run(this.#placement.placeOf(host, username), what, fn, opts);
    } finally {
      this.#gate.leave(jid);
    }
  }

  async forUsers<T>(host: string, usernames: string[], what: string, fn: (db: Kysely<Database>, usernames: string[]) => Promise<T>, opts?: OpOptions): Promise<T[]> {
    if (usernames.length === 0) return [];
    if (!this.#placement.movable) return [await this.#exec.run(SINGLE_SHARD, what, (db) => fn(db, usernames), opts)];
    const jids = [...new Set(usernames.map((u) => jidKey(host, u)))];
    for (const jid of jids) await this.#gate.enter(jid, opts);
    try {
      const groups = new Map<string, string[]>();
      for (const u of new Set(usernames)) {
        const shard = this.#placement.placeOf(host, u);
        let g = groups.get(shard);
        if (!g) groups.set(shard, (g = []));
        g.push(u);
      }
      return await Promise.all([...groups].map(([shard, names]) => this.#exec.run(shard, what, (db) => fn(db, names), opts)));
    } finally {
      for (const jid of jids) this.#gate.leave(jid);
    }
  }

  forEachShard<T>(what: string, fn: (db: Kysely<Database>, shard: string) => Promise<T>): Promise<T[]> {
    return Promise.all(this.#exec.names.map((name) => this.#exec.run(name, `${what} (all shards)`, (db) => fn(db, name), { long: true })));
  }

  // ------------------------------------------------------------------ health

  /** Pings every shard once: latency, health, and the breaker closes when a dead shard answers again. */
  checkHealth(): Promise<void> {
    return this.#exec.checkHealth();
  }

  /** The latency histogram of every shard in the map (for the metrics; live objects, read only). */
  latencies(): Array<{ shard: string; latency: Histogram }> {
    return this.#exec.latencies();
  }

  status(): ShardStatus[] {
    return this.#exec.status();
  }

  // ------------------------------------------------------------------ administration

  /** Moves one user's data to another shard while Parley runs (see ShardAdmin.moveUser). */
  moveUser(host: string, username: string, target: string, hooks?: { onFrozen?: () => void }): Promise<MoveResult> {
    return this.#admin.moveUser(host, username, target, hooks);
  }

  /** Users (host, username) on a shard, in pages: drains and pins walk them. */
  usersOn(shard: string, page = 1000): AsyncGenerator<Array<{ host: string; username: string }>> {
    return this.#admin.usersOn(shard, page);
  }

  /** Applies a new shard map without a restart. Reloads run one at a time. */
  reload(next: ShardMap): Promise<ReloadResult> {
    return this.#admin.reload(next);
  }

  // ------------------------------------------------------------------ shutdown

  close(): Promise<void> {
    return this.#exec.close();
  }
}
