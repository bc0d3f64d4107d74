/**
 * Placement: which shard holds a user's data, and when the user's operations may go
 * there. A user is where the consistent-hash ring over the bare JID puts them, unless
 * the directory (a small table on the directory shard, kept in memory here and written
 * through) says otherwise. The embedded SQLite file is one shard that holds everyone.
 *
 * `UserGate` holds a user's operations while their data moves (a write freeze for that
 * user alone) and account creation while a ring change pins users, and counts each
 * user's operations in flight so a move knows when the user is idle.
 */
import { StorageError } from '../support/errors.js';
import type { HashRing } from './ring.js';
import type { ShardExecutor } from './shard-executor.js';
import type { OpOptions } from './storage.js';

/** The name of the one shard of a storage without a shard map. */
export const SINGLE_SHARD = 'main';

/** The key placement is computed on: the bare JID. */
export const jidKey = (host: string, username: string): string => `${username}@${host}`;

/**
 * The shard map's answer for each user: ring, then overrides.
 *
 * @example
 * const shard = placement.placeOf('example.com', 'alice'); // 's2'
 */
export class Placement {
  readonly #exec: ShardExecutor;
  readonly #directory: string | null;
  #ring: HashRing | null;
  /** Bare JID → shard, for users not where the ring puts them. */
  readonly #overrides = new Map<string, string>();

  /** `directory` and `ring` are null for a single database (nobody moves). */
  constructor(exec: ShardExecutor, directory: string | null, ring: HashRing | null) {
    this.#exec = exec;
    this.#directory = directory;
    this.#ring = ring;
  }

  /** Users can be placed elsewhere and moved (a shard map with a directory). */
  get movable(): boolean {
    return this.#directory !== null;
  }

  /** The shard holding the directory table (null for a single database). */
  get directory(): string | null {
    return this.#directory;
  }

  get ring(): HashRing | null {
    return this.#ring;
  }

  /** Puts a new ring in force (after the users it would move were pinned). */
  setRing(ring: HashRing): void {
    this.#ring = ring;
  }

  /** The shard holding a user's data. */
  placeOf(host: string, username: string): string {
    if (this.#ring === null) return SINGLE_SHARD;
    const jid = jidKey(host, username);
    return this.#overrides.get(jid) ?? this.#ring.lookup(jid);
  }

  /** Where the ring alone would put a user. */
  ringPlaceOf(host: string, username: string): string {
    return this.#ring === null ? SINGLE_SHARD : this.#ring.lookup(jidKey(host, username));
  }

  /** Per-user overrides in force (a copy). */
  overrides(): Map<string, string> {
    return new Map(this.#overrides);
  }

  hasOverride(jid: string): boolean {
    return this.#overrides.has(jid);
  }

  /** How many users are pinned to a shard. */
  pinnedTo(shard: string): number {
    let n = 0;
    for (const s of this.#overrides.values()) if (s === shard) n++;
    return n;
  }

  /** Reads the directory table into memory (at start). */
  async loadDirectory(): Promise<void> {
    if (this.#directory === null) return;
    const rows = await this.#exec.run(this.#directory, 'load shard directory', (db) => db.selectFrom('shard_directory').select(['host', 'username', 'shard']).execute());
    this.#overrides.clear();
    for (const r of rows) this.#overrides.set(jidKey(r.host, r.username), r.shard);
  }

  /** Writes (or with null, removes) a user's override, then applies it here. */
  async setOverride(host: string, username: string, shard: string | null): Promise<void> {
    const dir = this.#requireDirectory();
    await this.#exec.run(dir, 'write shard directory', (db) =>
      db.transaction().execute(async (tx) => {
        await tx.deleteFrom('shard_directory').where('host', '=', host).where('username', '=', username).execute();
        if (shard !== null) await tx.insertInto('shard_directory').values({ host, username, shard, updated_at: Date.now() }).execute();
      }),
    );
    if (shard === null) this.#overrides.delete(jidKey(host, username));
    else this.#overrides.set(jidKey(host, username), shard);
  }

  /**
   * Pins users to a shard: one multi-row insert (a ring change over millions of users
   * pins a quarter of them, and account creation waits until it is done); when a row is
   * already there (written by another node), one at a time, replacing.
   */
  async pin(users: ReadonlyArray<{ host: string; username: string }>, shard: string): Promise<void> {
    const dir = this.#requireDirectory();
    const now = Date.now();
    try {
      await this.#exec.run(dir, 'write shard directory', (db) =>
        db
          .insertInto('shard_directory')
          .values(users.map((u) => ({ host: u.host, username: u.username, shard, updated_at: now })))
          .execute(),
      );
      for (const u of users) this.#overrides.set(jidKey(u.host, u.username), shard);
    } catch {
      for (const u of users) await this.setOverride(u.host, u.username, shard);
    }
  }

  #requireDirectory(): string {
    if (this.#directory === null) throw new StorageError('placement overrides need the mysql driver with a shard map', false);
    return this.#directory;
  }
}

/** Holds a user's operations while the user moves; counts operations per user. */
export class UserGate {
  /** Users being moved: their operations wait on the promise. */
  readonly #frozen = new Map<string, Promise<void>>();
  /** Operations in flight per user. */
  readonly #userOps = new Map<string, number>();
  readonly #idleWaiters = new Map<string, () => void>();
  /** Set while a ring change pins users: account creation waits. */
  #placing: Promise<void> | null = null;

  /** Waits while the user is frozen (or, for account creation, while users are pinned); then counts the operation. */
  async enter(jid: string, opts?: OpOptions): Promise<void> {
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

  leave(jid: string): void {
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

  /** Holds the user's new operations; call the result to let them go. */
  freeze(jid: string): () => void {
    let release!: () => void;
    this.#frozen.set(jid, new Promise<void>((r) => (release = r)));
    return () => {
      this.#frozen.delete(jid);
      release();
    };
  }

  /** Resolves when the user has no operation in flight; a transient StorageError after `timeoutMs`. */
  waitIdle(jid: string, timeoutMs: number): Promise<void> {
    if (!this.#userOps.has(jid)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#idleWaiters.delete(jid);
        reject(new StorageError(`${jid}: operations still running after ${timeoutMs} ms; not moved`, true));
      }, timeoutMs);
      this.#idleWaiters.set(jid, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Holds account creation until the result is called (a ring change pinning users). */
  holdCreation(): () => void {
    let done!: () => void;
    this.#placing = new Promise<void>((r) => (done = r));
    return () => {
      this.#placing = null;
      done();
    };
  }
}
