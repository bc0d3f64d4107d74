/**
 * The cluster's session directory on Redis (issue 7, part 2): every online resource
 * (full JID → node, priority, availability), with a local replica on every node so that
 * resolving where a JID lives costs no round trip (presence fan-out to hundreds of
 * contacts reads memory).
 *
 * - Each node owns one hash, `<prefix>:sessions:<node>` (field: full JID; value: JSON),
 *   with a `#seq` field; a change writes the hash and publishes it on `<prefix>:sessions`
 *   with the same sequence number, in one MULTI.
 * - A replica applies a node's changes in sequence; a gap (a lost message, a restart)
 *   reloads that node's hash. `start()` loads every hash.
 * - When a node dies, every survivor drops its entries; the one that declared it dead
 *   deletes its hash (`dropNode(node, true)`) and gets the JIDs back, to send unavailable
 *   presence for them once.
 * - After a Redis restart (or a flush), each node writes its live sessions again
 *   (`republish`), and the others reload them. Until then its changes are refused
 *   (`DirectoryLostError`: it writes everything again at once) and a missing hash
 *   removes nothing from the replicas.
 */
import { Redis } from 'ioredis';
import { clusterRedisOptions } from './redis-options.js';

/** What a node publishes about one of its sessions. */
export interface SessionState {
  priority: number;
  available: boolean;
  /** The last available presence (XML), when the session is available. */
  presence?: string;
  /** Session traits other nodes act on (SessionFlag bits: roster pushes, carbons, invisible). */
  flags?: number;
  /** When the resource was bound (ms since the epoch): the newer binding wins a conflict. */
  bound?: number;
  /** The session's active privacy list, when it has one (other nodes judge its stanzas by it). */
  list?: string;
}

/**
 * One resource of another node in the replica. The cluster keeps its session stand-ins
 * (RemoteSession) here, one object per resource; tests use plain objects.
 */
export interface ReplicaEntry {
  readonly full: string;
  /** The node holding it (changes when the resource is bound again elsewhere). */
  node: string;
  /** Takes a new state from its node. */
  assign(state: SessionState): void;
  /** The entry left the replica (the session ended or its node died). */
  gone?(): void;
}

/** The replica entry of the tests and of tools: the state as published. */
export class PlainEntry implements ReplicaEntry {
  state: SessionState = { priority: 0, available: false };
  constructor(
    readonly full: string,
    public node: string,
  ) {}
  assign(state: SessionState): void {
    this.state = state;
  }
}

export interface DirectoryOptions<E extends ReplicaEntry> {
  url: string;
  prefix: string;
  nodeId: string;
  /** Makes the replica's object for another node's resource (then updated in place). */
  make: (full: string, node: string) => E;
  /**
   * Whether a node is a live member as this node sees it (default: every node). The
   * replica holds only members' sessions: what a node declared dead still publishes, or a
   * reload that read its hash before it was deleted, is dropped.
   */
  isMember?: (node: string) => boolean;
}

type Change = { node: string; seq: number; op: 'set'; jid: string; e: SessionState } | { node: string; seq: number; op: 'del'; jid: string } | { node: string; seq: number; op: 'reset' };

const SEQ = '#seq';

export class RedisSessionDirectory<E extends ReplicaEntry = PlainEntry> {
  readonly #o: DirectoryOptions<E>;
  readonly #redis: Redis;
  readonly #sub: Redis;
  /**
   * The replica: other nodes' resources, by bare JID (an array: most users have one
   * resource, and a Map per user costs more). This node's own are not kept: the core's
   * registry has them.
   */
  readonly #byBare = new Map<string, E[]>();
  #size = 0;
  /** Last sequence number applied per node. */
  readonly #seq = new Map<string, number>();
  #mySeq = 0;
  /** The highest of this node's own changes seen back on the channel, and who waits for which. */
  #echoed = 0;
  readonly #echoWaits = new Map<number, () => void>();
  readonly #reloading = new Map<string, Promise<void>>();
  #syncs = 0;
  readonly #syncWaits = new Map<number, () => void>();
  /** Changes that arrived while their node's hash was being read. */
  readonly #held = new Map<string, Change[]>();

  constructor(opts: DirectoryOptions<E>) {
    this.#o = opts;
    const redisOpts = clusterRedisOptions();
    this.#redis = new Redis(opts.url, redisOpts);
    this.#sub = new Redis(opts.url, { ...redisOpts, connectionName: `${opts.prefix}:${opts.nodeId}:directory` });
    this.#redis.on('error', () => {});
    this.#sub.on('error', () => {});
  }

