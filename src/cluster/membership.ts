/**
 * Cluster membership on Redis (issue 7, part 1): which nodes are alive.
 *
 * - Members are one sorted set, `<prefix>:members`: the node id scored by the end of its
 *   lease (ms). A set cannot hold a duplicate; an entry whose lease ran out is a ghost
 *   for at most one reaper period.
 * - A node joins by adding itself (refused while another live node holds the same id),
 *   renews its lease every heartbeat, and leaves by removing itself.
 * - Every node reaps: one Lua script removes the expired entries and returns them, so
 *   exactly one survivor declares each dead node dead (it publishes `dead`, and its
 *   `onDead` runs: the cleanup of the dead node's sessions is that node's job).
 * - A heartbeat only renews an entry that exists (`XX`): a node that was frozen past its
 *   lease and declared dead learns it at its next heartbeat (`onExpelled`) instead of
 *   believing it still owns its sessions; it must end them and may join again.
 * - Each node keeps a local view (a Set), fed by join/leave/dead events on a pub/sub
 *   channel and rebuilt from the set at every reap (healing missed messages).
 *
 * @example
 * const m = new RedisMembership({ url: 'redis://127.0.0.1:6379', prefix: 'parley', nodeId: 'n1' });
 * m.onDead = (id) => cleanUpSessionsOf(id);
 * await m.join();
 * m.members(); // ['n1', 'n2']
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { clusterRedisOptions } from './redis-options.js';

export interface MembershipOptions {
  url: string;
  /** Key prefix, so several clusters can share one Redis. */
  prefix: string;
  /** Generated (hostname-free, random) when not given. */
  nodeId?: string;
  /** How often the lease is renewed. */
  heartbeatMs?: number;
  /** How long a lease lasts: a node silent this long is dead. */
  leaseMs?: number;
  /** How often this node looks for dead ones. */
  reapMs?: number;
}

export interface MemberEvent {
  type: 'join' | 'leave' | 'dead';
  node: string;
}

/**
 * Renews the lease only if the entry is still there (1). When it is not: if the cluster's
 * epoch key is gone or changed, Redis lost its data (a restart): the node adds itself
 * again and learns the epoch (2, epoch); else the node was declared dead (0).
 */
const HEARTBEAT = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
  return {1, ARGV[3]}
end
local epoch = redis.call('GET', KEYS[2])
if epoch == ARGV[3] then return {0, epoch} end
if not epoch then
  redis.call('SET', KEYS[2], ARGV[4])
  epoch = ARGV[4]
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return {2, epoch}`;

/** The cluster's epoch: created by the first node, read by the others. */
const EPOCH = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])`;

