/**
 * The router: gives every stanza exactly one fate — delivered to a session, stored
 * (offline), or bounced to its sender with a stanza error (or, for presence and errors,
 * ignored where the RFC says so).
 * References: RFC 6120 §8.1.1 and §10 (server rules for processing XML stanzas),
 * RFC 6121 §8 (delivery rules for messages, presence and IQs).
 */
import type { Logger } from 'pino';
import { XmlElement } from '../xml/element.js';
import { StanzaError } from '../xmpp/errors.js';
import { StorageError } from '../support/errors.js';
import { Jid } from '../xmpp/jid.js';
import type { HookBus } from './hooks.js';
import { MessageStages, type StagedMessage } from './message-stages.js';
import { iqError, type IqDispatcher } from './iq.js';
import type { SessionRegistry } from './registry.js';
import type { ServerStats } from '../support/stats.js';
import { deliveredTogether, type LocalSession } from './session.js';
import { HostTable } from './hosts.js';

export interface RouterDeps {
  domain: string;
  /** Where domains other than the user domain go (module hosts, components); default: none. */
  hosts?: HostTable;
  log: Logger;
  hooks: HookBus;
  iq: IqDispatcher;
  sessions: SessionRegistry;
  /** Does this local account exist? */
  userExists(username: string): Promise<boolean>;
  /** Registers async work so shutdown can wait for it. */
  track: <T>(p: Promise<T>) => Promise<T>;
  /** The counters the metrics read (bounces, offline refusals, routing time). */
  stats: ServerStats;
}

/**
 * In a cluster: this node's id (in the ids of the IQs it sends), and how a reply to an
 * IQ another node sent reaches that node.
 */
export interface RouterCluster {
  readonly nodeId: string;
  routeOn(node: string, stanza: XmlElement): boolean;
}

/**
 * What a stanza filter decides: null lets the stanza through, 'drop' discards it
 * silently, a StanzaError bounces it to its sender with that error.
 */
export type FilterVerdict = StanzaError | 'drop' | null;

/**
 * A policy on stanzas (privacy lists, blocking, invisibility). Filters are synchronous
 * (they read state kept in memory), so the hot path stays free of awaits.
 * - `in`: the policy of the local user `to` on a stanza reaching them. `session` is the
 *   resource it is about to be delivered to, or null when it goes to the account (offline
 *   storage, an IQ to the bare JID, a subscription request).
 * - `out`: the policy of the local sender `session`'s user on a stanza it sends to `to`
 *   (`session` is null for stanzas the server sends on the user's behalf). `fromClient`:
 *   the stanza is the client's own (the router's check of what a client sends), not one
 *   the server makes for the resource (presence fan-out, probe answers).
 */
export type StanzaFilter = (args: { stanza: XmlElement; from: Jid; to: Jid; session: LocalSession | null; fromClient?: boolean }) => FilterVerdict;

/**
 * Makes what a filter needs about a local user (their lists) available in memory before
 * stanzas to or from them are judged: null when it is there already (the usual case: the
 * user is online or recently seen), else a promise. The router holds a stanza until it
 * resolves, so filters can stay synchronous.
 */
export type FilterPrepare = (user: Jid) => Promise<void> | null;

/** Bound on IQs the server waits for at once (request()). */
const MAX_PENDING_IQS = 10_000;

export class Router {
  readonly #d: RouterDeps;
  readonly #hosts: HostTable;
  readonly #inFilters: StanzaFilter[] = [];
  readonly #outFilters: StanzaFilter[] = [];
  readonly #prepares: FilterPrepare[] = [];
  readonly domainJid: Jid;
  /** Modules acting on one-to-one messages at delivery (archive, carbons): see message-stages.ts. */
  readonly stages: MessageStages;
  /** The last offline write per recipient (bare JID), to chain the next one on. */
  readonly #offlineQueue = new Map<string, Promise<void>>();
  /** The last presence of a session still being handled, to chain the next one on. */
  readonly #presenceChain = new WeakMap<LocalSession, Promise<void>>();
  /** IQs the server sent on its own or an account's behalf, waiting for their reply (by id). */
  readonly #pendingIqs = new Map<string, { to: string; from: string; resolve(reply: XmlElement): void; timer: NodeJS.Timeout }>();
  #iqSeq = 0;
  #cluster: RouterCluster | null = null;

