/**
 * The replay guard: remembers which one-time credentials (the signatures of signed portal
 * API requests) were used, so each is accepted once. A port with two implementations,
 * chosen like the other cluster-backed state: this in-memory one for a single node, and
 * the cluster's (src/cluster/redis-replay-guard.ts, Redis `SET NX PX`) when there is a
 * cluster, so a captured request is good once in the whole cluster, not once per node.
 */

export interface ReplayGuard {
  /**
   * Marks `key` as used for `ttlMs`; true if it was not in use (the caller may go on),
   * false if it was (a replay). Rejects when the memory cannot be reached (the caller
   * refuses: failing open would let replays through).
   */
  claim(key: string, ttlMs: number): Promise<boolean>;
}

/** Most keys the in-memory guard holds; the oldest claim is forgotten first beyond it. */
export const MAX_REMEMBERED_CLAIMS = 100_000;

/** One node's memory: a Map in claim order, expired entries dropped as new ones come. */
export class MemoryReplayGuard implements ReplayGuard {
  readonly #until = new Map<string, number>();
  readonly #max: number;

  constructor(max = MAX_REMEMBERED_CLAIMS) {
    this.#max = max;
  }

  get size(): number {
    return this.#until.size;
  }

  async claim(key: string, ttlMs: number, now = Date.now()): Promise<boolean> {
    // Entries are in claim order and share a TTL per caller: the expired ones come first.
    for (const [k, until] of this.#until) {
      if (until > now) break;
      this.#until.delete(k);
    }
    const until = this.#until.get(key);
    if (until !== undefined && until > now) return false;
    if (this.#until.size >= this.#max) this.#until.delete(this.#until.keys().next().value!);
    this.#until.set(key, now + ttlMs);
    return true;
  }
}