/** Joins unless a live node holds the id; an expired holder is replaced. */
const JOIN = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1`;

/** Removes and returns the members whose lease ended before ARGV[1]. */
const REAP = `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(dead) do redis.call('ZREM', KEYS[1], id) end
return dead`;

export class RedisMembership {
  readonly nodeId: string;
  readonly #o: Required<Omit<MembershipOptions, 'nodeId'>>;
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #view = new Set<string>();
  #timers: NodeJS.Timeout[] = [];
  #joined = false;
  /** When the heartbeat timer last ran (whether Redis answered or not). */
  #lastTick = 0;
  /** When a stall past the lease was noticed (0: none, or a later heartbeat was renewed). */
  #stalledSince = 0;
  /** Called once per dead node, on the one survivor that declared it dead. */
  onDead: ((node: string) => void | Promise<void>) | null = null;
  /** Called on every change of this node's view. */
  onChange: ((e: MemberEvent) => void) | null = null;
  /** This node's lease was lost (it was declared dead): it must give up its sessions. */
  onExpelled: (() => void) | null = null;
  /** Redis lost the cluster's data (restarted empty); this node is a member again and must write its state again. */
  onReset: (() => void) | null = null;
  #epoch = '';
  #resetAt = 0;

  constructor(opts: MembershipOptions) {
    this.nodeId = opts.nodeId ?? `node-${randomBytes(6).toString('hex')}`;
    this.#o = { heartbeatMs: 1000, leaseMs: 5000, reapMs: 1000, ...opts } as Required<Omit<MembershipOptions, 'nodeId'>>;
    if (this.#o.heartbeatMs * 2 > this.#o.leaseMs) throw new Error('cluster: the lease must last at least two heartbeats');
    const redisOpts = clusterRedisOptions();
    this.#redis = new Redis(this.#o.url, redisOpts);
    this.#sub = new Redis(this.#o.url, redisOpts);
    this.#redis.on('error', () => {});
    this.#sub.on('error', () => {});
  }

  get #members(): string {
    return `${this.#o.prefix}:members`;
  }

  get #channel(): string {
    return `${this.#o.prefix}:membership`;
  }

  get #epochKey(): string {
    return `${this.#o.prefix}:epoch`;
  }

  /** Whether a node is in this node's view (no copy: called per directory change). */
  has(node: string): boolean {
    return this.#view.has(node);
  }

  /** The live nodes as this node sees them (itself included once joined). */
  members(): string[] {
    return [...this.#view].sort();
  }

  async join(): Promise<void> {
    await Promise.all([this.#redis.connect(), this.#sub.connect()]);
    await this.#sub.subscribe(this.#channel);
    this.#sub.on('message', (_channel: string, raw: string) => this.#event(raw));
    this.#epoch = (await this.#redis.eval(EPOCH, 1, this.#epochKey, randomBytes(8).toString('hex'))) as string;
    const now = Date.now();
    const ok = await this.#redis.eval(JOIN, 1, this.#members, this.nodeId, now + this.#o.leaseMs, now);
    if (ok !== 1) {
      await this.#disconnect();
      throw new Error(`cluster: node id ${this.nodeId} is held by a live node`);
    }
    this.#joined = true;
    this.#lastTick = Date.now();
    await this.#publish('join');
    await this.#refresh();
    this.#timers.push(setInterval(() => void this.#heartbeat(), this.#o.heartbeatMs));
    this.#timers.push(setInterval(() => void this.reap(), this.#o.reapMs));
    for (const t of this.#timers) t.unref();
  }

  /** Leaves the cluster: the entry goes at once, the others hear `leave`. */
  async leave(): Promise<void> {
    this.#stopTimers();
    if (this.#joined) {
      this.#joined = false;
      await this.#redis.zrem(this.#members, this.nodeId).catch(() => 0);
      await this.#publish('leave').catch(() => {});
    }
    await this.#disconnect();
  }

  /** Stops heartbeating without leaving (what a crash looks like; tests use it). */
  async crash(): Promise<void> {
    this.#stopTimers();
    this.#joined = false;
    await this.#disconnect();
  }

  /** Removes expired members; for each one this call removed, publishes `dead` and runs onDead. */
  async reap(): Promise<string[]> {
    if (!this.#joined) return [];
    let dead: string[];
    try {
      dead = (await this.#redis.eval(REAP, 1, this.#members, Date.now())) as string[];
    } catch {
      return [];
    }
    for (const node of dead) {
      await this.#redis.publish(this.#channel, JSON.stringify({ type: 'dead', node })).catch(() => 0);
      if (node === this.nodeId) {
        // Our own lease ran out (the event loop stalled past it): we are the dead node,
        // and the expelled path gives up our sessions.
        this.#expel();
        return dead;
      }
      // The cleanup first (it sends the dead node's unavailable presence), then the view.
      await this.onDead?.(node);
      this.#apply({ type: 'dead', node });
    }
    await this.#refresh();
    return dead;
  }

  /**
   * true when this process itself stood still (SIGSTOP, a long pause) longer than its lease
   * since its last heartbeat ran: it may have been declared dead meanwhile, and what the
   * other nodes sent it before then has been taken back by them. Redis being unreachable
   * does not count (the heartbeat still runs; nobody can reap).
   */
  stalledPastLease(): boolean {
    return this.#joined && (this.#stalledSince > 0 || Date.now() - this.#lastTick > this.#o.leaseMs);
  }

  /** Runs a heartbeat now: 'member' (renewed, or Redis reset), 'expelled' (onExpelled ran), or 'unknown' (Redis did not answer). */
  async beat(): Promise<'member' | 'expelled' | 'unknown'> {
    if (!this.#joined) return 'expelled';
    const ok = await this.#heartbeat();
    return ok ? (this.#joined ? 'member' : 'expelled') : 'unknown';
  }

  async #heartbeat(): Promise<boolean> {
    if (!this.#joined) return true;
    const startedAt = Date.now();
    // The timer itself may be the first thing to run after a stall: remember it until a
    // heartbeat sent after the stall is answered.
    if (startedAt - this.#lastTick > this.#o.leaseMs && this.#stalledSince === 0) this.#stalledSince = startedAt;
    this.#lastTick = startedAt;
    let renewed: [number, string];
    try {
      renewed = (await this.#redis.eval(HEARTBEAT, 2, this.#members, this.#epochKey, this.nodeId, Date.now() + this.#o.leaseMs, this.#epoch, randomBytes(8).toString('hex'))) as [number, string];
    } catch {
      return false; // Redis unreachable: the lease runs on; the next heartbeat tries again
    }
    if (!this.#joined) return true;
    if (renewed[0] !== 0 && this.#stalledSince > 0 && startedAt >= this.#stalledSince) this.#stalledSince = 0;
    if (renewed[0] === 0) this.#expel();
    else if (renewed[0] === 2) {
      this.#epoch = renewed[1];
      this.#resetAt = Date.now();
      await this.#publish('join').catch(() => 0);
      this.onReset?.();
    }
    return true;
  }

  #expel(): void {
    this.#joined = false;
    this.#stopTimers();
    this.#view.clear();
    this.onExpelled?.();
  }

  /** Rebuilds the view from the set (heals a missed pub/sub message). */
  async #refresh(): Promise<void> {
    let live: string[];
    let epoch: string | null;
    try {
      // Every entry still in the set counts: only the reaper declares a node gone (an
      // expired lease not yet reaped may still be renewed by a node that was slow).
      const r = await this.#redis.multi().get(this.#epochKey).zrange(this.#members, '0', '-1').exec();
      epoch = r?.[0]?.[1] as string | null;
      live = (r?.[1]?.[1] as string[] | undefined) ?? [];
    } catch {
      return;
    }
    const now = new Set(live);
    // Right after Redis lost its data the set fills up again as nodes heartbeat: nobody
    // missing from it then has left (they are told apart by the epoch, and for a lease).
    const settling = epoch !== this.#epoch || Date.now() - this.#resetAt < this.#o.leaseMs;
    if (!settling) for (const n of [...this.#view]) if (!now.has(n)) this.#apply({ type: 'leave', node: n });
    for (const n of now) if (!this.#view.has(n)) this.#apply({ type: 'join', node: n });
  }

  #event(raw: string): void {
    let e: MemberEvent;
    try {
      e = JSON.parse(raw) as MemberEvent;
    } catch {
      return;
    }
    if ((e.type === 'join' || e.type === 'leave' || e.type === 'dead') && typeof e.node === 'string') this.#apply(e);
  }

  #apply(e: MemberEvent): void {
    if (!this.#joined) return; // an expelled or departed node keeps no view
    if (e.type === 'join') {
      if (this.#view.has(e.node)) return;
      this.#view.add(e.node);
    } else if (!this.#view.delete(e.node)) return;
    this.onChange?.(e);
  }

  #publish(type: 'join' | 'leave'): Promise<number> {
    return this.#redis.publish(this.#channel, JSON.stringify({ type, node: this.nodeId }));
  }

  #stopTimers(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  async #disconnect(): Promise<void> {
    this.#sub.disconnect();
    this.#redis.disconnect();
  }
}