  #key(node: string): string {
    return `${this.#o.prefix}:sessions:${node}`;
  }

  get #channel(): string {
    return `${this.#o.prefix}:sessions`;
  }

  /**
   * Connects, starts this node's hash afresh and loads the others'. Returns the full JIDs
   * a previous run of this node left in its hash (it died and came back before anyone
   * cleaned up after it): they are gone, and this node owes their unavailable presence.
   */
  async start(): Promise<string[]> {
    await Promise.all([this.#redis.connect(), this.#sub.connect()]);
    this.#sub.on('message', (_c: string, raw: string) => this.#onMessage(raw));
    await this.#sub.subscribe(this.#channel);
    // The subscription came back after its connection dropped (Redis restarted, the
    // network): changes published meanwhile were missed, and a node whose next change
    // comes late would show no gap for long. Once subscribed again, every hash is read.
    this.#sub.on('ready', () => {
      void this.#sub
        .subscribe(this.#channel)
        .then(() => this.reloadAll())
        .catch(() => undefined); // dropped again: the next 'ready' reads them
    });
    const left = Object.keys(await this.#redis.hgetall(this.#key(this.#o.nodeId))).filter((k) => k !== SEQ);
    // Our own hash starts empty; the reset makes every replica drop what a previous run
    // of this node wrote (and its sequence numbers, which start again).
    await this.republish([]);
    if (left.length > 0) {
      for (let i = 0; i < left.length; i += 500) {
        const m = this.#redis.multi();
        for (const j of left.slice(i, i + 500)) m.eval(RELEASE, 1, `${this.#o.prefix}:owners`, j, this.#o.nodeId);
        await m.exec();
      }
    }
    await this.reloadAll();
    return left;
  }

  /** Reads every other node's hash again (at start, and after Redis lost its data). */
  async reloadAll(): Promise<void> {
    let cursor = '0';
    const nodes: string[] = [];
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', `${this.#o.prefix}:sessions:*`, 'COUNT', 500);
      cursor = next;
      for (const k of keys) nodes.push(k.slice(`${this.#o.prefix}:sessions:`.length));
    } while (cursor !== '0');
    await Promise.all(nodes.filter((n) => n !== this.#o.nodeId).map((n) => this.#reload(n)));
  }

  async stop(): Promise<void> {
    await this.#redis.del(this.#key(this.#o.nodeId)).catch(() => 0);
    this.#sub.disconnect();
    this.#redis.disconnect();
  }

  // ------------------------------------------------------------ reads (no I/O)

  /** Other nodes' resources of a bare JID (the array is the replica's own: do not change it). */
  resolve(bare: string): readonly E[] {
    return this.#byBare.get(bare) ?? NONE;
  }

  /** Where one full JID is bound on another node, if anywhere. */
  locate(full: string): E | undefined {
    const list = this.#byBare.get(bareOf(full));
    if (!list) return undefined;
    for (const e of list) if (e.full === full) return e;
    return undefined;
  }

  /** Full JIDs a node holds, as this replica knows them (a scan: for cleanup and tests). */
  sessionsOf(node: string): string[] {
    const out: string[] = [];
    for (const list of this.#byBare.values()) for (const e of list) if (e.node === node) out.push(e.full);
    return out;
  }

  /** Resources of other nodes in the replica. */
  get size(): number {
    return this.#size;
  }

  // ------------------------------------------------------------ this node's sessions

  /**
   * A session of this node was bound or changed (priority, availability, presence,
   * flags). Resolves once this node's replica holds every change Redis took before this
   * one: the change comes back on this node's own subscription, behind all earlier ones
   * of the channel. So of two contacts coming online at once on two nodes, the later
   * write's node sees the earlier one, and presence never misses both ways.
   */
  async set(full: string, state: SessionState): Promise<void> {
    const node = this.#o.nodeId;
    const seq = await this.#write({ node, seq: 0, op: 'set', jid: full, e: state });
    await this.#barrier(seq);
  }

  /** Waits until this node's own change `seq` came back on the channel (at most 1 s). */
  #barrier(seq: number): Promise<void> {
    if (this.#echoed >= seq) return this.#reloads();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#echoWaits.delete(seq);
        resolve();
      }, 1000);
      timer.unref();
      this.#echoWaits.set(seq, () => {
        clearTimeout(timer);
        resolve(this.#reloads());
      });
    });
  }

  /** Reloads in progress (their nodes' held changes apply when they end). */
  #reloads(): Promise<void> {
    return this.#reloading.size === 0 ? Promise.resolve() : Promise.all([...this.#reloading.values()]).then(() => undefined);
  }

  /**
   * Claims a full JID for this node and returns the node that held it before (null when
   * none): that node's session is the older one and ends with a conflict. Two nodes
   * binding the same JID at once each get the other's name from one of the two claims.
   */
  async claim(full: string): Promise<string | null> {
    const prev = (await this.#redis.eval(CLAIM, 1, `${this.#o.prefix}:owners`, full, this.#o.nodeId)) as string | null;
    return prev && prev !== this.#o.nodeId ? prev : null;
  }

  /** Gives a claim up (the session ended), unless another node holds it by now. */
  async release(full: string): Promise<void> {
    await this.#redis.eval(RELEASE, 1, `${this.#o.prefix}:owners`, full, this.#o.nodeId);
  }

  /** A session of this node ended. */
  async remove(full: string): Promise<void> {
    await this.#write({ node: this.#o.nodeId, seq: 0, op: 'del', jid: full });
  }

  /** Writes this node's live sessions again (after Redis lost them). */
  async republish(sessions: Iterable<{ jid: string } & SessionState>): Promise<void> {
    const node = this.#o.nodeId;
    const seq = ++this.#mySeq;
    const m = this.#redis.multi().del(this.#key(node));
    for (const s of sessions) {
      m.hset(this.#key(node), s.jid, encodeState(s));
      m.hset(`${this.#o.prefix}:owners`, s.jid, node);
    }
    m.hset(this.#key(node), SEQ, String(seq));
    m.publish(this.#channel, JSON.stringify({ node, seq, op: 'reset' } satisfies Change));
    await m.exec();
  }

  /**
   * One change of this node's hash, published. Refused (DirectoryLostError) when the hash
   * is gone: Redis lost its data and this node has not written its sessions again yet. A
   * hash holding only the changes made since would make every other node that reads it
   * forget this node's other sessions (their messages would go to offline storage).
   */
  async #write(c: Exclude<Change, { op: 'reset' }>): Promise<number> {
    const seq = ++this.#mySeq;
    const value = c.op === 'set' ? encodeState(c.e) : '';
    const ok = await this.#redis.eval(WRITE, 1, this.#key(c.node), c.op, c.jid, value, String(seq), this.#channel, JSON.stringify({ ...c, seq }));
    if (ok !== 1) throw new DirectoryLostError();
    return seq;
  }

  // ------------------------------------------------------------ other nodes

  /**
   * Forgets a dead node's sessions; `owner` (the node that declared it dead) also deletes
   * its hash. Returns the full JIDs it held (for unavailable presence, sent once).
   */
  async dropNode(node: string, owner: boolean): Promise<string[]> {
    const jids = this.sessionsOf(node);
    for (const j of jids) this.#apply(node, j, null);
    this.#seq.delete(node);
    if (owner) {
      await this.#redis.del(this.#key(node));
      // Its claims go too, where no other node took them since.
      for (let i = 0; i < jids.length; i += 500) {
        const m = this.#redis.multi();
        for (const j of jids.slice(i, i + 500)) m.eval(RELEASE, 1, `${this.#o.prefix}:owners`, j, node);
        await m.exec();
      }
    }
    return jids;
  }

  /**
   * Resolves once this replica holds every change Redis took before the call: a marker
   * published on the channel comes back behind them (at most `timeoutMs`, e.g. when Redis
   * is unreachable). Other nodes ignore the marker.
   */
  async sync(timeoutMs = 500): Promise<void> {
    // Redis away: nothing can come meanwhile (the reconnection reads everything again).
    if (this.#redis.status !== 'ready' || this.#sub.status !== 'ready') return;
    const n = ++this.#syncs;
    const back = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#syncWaits.delete(n);
        resolve();
      }, timeoutMs);
      timer.unref();
      this.#syncWaits.set(n, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    try {
      await this.#redis.publish(this.#channel, JSON.stringify({ node: this.#o.nodeId, op: 'sync', n }));
    } catch {
      this.#syncWaits.get(n)?.();
      this.#syncWaits.delete(n);
    }
    await back;
    await this.#reloads();
  }

  #onMessage(raw: string): void {
    let c: Change;
    try {
      c = JSON.parse(raw) as Change;
    } catch {
      return;
    }
    const marker = c as unknown as { op?: string; n?: unknown; node?: string };
    if (marker.op === 'sync') {
      if (marker.node === this.#o.nodeId && typeof marker.n === 'number') {
        // Markers come back in order: this one and every earlier one are done.
        for (const [n, done] of this.#syncWaits) {
          if (n <= marker.n) {
            this.#syncWaits.delete(n);
            done();
          }
        }
      }
      return;
    }
    if (typeof c.seq !== 'number') return;
    if (c.node === this.#o.nodeId) {
      if (c.seq > this.#echoed) this.#echoed = c.seq;
      for (const [seq, done] of this.#echoWaits) {
        if (seq <= c.seq) {
          this.#echoWaits.delete(seq);
          done();
        }
      }
      return;
    }
    const held = this.#held.get(c.node);
    if (held) {
      held.push(c); // replayed once the reload is in
      return;
    }
    this.#applyChange(c);
  }

  #applyChange(c: Change): void {
    if (this.#o.isMember && !this.#o.isMember(c.node)) return; // read whole when it joins (again)
    const last = this.#seq.get(c.node) ?? 0;
    if (c.seq <= last) return; // already in what we loaded
    if (c.op === 'reset' || c.seq !== last + 1) {
      void this.#reload(c.node);
      return;
    }
    this.#seq.set(c.node, c.seq);
    if (c.op === 'set') {
      if (typeof c.e === 'object' && c.e !== null && typeof c.jid === 'string') this.#apply(c.node, c.jid, c.e);
    }
    else this.#apply(c.node, c.jid, null);
  }

  /** Reads a node's hash again (it joined, or joined again). */
  reloadNode(node: string): Promise<void> {
    return this.#reload(node);
  }

  /** Replaces what the replica holds of a node with its hash. */
  #reload(node: string): Promise<void> {
    let p = this.#reloading.get(node);
    if (p) return p;
    this.#held.set(node, []);
    p = (async () => {
      try {
        const h = await this.#redis.hgetall(this.#key(node));
        if (this.#o.isMember && !this.#o.isMember(node)) {
          // Not (or no longer) a member: none of its sessions are reachable.
          for (const j of this.sessionsOf(node)) this.#apply(node, j, null);
          this.#seq.delete(node);
          return;
        }
        // No hash of a member: Redis lost it and the node has not written it again yet
        // (its reset reloads it then). Nothing here says its sessions ended: kept.
        if (h[SEQ] === undefined) return;
        const present = new Set<string>();
        for (const [jid, v] of Object.entries(h)) {
          if (jid === SEQ) continue;
          try {
            this.#apply(node, jid, decodeState(v));
            present.add(jid);
          } catch {
            // a bad field is skipped
          }
        }
        for (const j of this.sessionsOf(node)) if (!present.has(j)) this.#apply(node, j, null);
        this.#seq.set(node, Number(h[SEQ] ?? 0));
      } finally {
        this.#reloading.delete(node);
        const held = this.#held.get(node) ?? [];
        this.#held.delete(node);
        // What was written after the read applies in order; what was before is skipped.
        for (const c of held.sort((a, b) => a.seq - b.seq)) this.#applyChange(c);
      }
    })();
    this.#reloading.set(node, p);
    return p;
  }

  #apply(node: string, full: string, state: SessionState | null): void {
    if (node === this.#o.nodeId) return;
    const bare = bareOf(full);
    let list = this.#byBare.get(bare);
    const i = list ? list.findIndex((e) => e.full === full) : -1;
    if (state === null) {
      // Only the node holding it removes it (a newer binding elsewhere stays).
      if (!list || i < 0 || list[i]!.node !== node) return;
      const [e] = list.splice(i, 1);
      if (list.length === 0) this.#byBare.delete(bare);
      this.#size--;
      e!.gone?.();
      return;
    }
    let e = i >= 0 ? list![i]! : undefined;
    if (!e) {
      e = this.#o.make(full, node);
      if (!list) this.#byBare.set(bare, (list = []));
      list.push(e);
      this.#size++;
    }
    e.node = node;
    e.assign(state);
  }
}

