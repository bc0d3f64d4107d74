/**
 * Administration of a sharded storage while Parley runs: moving one user's data to
 * another shard (`parley shards move`, drains), listing the users of a shard, and
 * applying a new shard map (`reload`: shards added, addresses replaced, shards drained
 * or removed; when the ring changes, users it would move are first pinned where their
 * data is). Runs its queries through the executor and changes placement through
 * `placement.ts`; see docs/storage.md for the operator's view.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../support/logger.js';
import { ConfigError, StorageError } from '../support/errors.js';
import { copyBulk, copyUser, dropMovedUser, syncBulk, type UserTable } from './mover.js';
import type { Backend } from './mysql.js';
import { jidKey, type Placement, type UserGate } from './placement.js';
import { HashRing } from './ring.js';
import { describeError, type ShardExecutor } from './shard-executor.js';
import { sameConnection, type ShardMap, type ShardSpec } from './shard-map.js';

/** Opens (and migrates) a backend for a shard; used at start and by reloads. */
export type BackendFactory = (spec: ShardSpec) => Promise<Backend>;

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

export interface AdminOptions {
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** How long a move (or an address change) waits for operations in flight before giving up. */
  moveTimeoutMs: number;
  /** Every per-user table, as the schema's owners declare them: a move carries them all. */
  userTables: readonly UserTable[];
}

/** Moves and reloads over one storage's executor and placement. */
export class ShardAdmin {
  readonly #exec: ShardExecutor;
  readonly #placement: Placement;
  readonly #gate: UserGate;
  readonly #factory: BackendFactory | null;
  readonly #opts: AdminOptions;
  /** Users whose move has begun (one move per user at a time). */
  readonly #moving = new Set<string>();
  #reloading: Promise<unknown> = Promise.resolve();

  constructor(exec: ShardExecutor, placement: Placement, gate: UserGate, factory: BackendFactory | null, opts: AdminOptions) {
    this.#exec = exec;
    this.#placement = placement;
    this.#gate = gate;
    this.#factory = factory;
    this.#opts = opts;
  }

  // ------------------------------------------------------------------ moves

