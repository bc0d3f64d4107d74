/**
 * This node's part in a cluster (issue 7): membership, the session directory and the
 * links to the other nodes, joined to the core.
 *
 * - The core's session registry gets a `RemoteSessions` view: stand-ins for the other
 *   nodes' sessions, kept from the directory replica, so lookups cost no round trip.
 * - This node's session changes are published (coalesced per event-loop turn: the last
 *   state of each session is written once).
 * - A stanza for a session on another node goes over the link to that node, in order,
 *   and stays queued until acknowledged. When that node is declared dead its directory
 *   entries go first, then its unacknowledged stanzas are routed again: messages reach
 *   the user's other resources or offline storage.
 * - The node that declares another dead sends the unavailable presence of its sessions,
 *   once; every survivor forgets them.
 * - Resource conflicts: a bind claims the full JID in Redis; the node that held it ends
 *   its older session with <conflict/>, as one node does.
 * - A node expelled (frozen past its lease) ends its sessions (their clients reconnect)
 *   and joins again; after Redis lost its data every node writes its sessions again.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Redis } from 'ioredis';
import { parseElement } from '../xml/parse.js';
import type { XmlElement } from '../xml/element.js';
import { Jid } from '../xmpp/jid.js';
import { StanzaError, StreamError, type StreamErrorCondition } from '../xmpp/errors.js';
import type { ServerCore } from '../core/server.js';
import type { RemoteSessions } from '../core/registry.js';
import type { ClusterPort } from '../core/cluster-port.js';
import type { LocalSession, StanzaKind } from '../core/session.js';
import { RedisMembership } from './membership.js';
import { DirectoryLostError, RedisSessionDirectory, type SessionState } from './session-directory.js';
import { Links, type LinkFrame, type NodeRecord } from './links.js';
import { clusterRedisOptions } from './redis-options.js';
import { RedisReplayGuard } from './redis-replay-guard.js';
import { checkClusterSecret } from './secret.js';
import { RemoteSession, ROSTER_REQUESTED, type Forwarder } from './remote-session.js';
import { serialize } from '../xml/serializer.js';

export interface ClusterSettings {
  url: string;
  prefix: string;
  nodeId?: string;
  listen: { host: string; port: number };
  /** The host, or host:port, other nodes reach this one at. */
  advertise?: string;
  /** Keys every link (required, see checkClusterSecret). */
  secret?: string;
  heartbeatMs: number;
  leaseMs: number;
  queueLimit: number;
}

/** A member record as published in `<prefix>:nodes` (JSON: link address and boot id), or null. */
export function parseNodeRecord(raw: string | null | undefined): NodeRecord | null {
  if (!raw) return null;
  try {
    const r = JSON.parse(raw) as { a?: unknown; b?: unknown };
    return typeof r.a === 'string' && typeof r.b === 'string' ? { addr: r.a, boot: r.b } : null;
  } catch {
    return null;
  }
}

export class ClusterNode implements RemoteSessions, Forwarder, ClusterPort {
  readonly clustered = true;
  readonly nodeId: string;
  readonly #core: ServerCore;
  readonly #s: ClusterSettings;
  readonly #log: Logger;
  #membership: RedisMembership;
  /** The session directory; its replica holds the other nodes' sessions as stand-ins. */
  readonly #directory: RedisSessionDirectory<RemoteSession>;
  readonly #links: Links;
  readonly #redis: Redis;
  /** Signed portal requests used on any node (each is good once in the cluster). */
  readonly replayGuard: RedisReplayGuard;
  /** Subscription to the invalidation channel. */
  readonly #sub: Redis;
  /** This node's sessions whose state is to be written (full JID → session, or null: gone). */
  #dirty = new Map<string, LocalSession | null>();
  #flushing: NodeJS.Immediate | null = null;
  /** Bind times of this node's sessions (conflict resolution across nodes). */
  readonly #boundAt = new WeakMap<LocalSession, number>();
  #address = '';
  #stopped = false;
  /** Frozen past the lease and not yet told by Redis whether still a member (see #mayApply). */
  #suspect = false;
  /** A directory write failed (Redis unreachable): every session is written again once it answers. */
  #writeFailed = false;
  /** A resync started by a refused write, while it runs. */
  #resyncing: Promise<void> | null = null;
  #repair: NodeJS.Timeout | null = null;
  /** Other nodes' member records (link address, boot id), as last read (links reopen without Redis). */
  readonly #addresses = new Map<string, NodeRecord>();
  /** Nodes whose departure was handled (once: by onDead on the node that declared it, else by the view change). */
  readonly #handled = new Set<string>();
  /** Frames handed back by a dead node's link, re-routed: a count for tests and metrics. */
  rerouted = 0;
  forwarded = 0;
  received = 0;
  /** Stanzas refused because a link's queue was full (bounced to their sender, presence dropped). */
  overflowed = 0;

