/**
 * Which node of the cluster holds which external component (XEP-0114), on Redis: one
 * hash `<prefix>:components` (field: the component's host; value: the node it is
 * connected to), with a copy in every node's memory so that routing a stanza to a
 * component costs no round trip.
 *
 * - A node claims a host when a component completes its handshake there: set if no
 *   node holds it, or if the node that holds it is no longer a live member (its entry
 *   outlived it); otherwise the claim names the holder (the newcomer is refused).
 * - A node releases the host when its component leaves (only if it still holds it).
 * - Every change is announced (`notify`, on the cluster's invalidation channel); the
 *   other nodes read that field again. After their subscription came back (messages may
 *   have been missed) they read the whole hash again.
 * - A node that dies loses its hosts: every survivor forgets them, and the node that
 *   declared it dead deletes them from Redis (as for the session directory); stanzas for
 *   them then bounce with service-unavailable until the component connects again.
 * - After Redis lost its data, each node writes its own hosts again.
 */
import type { Redis } from 'ioredis';

export interface ComponentDirectoryOptions {
  redis: Redis;
  prefix: string;
  nodeId: string;
  /** Tells the other nodes that `host` changed (they read it again). */
  notify(host: string): void;
}

export class ComponentDirectory {
  readonly #o: ComponentDirectoryOptions;
  /** host → node, as last read (this node's own hosts included). */
  readonly #where = new Map<string, string>();

  constructor(opts: ComponentDirectoryOptions) {
    this.#o = opts;
  }

  get #key(): string {
    return `${this.#o.prefix}:components`;
  }

  /** The node holding `host` as this node knows it (no I/O); it may be dead: callers check. */
  nodeOf(host: string): string | undefined {
    return this.#where.get(host);
  }

  /** Reads the whole hash (at start, and when change messages may have been missed). */
  async loadAll(): Promise<void> {
    const all = await this.#o.redis.hgetall(this.#key);
    this.#where.clear();
    for (const [host, node] of Object.entries(all)) this.#where.set(host, node);
  }

  /** Reads one host again (another node said it changed); resolves with its node, if any. */
  async refresh(host: string): Promise<string | undefined> {
    const node = await this.#o.redis.hget(this.#key, host);
    if (node) this.#where.set(host, node);
    else this.#where.delete(host);
    return node ?? undefined;
  }

  /**
   * Claims `host` for this node: null once it is this node's, else the live node that
   * holds it. `isLive` says whether a node is a live member (an entry of a dead node is
   * taken over).
   */
  async claim(host: string, isLive: (node: string) => boolean): Promise<string | null> {
    const me = this.#o.nodeId;
    for (let attempt = 0; attempt < 3; attempt++) {
      const prev = (await this.#o.redis.eval(CLAIM, 1, this.#key, host, me)) as string | null;
      if (prev === null || prev === me) {
        this.#taken(host);
        return null;
      }
      if (isLive(prev)) {
        this.#where.set(host, prev);
        return prev;
      }
      // The entry outlived its node (not cleaned up yet): taken over if it is still that one's.
      if ((await this.#o.redis.eval(SWAP, 1, this.#key, host, prev, me)) === 1) {
        this.#taken(host);
        return null;
      }
    }
    const holder = await this.refresh(host);
    return holder === undefined || holder === me ? null : holder;
  }

  #taken(host: string): void {
    this.#where.set(host, this.#o.nodeId);
    this.#o.notify(host);
  }

  /** Gives `host` up, unless another node holds it by now. */
  async release(host: string): Promise<void> {
    if (this.#where.get(host) === this.#o.nodeId) this.#where.delete(host);
    await this.#o.redis.eval(RELEASE, 1, this.#key, host, this.#o.nodeId);
    this.#o.notify(host);
  }

  /**
   * A node is gone: its hosts are forgotten; `owner` (the node that declared it dead)
   * deletes them from Redis too. Returns them.
   */
  async dropNode(node: string, owner: boolean): Promise<string[]> {
    const hosts = [...this.#where].filter(([, n]) => n === node).map(([h]) => h);
    for (const h of hosts) this.#where.delete(h);
    if (owner) {
      for (const h of hosts) {
        await this.#o.redis.eval(RELEASE, 1, this.#key, h, node);
        this.#o.notify(h);
      }
    }
    return hosts;
  }

  /**
   * Releases what a previous run of this node left (it died and came back before anyone
   * cleaned up): hosts said to be this node's whose component is not connected here.
   */
  async releaseLeftovers(here: readonly string[]): Promise<string[]> {
    const left = [...this.#where].filter(([h, n]) => n === this.#o.nodeId && !here.includes(h)).map(([h]) => h);
    for (const h of left) await this.release(h);
    return left;
  }

  /** Writes this node's hosts again (after Redis lost them). */
  async republish(hosts: readonly string[]): Promise<void> {
    for (const h of hosts) {
      await this.#o.redis.hset(this.#key, h, this.#o.nodeId);
      this.#taken(h);
    }
  }
}

/** Sets the holder of a host if none is set; returns the previous holder (nil: set now). */
const CLAIM = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then return prev end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return false`;

/** Replaces the holder ARGV[2] of a host by ARGV[3]: 1, or 0 when it is not ARGV[2] any more. */
const SWAP = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end
return 0`;

/** Deletes the holder of a host if it is still ARGV[2]. */
const RELEASE = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`;