  constructor(deps: RouterDeps) {
    this.#d = deps;
    this.#hosts = deps.hosts ?? new HostTable(deps.domain);
    this.domainJid = Jid.parse(deps.domain);
    this.stages = new MessageStages(deps.log, deps.track);
  }

  get domain(): string {
    return this.#d.domain;
  }

  attachCluster(c: RouterCluster | null): void {
    this.#cluster = c;
  }

  isLocal(jid: Jid): boolean {
    return jid.domain === this.#d.domain;
  }

  /** Adds a filter (and what prepares its data); returns its removal. */
  addFilter(direction: 'in' | 'out', filter: StanzaFilter, prepare?: FilterPrepare): () => void {
    const list = direction === 'in' ? this.#inFilters : this.#outFilters;
    list.push(filter);
    if (prepare) this.#prepares.push(prepare);
    return () => {
      const i = list.indexOf(filter);
      if (i >= 0) list.splice(i, 1);
      const j = prepare ? this.#prepares.indexOf(prepare) : -1;
      if (j >= 0) this.#prepares.splice(j, 1);
    };
  }

  /** Null when the filters can judge stanzas of the local `user` now, else when they can. */
  prepare(user: Jid): Promise<void> | null {
    let waits: Array<Promise<void>> | null = null;
    for (const p of this.#prepares) {
      const w = p(user);
      if (w) (waits ??= []).push(w);
    }
    if (waits === null) return null;
    return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined);
  }

  /** The recipient's policy on `stanza` reaching `to` (through `session`, or the account when null). */
  checkIn(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): FilterVerdict {
    for (const f of this.#inFilters) {
      const v = f({ stanza, from, to, session });
      if (v !== null) return v;
    }
    return null;
  }

  /** The local sender's policy on `stanza` going to `to` (`session`: the sending resource). */
  checkOut(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null, fromClient = false): FilterVerdict {
    for (const f of this.#outFilters) {
      const v = f({ stanza, from, to, session, fromClient });
      if (v !== null) return v;
    }
    return null;
  }

  /**
   * A stanza from a local client, already checked and stamped with its full JID.
   * `to` is null when the stanza had no `to` attribute.
   */
  fromClient(session: LocalSession, stanza: XmlElement, to: Jid | null): void {
    const from = session.jid;
    if (stanza.name === 'message') this.#d.stats.routed(stanza);
    if (this.#prepares.length > 0) {
      // The sender's own policy must be known before anything of theirs goes out.
      const wait = this.prepare(from);
      if (wait) {
        this.#run(stanza, from, to ?? from.toBare(), wait.then(() => this.#fromClientReady(session, stanza, to)));
        return;
      }
    }
    this.#fromClientReady(session, stanza, to);
  }

  #fromClientReady(session: LocalSession, stanza: XmlElement, to: Jid | null): void {
    const from = session.jid;
    if (to !== null && this.#outFilters.length > 0 && to.bare !== from.bare && (to.local !== '' || to.domain !== this.#d.domain)) {
      const verdict = this.checkOut(stanza, from, to, session, true);
      if (verdict !== null) {
        // Straight back to the sender: routed, it would meet the recipient-side policy
        // of the sender itself, which blocks what comes "from" the blocked contact.
        if (verdict !== 'drop' && stanza.attrs.type !== 'error') session.deliver(this.#errorReply(stanza, from, to, verdict));
        return;
      }
    }
    switch (stanza.name) {
      case 'presence': {
        // Broadcast, directed presence and subscriptions: the presence module. One
        // session's presence is handled in the order sent: an available presence that
        // waits on storage must not overtake the unavailable that follows it.
        const handle = () =>
          this.#d.hooks.handle('presence-from-client', session, stanza, to).then((handled) => {
            if (!handled && to) this.route(stanza, from, to, session);
          });
        const prev = this.#presenceChain.get(session);
        const work = prev ? prev.then(handle) : handle();
        const tail = work.catch(() => undefined);
        this.#presenceChain.set(session, tail);
        void tail.then(() => {
          if (this.#presenceChain.get(session) === tail) this.#presenceChain.delete(session);
        });
        this.#run(stanza, from, to ?? from.toBare(), work);
        return;
      }
      case 'iq':
        if (to === null || (to.isBare && to.bare === from.bare)) {
          // RFC 6120 §10.3.3: no `to` means the account itself.
          this.#iqToAccount(stanza, from, from.toBare(), session);
          return;
        }
        this.route(stanza, from, to, session);
        return;
      default:
        if (!this.stages.isEmpty) this.stages.fromClient(stanza, session);
        // RFC 6120 §10.3.1: a message with no `to` is for the sender's own bare JID.
        this.route(stanza, from, to ?? from.toBare(), session);
    }
  }

  /** Routes a stanza with known sender and recipient (from clients, modules or the server). */
  route(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null = null): void {
    if (stanza.name === 'message') this.#d.stats.routed(stanza);
    if (to.domain !== this.#d.domain) {
      this.#toService(stanza, from, to, session);
      return;
    }
    if (to.local === '') {
      if (to.resource === '') this.#toHost(stanza, from, to, session);
      else this.bounce(stanza, from, to, new StanzaError('service-unavailable'));
      return;
    }
    if (this.#prepares.length > 0) {
      const wait = this.prepare(to);
      if (wait) {
        this.#run(stanza, from, to, wait.then(() => this.#routeReady(stanza, from, to, session)));
        return;
      }
    }
    this.#routeReady(stanza, from, to, session);
  }

  #routeReady(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): void {
    if (session === null && stanza.name === 'presence' && from.resource !== '' && from.bare !== to.bare && this.#outFilters.length > 0 && this.isLocal(from)) {
      // Presence the server sends for a local resource (probe answers, unavailable on a
      // roster removal, directed presence to its targets): the resource's own policy
      // decides, silently. (A client's own presence was checked in fromClient.)
      if (this.checkOut(stanza, from, to, null) !== null) return;
    }
    if (to.resource === '') this.#toBare(stanza, from, to, session);
    else this.#toFull(stanza, from, to);
  }

  // -------------------------------------------------------------- addressed to another host

  /**
   * A domain other than the user domain: a host a module serves, an external component,
   * or nowhere (no server-to-server yet: remote domains are unreachable, RFC 6120 §10.4.3).
   */
  #toService(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): void {
    const host = this.#hosts.get(to.domain);
    if (host === undefined) {
      this.bounce(stanza, from, to, new StanzaError('remote-server-not-found'));
      return;
    }
    if (host.kind === 'module' && stanza.name === 'iq' && to.local === '' && to.resource === '') {
      // IQs to the service itself: its IQ handlers (none: service-unavailable).
      const type = stanza.attrs.type;
      if (type === 'get' || type === 'set') {
        this.#reply(this.#d.iq.dispatch(stanza, from, to, { host: host.host }, session), from);
        return;
      }
      if (this.#takeReply(stanza, from, to)) return;
    }
    let work: void | Promise<void>;
    try {
      work = host.deliver(stanza, from, to);
    } catch (err) {
      work = Promise.reject(err as Error);
    }
    if (work) this.#run(stanza, from, to, work);
  }

  // -------------------------------------------------------------- addressed to the server

  #toHost(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): void {
    const type = stanza.attrs.type;
    if (stanza.name === 'iq') {
      if (type === 'get' || type === 'set') this.#reply(this.#d.iq.dispatch(stanza, from, to, 'host', session), from);
      else this.#takeReply(stanza, from, to); // a reply to request(), else dropped
      return;
    }
    if (stanza.name === 'message' && type !== 'error' && type !== 'groupchat' && type !== 'headline') {
      // Nothing handles messages to the server itself.
      this.bounce(stanza, from, to, new StanzaError('service-unavailable'));
    }
    // Presence to the server carries no meaning here (RFC 6121 §4.3 probes go to users).
  }

  // -------------------------------------------------------------- addressed to a bare JID

  #toBare(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): void {
    switch (stanza.name) {
      case 'message':
        this.#messageToBare(stanza, from, to);
        return;
      case 'presence':
        this.#presenceToBare(stanza, from, to);
        return;
      case 'iq': {
        const type = stanza.attrs.type;
        if (type === 'get' || type === 'set') this.#iqToAccount(stanza, from, to, session);
        // RFC 6121 §8.5.2.1.3: results and errors to a bare JID are for the server: a reply
        // to request(), else dropped.
        else this.#takeReply(stanza, from, to);
        return;
      }
    }
  }

  /** RFC 6121 §8.5.2.1.1: the highest-priority available resources, else offline storage. */
  #messageToBare(stanza: XmlElement, from: Jid, to: Jid): void {
    const type = stanza.attrs.type ?? 'normal';
    let available = this.#d.sessions.available(to.bare);
    if (this.#inFilters.length > 0) {
      // The account's policy first, then each resource's (an active privacy list).
      const verdict = this.checkIn(stanza, from, to, null);
      if (verdict !== null) {
        if (verdict !== 'drop' && type !== 'error' && type !== 'headline') this.#refuse(stanza, from, to, verdict);
        return;
      }
      if (available.length > 0) available = available.filter((s) => this.checkIn(stanza, from, s.jid, s) === null);
    }
    if (type === 'headline') {
      // Every available resource with non-negative priority; none → silently dropped.
      for (const s of available) if (s.priority >= 0) s.deliver(stanza);
      return;
    }
    if (type === 'groupchat') {
      this.bounce(stanza, from, to, new StanzaError('service-unavailable'));
      return;
    }
    let best = -1;
    for (const s of available) if (s.priority > best) best = s.priority;
    if (best >= 0) {
      if (this.stages.isEmpty) {
        const targets = available.filter((s) => s.priority === best);
        if (targets.length > 1) deliveredTogether.set(stanza, targets);
        for (const s of targets) s.deliver(stanza);
      } else this.stages.deliver(stanza, from, to, available.filter((s) => s.priority === best));
      return;
    }
    if (type === 'error') return; // RFC 6121 §8.5.2.1.1: errors are never stored or bounced
    this.toOffline(stanza, from, to);
  }

  /**
   * Hands a message for an account with no available resource to offline storage.
   * Unknown accounts and refusals bounce to the sender.
   */
  toOffline(stanza: XmlElement, from: Jid, to: Jid, opts?: { stagesDone?: boolean }): void {
    const bare = to.toBare();
    // One recipient's messages are stored one after the other, so they keep their order.
    // Messages held by the message stages for this account go first.
    const held = this.stages.pending(bare.bare);
    const prev = this.#offlineQueue.get(bare.bare) ?? held ?? Promise.resolve();
    // The account check and the stages (the archive write) start at once; only the
    // stores are chained, so a burst of offline messages is archived in a few batches.
    const exists = this.#d.userExists(bare.local);
    const msg = this.stages.isEmpty || opts?.stagesDone ? null : { stanza, from, to, stanzaIds: new Map<string, string>() };
    const accepted = msg === null ? undefined : exists.then((ok) => (ok ? this.stages.accept(msg) : undefined));
    exists.catch(() => undefined); // awaited below, in order; not an unhandled rejection meanwhile
    accepted?.catch(() => undefined);
    const work = (held && prev !== held ? Promise.all([prev, held]) : prev).then(async () => {
      if (!(await exists)) throw new StanzaError('service-unavailable');
      if (msg === null) {
        await this.#d.sessions.catchUp();
        if (this.#deliveredAfterAll(stanza, from, bare, null)) return;
        const stored = await this.#storeOffline(bare, stanza);
        if (!stored) throw new StanzaError('service-unavailable');
        return;
      }
      await accepted;
      await this.#d.sessions.catchUp();
      if (this.#deliveredAfterAll(stanza, from, bare, msg)) return;
      let stored = false;
      try {
        stored = await this.#storeOffline(bare, stanza);
      } finally {
        if (!stored) await this.stages.rejected(msg);
      }
      if (!stored) throw new StanzaError('service-unavailable');
      this.stages.delivered(msg, []);
    });
    const tail = work.catch(() => undefined);
    this.#offlineQueue.set(bare.bare, tail);
    void tail.then(() => {
      if (this.#offlineQueue.get(bare.bare) === tail) this.#offlineQueue.delete(bare.bare);
    });
    this.#run(stanza, from, to, work);
  }

  /**
   * Just before a message is stored (after the directory caught up): is its recipient
   * there by now? In a cluster a resource bound on another node reaches this node's
   * directory a moment after its client was told it is bound (pub/sub), and a message
   * sent to it at once found nothing. The resource it was sent to (when it was sent to a
   * full JID), else the highest-priority available ones, get it live.
   */
  #deliveredAfterAll(stanza: XmlElement, from: Jid, bare: Jid, msg: StagedMessage | null): boolean {
    let targets: LocalSession[] = [];
    const full = Jid.tryParse(stanza.attrs.to);
    const allowed = (s: LocalSession) => this.#inFilters.length === 0 || this.checkIn(stanza, from, s.jid, s) === null;
    if (full && full.resource !== '' && full.bare === bare.bare) {
      const s = this.#d.sessions.get(full);
      if (s && !s.isClosed && allowed(s)) targets = [s];
    }
    if (targets.length === 0) {
      const available = this.#d.sessions.available(bare.bare).filter((s) => !s.isClosed && allowed(s));
      let best = -1;
      for (const s of available) if (s.priority > best) best = s.priority;
      if (best >= 0) targets = available.filter((s) => s.priority === best);
    }
    if (targets.length === 0) return false;
    if (targets.length > 1) deliveredTogether.set(stanza, targets);
    for (const s of targets) s.deliver(stanza);
    if (msg !== null) this.stages.delivered(msg, targets);
    return true;
  }

  /** The offline hook; a refusal (full, store down, no offline module) is counted. */
  async #storeOffline(to: Jid, stanza: XmlElement): Promise<boolean> {
    let stored = false;
    try {
      stored = await this.#d.hooks.handle('message-offline', { to, stanza });
      return stored;
    } finally {
      if (!stored) this.#d.stats.offlineRefused++;
    }
  }

  /**
   * A message that was on its way to a resource that is gone (it ended, or its cluster
   * node died) after the delivery stages (archive, carbons) ran for it. `copies`: the
   * other resources it was delivered to at the same time (to the bare JID); they have
   * it, so nothing more is done. Otherwise the user's available resources now get it,
   * else offline storage. The stages do not run again.
   */
  redeliver(stanza: XmlElement, from: Jid, to: Jid, copies?: readonly string[]): void {
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error' || type === 'groupchat') return;
    if (copies && copies.some((c) => c !== to.full)) return;
    const target = to.resource !== '' ? this.#d.sessions.get(to) : undefined;
    if (target && !target.isClosed) {
      target.deliver(stanza);
      return;
    }
    const available = this.#d.sessions.available(to.bare);
    let best = -1;
    for (const s of available) if (s.priority > best) best = s.priority;
    if (best >= 0) {
      for (const s of available) if (s.priority === best) s.deliver(stanza);
      return;
    }
    if (type === 'headline') return;
    this.toOffline(stanza, from, to, { stagesDone: true });
  }

  #presenceToBare(stanza: XmlElement, from: Jid, to: Jid): void {
    const type = stanza.attrs.type;
    if (type === undefined || type === 'unavailable' || type === 'error') {
      // Directed presence to a bare JID: every available resource (RFC 6121 §8.5.2.1.1).
      // Presence is never bounced: a filter that refuses it drops it.
      for (const s of this.#d.sessions.available(to.bare)) {
        if (this.#inFilters.length === 0 || this.checkIn(stanza, from, s.jid, s) === null) s.deliver(stanza);
      }
      return;
    }
    if (this.#inFilters.length > 0 && this.checkIn(stanza, from, to, null) !== null) return;
    // subscribe, subscribed, unsubscribe, unsubscribed, probe: the presence module.
    // Unhandled ones are ignored: presence never reveals whether an account exists.
    this.#run(stanza, from, to, this.#d.hooks.handle('presence-to-user', from, to, stanza).then(() => undefined));
  }

  #iqToAccount(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): void {
    const type = stanza.attrs.type;
    if (type !== 'get' && type !== 'set') {
      this.#takeReply(stanza, from, to);
      return;
    }
    const self = from.bare === to.bare;
    if (!self && this.#inFilters.length > 0) {
      const verdict = this.checkIn(stanza, from, to, null);
      if (verdict !== null) {
        // After the same lookup an unknown account costs (see #refuse).
        if (verdict !== 'drop') this.#reply(this.#d.userExists(to.local).then(() => iqError(stanza, to, from, verdict)), from);
        return;
      }
    }
    const work = (async () => {
      if (!self && !(await this.#d.userExists(to.local))) {
        // RFC 6121 §8.5.1: an IQ to an account that does not exist.
        return iqError(stanza, to, from, new StanzaError('service-unavailable'));
      }
      return this.#d.iq.dispatch(stanza, from, to, 'account', session);
    })();
    this.#reply(work, from);
  }

  // -------------------------------------------------------------- addressed to a full JID

  #toFull(stanza: XmlElement, from: Jid, to: Jid): void {
    const target = this.#d.sessions.get(to);
    const type = stanza.attrs.type;
    if (target) {
      if (this.#inFilters.length > 0 && from.bare !== to.bare) {
        const verdict = this.checkIn(stanza, from, to, target);
        if (verdict !== null) {
          // Presence is never bounced (RFC 6121 §4.3.2); the rest gets the filter's error.
          // A message is refused as for an account with no such resource: from the bare JID.
          if (verdict !== 'drop' && stanza.name === 'message') this.#refuse(stanza, from, to.toBare(), verdict);
          else if (verdict !== 'drop' && stanza.name !== 'presence') this.bounce(stanza, from, to, verdict);
          return;
        }
      }
      if (stanza.name !== 'message' || this.stages.isEmpty) target.deliver(stanza);
      else this.stages.deliver(stanza, from, to, [target]);
      return;
    }
    // RFC 6121 §8.5.3.2: no such resource.
    switch (stanza.name) {
      case 'message':
        if (type === 'groupchat') this.bounce(stanza, from, to, new StanzaError('service-unavailable'));
        else if (type !== 'error') this.#messageToBare(stanza, from, to.toBare());
        return;
      case 'presence':
        if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed' || type === 'probe') {
          this.#presenceToBare(stanza, from, to.toBare());
        }
        return; // available, unavailable and error presence to a gone resource: ignored
      case 'iq':
        if (type === 'get' || type === 'set') this.bounce(stanza, from, to, new StanzaError('service-unavailable'));
        return;
    }
  }

  // -------------------------------------------------------------- IQs the server sends

  /**
   * Sends an IQ get or set from the server (`from` = the domain) or on an account's behalf
   * (`from` = a local bare JID) and resolves with the reply, result or error (RFC 6120
   * §8.2.3). Rejects when no reply comes within `timeoutMs`, or when too many requests
   * are waiting. Only a reply from the addressed JID, to `from`, with the same id counts.
   */
  request(iq: XmlElement, from: Jid, to: Jid, timeoutMs = 10_000): Promise<XmlElement> {
    if (this.#pendingIqs.size >= MAX_PENDING_IQS) return Promise.reject(new StanzaError('resource-constraint', 'too many IQs waiting for a reply'));
    // In a cluster the id names this node: a reply routed on another node finds its way back.
    const node = this.#cluster?.nodeId;
    const id = `parley-${(++this.#iqSeq).toString(36)}-${Math.random().toString(36).slice(2, 10)}${node ? `@${node}` : ''}`;
    iq.attrs.id = id;
    iq.attrs.from = from.full;
    iq.attrs.to = to.full;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pendingIqs.delete(id);
        reject(new StanzaError('remote-server-timeout', 'no reply to the IQ'));
      }, timeoutMs);
      timer.unref();
      this.#pendingIqs.set(id, { to: to.full, from: from.full, resolve, timer });
      this.route(iq, from, to);
    });
  }

  /**
   * A result or error IQ for the server, an account or a module host: the reply to a
   * request() (true: taken, here or on the node that sent it), else false (dropped, or
   * for the module host's handler).
   */
  #takeReply(stanza: XmlElement, from: Jid, to: Jid): boolean {
    const id = stanza.attrs.id;
    if (id === undefined) return false;
    const c = this.#cluster;
    if (c && id.startsWith('parley-')) {
      const at = id.lastIndexOf('@');
      const node = at < 0 ? '' : id.slice(at + 1);
      if (node !== '' && node !== c.nodeId) {
        c.routeOn(node, stanza);
        return true;
      }
    }
    if (this.#pendingIqs.size === 0) return false;
    const p = this.#pendingIqs.get(id);
    // SECURITY: only the addressed entity may answer (no spoofed replies from others).
    if (!p || p.to !== from.full || p.from !== to.full) return false;
    this.#pendingIqs.delete(id);
    clearTimeout(p.timer);
    p.resolve(stanza);
    return true;
  }

  // -------------------------------------------------------------- errors and delivery

  /**
   * Sends `error` back to the sender of `stanza`, unless it is an error itself
   * (RFC 6120 §8.3.1: never answer an error with an error).
   */
  bounce(stanza: XmlElement, from: Jid, to: Jid, error: StanzaError): void {
    if (stanza.attrs.type === 'error') return;
    const kind = stanza.name;
    if (kind === 'message' || kind === 'presence' || kind === 'iq') this.#d.stats.stanzasBounced[kind]++;
    this.route(this.#errorReply(stanza, from, to, error), to, from);
  }

  #errorReply(stanza: XmlElement, from: Jid, to: Jid, error: StanzaError): XmlElement {
    const reply = new XmlElement(stanza.name, { type: 'error', id: stanza.attrs.id, from: to.full, to: from.full });
    if (reply.attrs.id === undefined) delete reply.attrs.id;
    for (const c of stanza.children) if (typeof c !== 'string') reply.append(c);
    reply.append(error.toElement());
    return reply;
  }

  /**
   * A message refused by the recipient's policy (privacy, blocking), bounced after the
   * same account lookup a message to an unknown account costs: neither the error nor its
   * timing tells a blocked sender from one writing to nobody.
   */
  #refuse(stanza: XmlElement, from: Jid, to: Jid, error: StanzaError): void {
    this.#run(stanza, from, to, this.#d.userExists(to.local).then(() => Promise.reject(error)));
  }

  /** Delivers a server-made stanza, from `from` to a JID (routed like any other). */
  send(stanza: XmlElement): void {
    const to = Jid.tryParse(stanza.attrs.to);
    const from = Jid.tryParse(stanza.attrs.from) ?? this.domainJid;
    if (!to) return;
    this.route(stanza, from, to);
  }

  #reply(work: Promise<XmlElement>, to: Jid): void {
    this.#d.track(work).then(
      (reply) => this.route(reply, Jid.tryParse(reply.attrs.from) ?? this.domainJid, to),
      (err: unknown) => this.#d.log.error({ err }, 'IQ dispatch failed'),
    );
  }

  /** Waits for async work on a stanza; a failure becomes the sender's error. */
  #run(stanza: XmlElement, from: Jid, to: Jid, work: Promise<unknown>): void {
    this.#d.track(work).catch((err: unknown) => {
      if (err instanceof StanzaError) {
        this.bounce(stanza, from, to, err);
        return;
      }
      if (err instanceof StorageError) {
        this.#d.log.warn({ err, stanza: stanza.name }, 'storage failed while routing');
        this.bounce(stanza, from, to, new StanzaError('internal-server-error', undefined, 'wait'));
        return;
      }
      this.#d.log.error({ err, stanza: stanza.name }, 'routing failed');
      this.bounce(stanza, from, to, new StanzaError('internal-server-error'));
    });
  }
}