  constructor(core: ServerCore, settings: ClusterSettings) {
    const secret = checkClusterSecret(settings.secret);
    this.#core = core;
    this.#s = settings;
    this.#log = core.logs.for('cluster');
    this.#membership = this.#newMembership(settings.nodeId);
    this.nodeId = this.#membership.nodeId;
    this.#directory = new RedisSessionDirectory({
      url: settings.url,
      prefix: settings.prefix,
      nodeId: this.nodeId,
      make: (full, node) => new RemoteSession(full, node, this),
      isMember: (node) => this.#membership.has(node) && !this.#handled.has(node),
    });
    this.#links = new Links({
      nodeId: this.nodeId,
      host: settings.listen.host,
      port: settings.listen.port,
      secret,
      queueLimit: settings.queueLimit,
      log: this.#log,
      addressOf: (node, fresh) => this.#addressOf(node, fresh),
      verifyPeer: (node, boot) => this.#verifyPeer(node, boot),
      onFrame: (from, f) => this.#onFrame(from, f),
      mayApply: () => this.#mayApply(),
    });
    this.#redis = new Redis(settings.url, clusterRedisOptions());
    this.#redis.on('error', () => {});
    this.replayGuard = new RedisReplayGuard(this.#redis, settings.prefix);
    this.#sub = new Redis(settings.url, clusterRedisOptions());
    this.#sub.on('error', () => {});
  }

  #newMembership(nodeId: string | undefined): RedisMembership {
    const m = new RedisMembership({
      url: this.#s.url,
      prefix: this.#s.prefix,
      nodeId,
      heartbeatMs: this.#s.heartbeatMs,
      leaseMs: this.#s.leaseMs,
      reapMs: this.#s.heartbeatMs,
    });
    m.onDead = (node) => this.#nodeDead(node, true);
    m.onChange = (e) => {
      if (e.node === this.nodeId) return;
      this.#log.info({ node: e.node, event: e.type }, 'cluster membership changed');
      if (e.type === 'join') {
        this.#handled.delete(e.node);
        void this.#readAddresses();
        // Its changes were ignored while it was not a member (see isMember).
        void this.#directory.reloadNode(e.node).catch(() => undefined);
      }
      else void this.#nodeDead(e.node, false);
    };
    m.onExpelled = () => void this.#expelled();
    m.onReset = () => void this.#resync();
    return m;
  }

  async #addressOf(node: string, fresh: boolean): Promise<NodeRecord | null> {
    const known = this.#addresses.get(node);
    if (known && !fresh) return known;
    const rec = parseNodeRecord(await this.#redis.hget(`${this.#s.prefix}:nodes`, node));
    if (rec) this.#addresses.set(node, rec);
    return rec ?? known ?? null;
  }

  async #readAddresses(): Promise<void> {
    try {
      for (const [node, raw] of Object.entries(await this.#redis.hgetall(`${this.#s.prefix}:nodes`))) {
        const rec = parseNodeRecord(raw);
        if (rec) this.#addresses.set(node, rec);
      }
    } catch {
      // read again at the next join, or on demand
    }
  }

  /**
   * SECURITY: whether a node that opens a link is a current member in the incarnation it
   * says. Membership: this node's view, or Redis when the view does not have it yet (it
   * just joined); the boot id: its member record (cached; read again on a mismatch, as a
   * node that restarted publishes a new one). While Redis is down the view and the cache
   * answer, so links reopen.
   */
  async #verifyPeer(node: string, boot: string): Promise<boolean> {
    if (node === this.nodeId) return false;
    let member = this.#membership.has(node) && !this.#handled.has(node);
    if (!member) {
      // As in the membership's own view, an entry still in the set counts (only the reaper removes one).
      member = (await this.#redis.zscore(`${this.#s.prefix}:members`, node).catch(() => null)) !== null;
    }
    if (!member) return false;
    if (this.#addresses.get(node)?.boot === boot) return true;
    const rec = await this.#addressOf(node, true).catch(() => null);
    return rec?.boot === boot;
  }

  /** This node's member record: where its links are taken, and its incarnation. */
  get #record(): string {
    return JSON.stringify({ a: this.#address, b: this.#links.boot });
  }

  /** The live nodes as this node sees them. */
  members(): string[] {
    return this.#membership.members();
  }

  get #invalidations(): string {
    return `${this.#s.prefix}:invalidate`;
  }

  invalidate(topic: string, key: string): void {
    this.#redis.publish(this.#invalidations, JSON.stringify({ n: this.nodeId, t: topic, k: key })).catch((err: unknown) => this.#log.warn({ err, topic }, 'cluster: invalidation not sent'));
  }

  async start(): Promise<void> {
    await this.#redis.connect();
    await this.#sub.connect();
    this.#sub.on('message', (_c: string, raw: string) => {
      try {
        const m = JSON.parse(raw) as { n: string; t: string; k: string };
        if (m.n !== this.nodeId && typeof m.t === 'string' && typeof m.k === 'string') this.#core.invalidated(m.t, m.k);
      } catch {
        // not ours
      }
    });
    await this.#sub.subscribe(this.#invalidations);
    // Invalidations published while the connection was down were missed: caches drop everything.
    this.#sub.on('ready', () => {
      void this.#sub
        .subscribe(this.#invalidations)
        .then(() => this.#core.invalidatedAll())
        .catch(() => undefined);
    });
    const addr = await this.#links.listen();
    this.#address = advertisedAddress(this.#s.advertise, addr);
    await this.#redis.hset(`${this.#s.prefix}:nodes`, this.nodeId, this.#record);
    const leftover = await this.#directory.start();
    await this.#membership.join();
    // The directory loaded before the membership view existed (and kept nothing): again.
    await this.#directory.reloadAll();
    await this.#readAddresses();
    this.#core.sessions.attach(this);
    if (leftover.length > 0 && this.#core.hasService('presence')) {
      // A previous run of this node died and came back before a survivor cleaned up.
      this.#log.warn({ sessions: leftover.length }, 'cluster: sessions of this node\'s previous run were left; sending their unavailable presence');
      const jids = leftover.map((j) => Jid.tryParse(j)).filter((j): j is Jid => j !== null);
      void this.#core.track(this.#core.service('presence').sessionsGone(jids)).catch((err: unknown) => this.#log.error({ err }, 'cluster: unavailable presence for a previous run failed'));
    }
    this.#repair = setInterval(() => {
      if (this.#writeFailed && this.#redis.status === 'ready') {
        this.#writeFailed = false;
        void this.#resync();
      }
    }, this.#s.heartbeatMs);
    this.#repair.unref();
    this.#log.info({ node: this.nodeId, link: this.#address, members: this.members() }, 'joined the cluster');
  }

  /** Leaves the cluster (this node's sessions are closed by then). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#repair) clearInterval(this.#repair);
    this.#flush();
    await this.#waitForLinks(2000);
    this.#core.sessions.attach(null);
    await this.#membership.leave();
    await this.#directory.stop();
    await this.#redis.hdel(`${this.#s.prefix}:nodes`, this.nodeId).catch(() => 0);
    await this.#links.close();
    this.#sub.disconnect();
    this.#redis.disconnect();
  }

  /** Waits until what was sent to other nodes is acknowledged (or the time is up). */
  async #waitForLinks(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && this.members().some((n) => n !== this.nodeId && this.#links.pending(n) > 0)) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // ------------------------------------------------------------ RemoteSessions

  resources(bare: string): readonly LocalSession[] {
    return this.#directory.resolve(bare);
  }

  get(full: string): LocalSession | undefined {
    return this.#directory.locate(full);
  }

  published(session: LocalSession): void {
    if (!this.#boundAt.has(session)) {
      const now = session.boundAt ?? Date.now();
      this.#boundAt.set(session, now);
      void this.#claim(session, now);
    }
    this.#mark(session.jid.full, session);
  }

  removed(session: LocalSession): void {
    this.#mark(session.jid.full, null);
  }

  publishNow(session: LocalSession): Promise<void> {
    this.published(session);
    const full = session.jid.full;
    this.#dirty.delete(full);
    // Refused because Redis lost the directory: the bind completes once this node's
    // sessions, this one included, are written again (else a message sent to it at once
    // from another node would find no session and go to offline storage).
    return this.#directory.set(full, this.#stateOf(session)).catch((err: unknown) => this.#writeError(err, full, false));
  }

  catchUp(): Promise<void> {
    return this.#directory.sync().catch(() => undefined);
  }

  #mark(full: string, s: LocalSession | null): void {
    this.#dirty.set(full, s);
    this.#flushing ??= setImmediate(() => this.#flush());
  }

  #flush(): void {
    if (this.#flushing) clearImmediate(this.#flushing);
    this.#flushing = null;
    const dirty = this.#dirty;
    if (dirty.size === 0) return;
    this.#dirty = new Map();
    for (const [full, s] of dirty) {
      const jid = Jid.tryParse(full);
      const now = jid ? this.#core.sessions.getLocal(jid) : undefined;
      const write = now ? this.#directory.set(full, this.#stateOf(now)) : this.#directory.remove(full).then(() => this.#directory.release(full));
      write.catch((err: unknown) => void this.#writeError(err, full, s === null));
    }
  }

  /**
   * A directory write failed. Redis unreachable: everything is written again once it
   * answers. Redis lost the directory (a restart without persistence): written again now,
   * without waiting for the next heartbeat to notice the reset.
   */
  #writeError(err: unknown, full: string, gone: boolean): Promise<void> {
    if (err instanceof DirectoryLostError) {
      this.#resyncing ??= this.#resync().finally(() => (this.#resyncing = null));
      return this.#resyncing;
    }
    this.#writeFailed = true;
    this.#log.warn({ err, jid: full, gone }, 'cluster: directory write failed (written again when Redis is back)');
    return Promise.resolve();
  }

  #stateOf(s: LocalSession): SessionState {
    const st: SessionState = { priority: s.priority, available: s.isAvailable, flags: s.flags | (s.rosterRequested ? ROSTER_REQUESTED : 0), bound: this.#boundAt.get(s) };
    if (s.presence) st.presence = serialize(s.presence);
    if (s.privacyList) st.list = s.privacyList;
    return st;
  }

  /** RFC 6120 §7.7.2.2 across nodes: the node that held the JID ends its older session. */
  async #claim(session: LocalSession, at: number): Promise<void> {
    try {
      const prev = await this.#directory.claim(session.jid.full);
      if (prev && prev !== this.nodeId && this.members().includes(prev)) this.close(prev, session.jid.full, new StreamError('conflict', 'replaced by a new session with the same resource'), at);
    } catch (err) {
      this.#log.warn({ err }, 'cluster: resource claim failed');
    }
  }

  // ------------------------------------------------------------ Forwarder

  deliver(node: string, to: string, xml: string, kind: StanzaKind, el: XmlElement | undefined, copies?: string[]): void {
    const frame: LinkFrame = { t: 'd', to, k: kind, x: xml };
    if (copies && copies.length > 0) frame.c = copies;
    if (this.#links.send(node, frame)) {
      this.forwarded++;
      return;
    }
    // The link's queue is full (the node is slow or gone): the sender hears it.
    this.overflowed++;
    if (kind === 'presence') return this.#core.delivery.drop(null, 'link-full-presence');
    const stanza = el ?? safeParse(xml);
    if (!stanza) return;
    const from = Jid.tryParse(stanza.attrs.from);
    const toJid = Jid.tryParse(to);
    if (from && toJid) this.#core.router.bounce(stanza, from, toJid, new StanzaError('resource-constraint', 'the node of the recipient is overloaded', 'wait'));
  }

  close(node: string, to: string, error: StreamError | undefined, boundBefore: number): void {
    this.#links.send(node, { t: 'c', to, e: error?.condition ?? 'conflict', txt: error?.text, bt: boundBefore });
  }

  /** Sends a stanza to be routed on another node (a reply to an IQ it sent). */
  routeOn(node: string, stanza: XmlElement): boolean {
    return this.#links.send(node, { t: 'r', x: serialize(stanza) });
  }

  /**
   * A node frozen past its lease (SIGSTOP, a long pause) reads, on waking, frames the
   * others sent before declaring it dead and have since taken back and routed again
   * (offline storage): delivering them too would duplicate them. So after such a stall no
   * frame is applied until Redis says whether this node is still a member (then they come
   * again) or was expelled (then its sessions end and the frames were someone else's to route).
   */
  #mayApply(): boolean {
    if (this.#suspect) return false;
    if (!this.#membership.stalledPastLease()) return true;
    this.#suspect = true;
    this.#log.warn('cluster: this process stood still longer than its lease; link frames wait until Redis confirms its membership');
    void (async () => {
      while (!this.#stopped && (await this.#membership.beat().catch(() => 'unknown' as const)) === 'unknown') {
        await new Promise((r) => setTimeout(r, this.#s.heartbeatMs));
      }
      this.#suspect = false;
    })();
    return false;
  }

  #onFrame(from: string, f: LinkFrame): void {
    this.received++;
    switch (f.t) {
      case 'd': {
        const to = Jid.tryParse(f.to);
        if (!to) return;
        const s = this.#core.sessions.getLocal(to);
        if (s && !s.isClosed) {
          s.deliverSerialized(f.x, f.k, f.k === 'message' ? (safeParse(f.x) ?? undefined) : undefined);
          return;
        }
        const el = safeParse(f.x);
        if (el) this.#reroute(el, to, f.c);
        return;
      }
      case 'c': {
        const to = Jid.tryParse(f.to);
        const s = to ? this.#core.sessions.getLocal(to) : undefined;
        if (s && (this.#boundAt.get(s) ?? 0) <= f.bt) s.close(new StreamError(f.e as StreamErrorCondition, f.txt));
        return;
      }
      case 'r': {
        const el = safeParse(f.x);
        const fromJ = el && Jid.tryParse(el.attrs.from);
        const toJ = el && Jid.tryParse(el.attrs.to);
        if (el && fromJ && toJ) this.#core.router.route(el, fromJ, toJ);
        return;
      }
    }
    void from;
  }

  /**
   * A stanza that did not reach its session (gone, or its node died): routed again with
   * the directory as it is now. A message's delivery stages (archive, carbons) ran on
   * the node that first routed it, so they do not run again.
   */
  #reroute(el: XmlElement, to: Jid, copies?: string[]): void {
    const from = Jid.tryParse(el.attrs.from);
    if (!from) return;
    this.rerouted++;
    if (el.name === 'message') this.#core.router.redeliver(el, from, to, copies);
    else this.#core.router.route(el, from, to);
  }

  // ------------------------------------------------------------ failures

  /**
   * A node is gone (dead, or left). Its sessions leave the directory; the node that
   * declared it dead (`owner`) sends their unavailable presence, once; then what was
   * queued for it is routed again.
   */
  async #nodeDead(node: string, owner: boolean): Promise<void> {
    if (node === this.nodeId || this.#handled.has(node)) return;
    this.#handled.add(node);
    let gone: string[] = [];
    // The stand-ins as they were (flags, active list): presence for them stays behind the privacy gate.
    const last = new Map<string, LocalSession>();
    for (const full of this.#directory.sessionsOf(node)) {
      const s = this.get(full);
      if (s) last.set(full, s);
    }
    try {
      gone = await this.#directory.dropNode(node, owner);
    } catch (err) {
      this.#log.warn({ err, node }, 'cluster: cleaning up a dead node failed');
    }
    if (owner) {
      await this.#redis.hdel(`${this.#s.prefix}:nodes`, node).catch(() => 0);
      this.#log.warn({ node, sessions: gone.length }, 'cluster node declared dead');
      if (gone.length > 0 && this.#core.hasService('presence')) {
        const jids = gone.map((j) => Jid.tryParse(j)).filter((j): j is Jid => j !== null);
        await this.#core.track(this.#core.service('presence').sessionsGone(jids, last)).catch((err: unknown) => this.#log.error({ err }, 'cluster: unavailable presence for a dead node failed'));
      }
    }
    this.#addresses.delete(node);
    const back = this.#links.takeBack(node);
    this.#links.forget(node);
    const seen = new Set<string>();
    // Copies that went to the dead node too never arrived: only the others count.
    const undelivered = new Set(back.map(({ frame: f }) => (f.t === 'd' ? f.to : '')));
    for (const { frame: f } of back) {
      if (f.t !== 'd') continue; // closes and IQ replies for a dead node mean nothing now
      const el = safeParse(f.x);
      const to = el && Jid.tryParse(f.to);
      if (!el || !to) continue;
      // Copies of one message to several resources of the dead node: routed again once.
      const key = `${to.bare} ${f.x}`;
      if (f.c && seen.has(key)) continue;
      seen.add(key);
      this.#reroute(el, to, f.c?.filter((c) => !undelivered.has(c)));
    }
  }

  /** Declared dead while alive (frozen past the lease): end every session, join again. */
  async #expelled(): Promise<void> {
    if (this.#stopped) return;
    this.#log.error('cluster: this node was declared dead (its lease ran out); ending its sessions and joining again');
    for (const s of [...this.#core.sessions.all()]) s.close(new StreamError('reset', 'this server lost its place in the cluster; reconnect'));
    const old = this.#membership;
    await old.crash();
    this.#membership = this.#newMembership(this.nodeId);
    for (let attempt = 0; !this.#stopped; attempt++) {
      try {
        await this.#redis.hset(`${this.#s.prefix}:nodes`, this.nodeId, this.#record);
        await this.#membership.join();
        this.#log.info({ node: this.nodeId }, 'joined the cluster again');
        await this.#resync();
        return;
      } catch (err) {
        this.#log.warn({ err, attempt }, 'cluster: joining again failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
        this.#membership = this.#newMembership(this.nodeId);
      }
    }
  }

  /** Redis lost its data (a restart without persistence) or missed writes: this node writes its part again. */
  async #resync(): Promise<void> {
    if (this.#stopped) return;
    this.#log.warn('cluster: writing this node\'s sessions to Redis again');
    try {
      await this.#redis.hset(`${this.#s.prefix}:nodes`, this.nodeId, this.#record);
      const mine = [...this.#core.sessions.all()].map((s) => ({ jid: s.jid.full, ...this.#stateOf(s) }));
      await this.#directory.republish(mine);
      await this.#directory.reloadAll();
      // The other nodes write theirs when they notice (within a heartbeat or two); their
      // reset messages may come before this node's subscription is back: read all again.
      const later = setTimeout(() => void this.#directory.reloadAll().catch(() => undefined), this.#s.leaseMs);
      later.unref();
    } catch (err) {
      this.#writeFailed = true;
      this.#log.error({ err }, 'cluster: writing the sessions again failed');
    }
  }

  /** For status and tests. */
  stats(): { node: string; members: string[]; remoteSessions: number; forwarded: number; received: number; rerouted: number; overflowed: number; queued: number; linksRefused: number } {
    const members = this.members();
    let queued = 0;
    for (const n of members) if (n !== this.nodeId) queued += this.#links.pending(n);
    return { node: this.nodeId, members, remoteSessions: this.#directory.size, forwarded: this.forwarded, received: this.received, rerouted: this.rerouted, overflowed: this.overflowed, queued, linksRefused: this.#links.refused };
  }
}

/**
 * Where other nodes reach this one: `advertise` as host:port, or its host with the port
 * listened on, or the listening address (loopback for a wildcard).
 */
export function advertisedAddress(advertise: string | undefined, listening: AddressInfo): string {
  if (advertise !== undefined && /^(\[[^\]]+\]|[^:]+):\d{1,5}$/.test(advertise)) return advertise;
  const host = advertise ?? (listening.address === '0.0.0.0' || listening.address === '::' ? '127.0.0.1' : listening.address);
  return `${host.includes(':') ? `[${host}]` : host}:${listening.port}`;
}

function safeParse(xml: string): XmlElement | null {
  try {
    return parseElement(xml);
  } catch {
    return null;
  }
}