  /**
   * Moves one user's data to another shard while Parley runs. First, with the user still
   * live on the old shard, the bulk tables (the archive) are copied. Then the user's new
   * operations wait (others are untouched); once the ones in flight finish, the other
   * tables are copied and the bulk ones brought up to date, the directory is switched,
   * and the waiting operations run on the target. The old rows are deleted after the
   * freeze (nobody reads them any more). A message to the user during the freeze waits
   * with it: none is lost. An interrupted move leaves the user where they were.
   */
  async moveUser(host: string, username: string, target: string, hooks?: { onFrozen?: () => void }): Promise<MoveResult> {
    const exec = this.#exec;
    if (!this.#placement.movable) throw new StorageError('moving users needs the mysql driver with a shard map', false);
    if (!exec.has(target)) throw new ConfigError('shard', `no shard "${target}" (shards: ${exec.names.join(', ')})`);
    const jid = jidKey(host, username);
    if (this.#moving.has(jid)) throw new StorageError(`${jid} is already being moved`, true);
    this.#moving.add(jid);
    const tables = this.#opts.userTables;
    const bulk = tables.filter((t) => t.bulk);
    const small = tables.filter((t) => !t.bulk);
    let frozenMs = 0;
    try {
      const from = this.#placement.placeOf(host, username);
      if (from === target) return { jid, from, to: target, moved: false, rows: 0, frozenMs };
      const src = () => exec.db(from);
      const exists = await exec.run(from, 'move: find user', (db) =>
        db.selectFrom('users').select('username').where('host', '=', host).where('username', '=', username).executeTakeFirst(),
      );
      if (!exists) throw new StorageError(`${jid} has no account on shard ${from}`, false);
      const dropCopy = () => exec.run(target, 'move: drop copy', (db) => dropMovedUser(db, host, username, tables), { long: true }).catch(() => 0);
      // 1. The bulk tables, live: the user keeps writing to the old shard meanwhile.
      const pre: Array<{ rows: number; lastId: number | null }> = [];
      try {
        await exec.run(target, 'move: clear target', (db) => dropMovedUser(db, host, username, tables), { long: true });
        for (const t of bulk) pre.push(await exec.run(target, `move: copy ${t.table}`, (dst) => copyBulk(src(), dst, t, host, username, null), { long: true }));
      } catch (e) {
        await dropCopy();
        throw e;
      }
      // 2. The freeze: the rest, and what the bulk tables gained or lost since.
      const release = this.#gate.freeze(jid);
      const started = performance.now();
      let rows = pre.reduce((n, p) => n + p.rows, 0);
      try {
        hooks?.onFrozen?.();
        await this.#gate.waitIdle(jid, this.#opts.moveTimeoutMs);
        rows += await exec.run(target, 'move: copy user', (dst) => copyUser(src(), dst, host, username, small), { long: true });
        for (const [i, t] of bulk.entries()) rows += await exec.run(target, `move: sync ${t.table}`, (dst) => syncBulk(src(), dst, t, host, username, pre[i]!.lastId), { long: true });
        await this.#placement.setOverride(host, username, this.#placement.ringPlaceOf(host, username) === target ? null : target);
      } catch (e) {
        // The directory was not switched: the user stays on `from`; drop the copy.
        await dropCopy();
        throw e;
      } finally {
        frozenMs = performance.now() - started;
        release();
      }
      // 3. The old rows, now read by nobody.
      try {
        await exec.run(from, 'move: delete old rows', (db) => dropMovedUser(db, host, username, tables), { long: true });
      } catch (e) {
        this.#opts.log?.warn({ jid, shard: from, err: describeError(e) }, 'moved user: old rows left behind; delete them when the shard is back');
      }
      this.#opts.log?.info({ jid, from, to: target, rows, frozenMs: Math.round(frozenMs) }, 'user moved');
      return { jid, from, to: target, moved: true, rows, frozenMs };
    } finally {
      this.#moving.delete(jid);
    }
  }

  /** Users (host, username) on a shard, in pages: drains and pins walk them. */
  async *usersOn(shard: string, page = 1000): AsyncGenerator<Array<{ host: string; username: string }>> {
    let after: { host: string; username: string } | null = null;
    for (;;) {
      const a = after;
      const rows = await this.#exec.run(shard, 'list users', (db) => {
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
    const exec = this.#exec;
    const placement = this.#placement;
    const factory = this.#factory;
    const ring = placement.ring;
    if (!placement.movable || !factory || !ring) throw new ConfigError('storage.driver', 'the shard map is for the mysql driver');
    if (next.directory !== placement.directory) {
      throw new ConfigError('directory', `the directory shard cannot change while running (it is ${placement.directory}; change its address instead)`);
    }
    const result: ReloadResult = { added: [], replaced: [], removed: [], draining: [], pinned: 0 };
    const nextNames = new Set(next.shards.map((s) => s.name));
    for (const name of exec.names) if (!nextNames.has(name)) result.removed.push(name);
    // A shard leaves the map only empty: its users must be moved off first.
    for (const name of result.removed) {
      let users = 0;
      for await (const page of this.usersOn(name, 1)) {
        users += page.length;
        break;
      }
      if (users > 0 || placement.pinnedTo(name) > 0) {
        throw new ConfigError(`shards.${name}`, `shard ${name} still holds users; mark it draining and move them off first (parley shards drain ${name})`);
      }
    }
    // Open what is new or moved to another address, before changing anything.
    const fresh = new Map<string, Backend>();
    try {
      for (const spec of next.shards) {
        const cur = exec.shard(spec.name);
        if (cur && cur.spec && sameConnection(cur.spec, spec)) continue;
        fresh.set(spec.name, await factory(spec));
        (cur ? result.replaced : result.added).push(spec.name);
      }
    } catch (e) {
      await Promise.all([...fresh.values()].map((b) => b.close()));
      throw e;
    }
    const nextRing = new HashRing(next.shards.filter((s) => !s.draining).map((s) => ({ name: s.name, weight: s.weight })));
    const donePlacing = nextRing.sameAs(ring) ? null : this.#gate.holdCreation();
    try {
      if (donePlacing) result.pinned = await this.#pinMovedUsers(ring, nextRing, result.removed);
      // Swap: new shards appear, replaced ones get the new pool (in-flight work finishes on the old one).
      for (const spec of next.shards) {
        const cur = exec.shard(spec.name);
        const b = fresh.get(spec.name);
        if (!cur) {
          exec.add(spec.name, spec, b!, spec.draining);
          fresh.delete(spec.name);
          continue;
        }
        if (b) {
          await exec.swapBackend(spec.name, b, this.#opts.moveTimeoutMs);
          fresh.delete(spec.name);
        }
        cur.spec = spec;
        cur.draining = spec.draining;
        if (spec.draining) result.draining.push(spec.name);
      }
      for (const name of result.removed) exec.remove(name);
      placement.setRing(nextRing);
    } catch (e) {
      await Promise.all([...fresh.values()].map((b) => b.close()));
      throw e;
    } finally {
      donePlacing?.();
    }
    this.#opts.log?.info(result, 'shard map reloaded');
    return result;
  }

  /**
   * Before the ring changes: every user whose data is where the old ring put them, but
   * whom the new ring would put elsewhere, gets an override to stay (account creation
   * waits meanwhile). Their data moves later, one user at a time, with `moveUser`.
   */
  async #pinMovedUsers(ring: HashRing, nextRing: HashRing, removed: string[]): Promise<number> {
    let pinned = 0;
    for (const name of this.#exec.names) {
      if (removed.includes(name)) continue;
      for await (const page of this.usersOn(name)) {
        const pins = page.filter((u) => {
          const jid = jidKey(u.host, u.username);
          if (this.#placement.hasOverride(jid)) return false;
          if (ring.lookup(jid) !== name) return false; // an orphan copy, not the user's data
          return nextRing.lookup(jid) !== name;
        });
        if (pins.length === 0) continue;
        await this.#placement.pin(pins, name);
        pinned += pins.length;
      }
    }
    return pinned;
  }
}