const NONE: readonly never[] = Object.freeze([]);

function bareOf(full: string): string {
  const slash = full.indexOf('/');
  return slash < 0 ? full : full.slice(0, slash);
}

/** A change of this node's sessions could not be written: Redis lost the directory (see #write). */
export class DirectoryLostError extends Error {
  constructor() {
    super('the session directory in Redis was lost; this node writes its sessions again');
    this.name = 'DirectoryLostError';
  }
}

/**
 * Writes one change of a node's hash (set or del), its sequence number, and publishes it;
 * only if the hash exists (it always holds #seq once written whole): 1, else 0.
 */
const WRITE = `
if redis.call('HEXISTS', KEYS[1], '#seq') == 0 then return 0 end
if ARGV[1] == 'set' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) else redis.call('HDEL', KEYS[1], ARGV[2]) end
redis.call('HSET', KEYS[1], '#seq', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1`;

/** Sets the owner of a full JID and returns the previous one. */
const CLAIM = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return prev`;

/** Deletes the owner of a full JID if it is still ARGV[2]. */
const RELEASE = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`;

function encodeState(s: SessionState): string {
  return JSON.stringify({ p: s.priority, a: s.available, x: s.presence, f: s.flags, b: s.bound, l: s.list });
}

function decodeState(v: string): SessionState {
  const e = JSON.parse(v) as { p: number; a: boolean; x?: string; f?: number; b?: number; l?: string };
  const s: SessionState = { priority: e.p, available: e.a };
  if (e.x !== undefined) s.presence = e.x;
  if (e.f !== undefined) s.flags = e.f;
  if (e.b !== undefined) s.bound = e.b;
  if (e.l !== undefined) s.list = e.l;
  return s;
}
