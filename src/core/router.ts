/**
 * The router: addressing. It finds where every stanza goes — the server itself, an
 * account (bare JID), a resource (full JID), or nowhere — passing the stanza policies on
 * the way (policy.ts), and hands it to delivery (delivery.ts), which owns its fate:
 * delivered, stored, bounced, or dropped by a named rule.
 * References: RFC 6120 §8.1.1 and §10 (server rules for processing XML stanzas),
 * RFC 6121 §8 (delivery rules for messages, presence and IQs).
 */
import type { Logger } from 'pino';
import type { XmlElement } from '../xml/element.js';
import { StanzaError } from '../xmpp/errors.js';
import { Jid } from '../xmpp/jid.js';
import type { HookBus } from './hooks.js';
import { iqError, type IqDispatcher } from './iq.js';
import type { SessionRegistry } from './registry.js';
import type { ServerStats } from '../support/stats.js';
import type { LocalSession } from './session.js';
import { Envelope } from './envelope.js';
import { Policy, type FilterPrepare, type FilterVerdict, type StanzaFilter } from './policy.js';
import { IqRequests, type IqReplyForwarder } from './iq-requests.js';
import { Delivery, bestResources, clockOf } from './delivery.js';
import type { MessageStages } from './message-stages.js';

export type { FilterVerdict, StanzaFilter, FilterPrepare } from './policy.js';

export interface RouterDeps {
  domain: string;
  log: Logger;
  hooks: HookBus;
  iq: IqDispatcher;
  sessions: SessionRegistry;
  /** Does this local account exist? */
  userExists(username: string): Promise<boolean>;
  /** Registers async work so shutdown can wait for it. */
  track: <T>(p: Promise<T>) => Promise<T>;
  /** The counters the metrics read (fates, routing time). */
  stats: ServerStats;
}

/**
 * In a cluster: this node's id (in the ids of the IQs it sends), and how a reply to an
 * IQ another node sent reaches that node.
 */
export type RouterCluster = IqReplyForwarder;

export class Router {
  readonly #d: RouterDeps;
  readonly domainJid: Jid;
  /** The stanza policies (privacy, blocking, invisibility). */
  readonly policy = new Policy();
  /** The owner of every stanza's fate. */
  readonly delivery: Delivery;
  /** IQs the server sends, waiting for their replies. */
  readonly #requests = new IqRequests();
  /** The last presence of a session still being handled, to chain the next one on. */
  readonly #presenceChain = new WeakMap<LocalSession, Promise<void>>();

  constructor(deps: RouterDeps) {
    this.#d = deps;
    this.domainJid = Jid.parse(deps.domain);
    this.delivery = new Delivery({
      log: deps.log,
      hooks: deps.hooks,
      sessions: deps.sessions,
      policy: this.policy,
      stats: deps.stats,
      userExists: (username) => deps.userExists(username),
      track: deps.track,
      route: (env) => this.#route(env),
    });
  }

  get domain(): string {
    return this.#d.domain;
  }

  /** Modules acting on one-to-one messages at delivery (archive, carbons): see message-stages.ts. */
  get stages(): MessageStages {
    return this.delivery.stages;
  }

  attachCluster(c: RouterCluster | null): void {
    this.#requests.attachCluster(c);
  }

  isLocal(jid: Jid): boolean {
    return jid.domain === this.#d.domain;
  }

  /** Adds a filter (and what prepares its data); returns its removal. */
  addFilter(direction: 'in' | 'out', filter: StanzaFilter, prepare?: FilterPrepare): () => void {
    return this.policy.add(direction, filter, prepare);
  }

  /** Null when the filters can judge stanzas of the local `user` now, else when they can. */
  prepare(user: Jid): Promise<void> | null {
    return this.policy.prepare(user);
  }

  /** The recipient's policy on `stanza` reaching `to` (through `session`, or the account when null). */
  checkIn(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): FilterVerdict {
    return this.policy.checkIn(stanza, from, to, session);
  }

  /** The local sender's policy on `stanza` going to `to` (`session`: the sending resource). */
  checkOut(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null, fromClient = false): FilterVerdict {
    return this.policy.checkOut(stanza, from, to, session, fromClient);
  }

  /**
   * A stanza from a local client, already checked and stamped with its full JID.
   * `to` is null when the stanza had no `to` attribute.
   */
  fromClient(session: LocalSession, stanza: XmlElement, to: Jid | null): void {
    const from = session.jid;
    const env = new Envelope(stanza, from, to ?? from.toBare(), session, clockOf(stanza));
    if (this.policy.hasPrepares) {
      // The sender's own policy must be known before anything of theirs goes out.
      const wait = this.policy.prepare(from);
      if (wait) {
        this.delivery.run(env, wait.then(() => this.#fromClientReady(env, to)));
        return;
      }
    }
    this.#fromClientReady(env, to);
  }

  #fromClientReady(env: Envelope, to: Jid | null): void {
    const { stanza, from } = env;
    const session = env.session!;
    if (to !== null && this.policy.hasOut && to.bare !== from.bare && to.local !== '') {
      const verdict = this.policy.checkOut(stanza, from, to, session, true);
      if (verdict !== null) {
        // Straight back to the sender: routed, it would meet the recipient-side policy
        // of the sender itself, which blocks what comes "from" the blocked contact.
        if (verdict === 'drop') this.delivery.drop(env, 'policy');
        else this.delivery.answer(session, stanza, to, verdict);
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
            if (!handled && to) this.#route(env);
          });
        const prev = this.#presenceChain.get(session);
        const work = prev ? prev.then(handle) : handle();
        const tail = work.catch(() => undefined);
        this.#presenceChain.set(session, tail);
        void tail.then(() => {
          if (this.#presenceChain.get(session) === tail) this.#presenceChain.delete(session);
        });
        this.delivery.run(env, work);
        return;
      }
      case 'iq':
        if (to === null || (to.isBare && to.bare === from.bare)) {
          // RFC 6120 §10.3.3: no `to` means the account itself.
          this.#iqToAccount(env.to.isBare ? env : env.readdressed(from.toBare()));
          return;
        }
        this.#route(env);
        return;
      default:
        if (!this.stages.isEmpty) this.stages.fromClient(stanza, session);
        // RFC 6120 §10.3.1: a message with no `to` is for the sender's own bare JID.
        this.#route(env);
    }
  }

  /** Routes a stanza with known sender and recipient (from clients, modules or the server). */
  route(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null = null): void {
    this.#route(new Envelope(stanza, from, to, session, clockOf(stanza)));
  }

  #route(env: Envelope): void {
    const to = env.to;
    if (to.domain !== this.#d.domain) {
      // No server-to-server yet: remote domains are unreachable.
      this.delivery.bounce(env, new StanzaError('remote-server-not-found'));
      return;
    }
    if (to.local === '') {
      if (to.resource === '') this.#toHost(env);
      else this.delivery.bounce(env, new StanzaError('service-unavailable'));
      return;
    }
    if (this.policy.hasPrepares) {
      const wait = this.policy.prepare(to);
      if (wait) {
        this.delivery.run(env, wait.then(() => this.#routeReady(env)));
        return;
      }
    }
    this.#routeReady(env);
  }

  #routeReady(env: Envelope): void {
    const { stanza, from, to } = env;
    if (env.session === null && stanza.name === 'presence' && from.resource !== '' && from.bare !== to.bare && this.policy.hasOut && this.isLocal(from)) {
      // Presence the server sends for a local resource (probe answers, unavailable on a
      // roster removal, directed presence to its targets): the resource's own policy
      // decides, silently. (A client's own presence was checked in fromClient.)
      if (this.policy.checkOut(stanza, from, to, null) !== null) return this.delivery.drop(env, 'policy');
    }
    if (to.resource === '') this.#toBare(env);
    else this.#toFull(env);
  }

  // -------------------------------------------------------------- addressed to the server

  #toHost(env: Envelope): void {
    const { stanza, from, to } = env;
    const type = stanza.attrs.type;
    if (stanza.name === 'iq') {
      if (type === 'get' || type === 'set') this.#reply(this.#d.iq.dispatch(stanza, from, to, 'host', env.session), from);
      else this.#takeReply(env); // a reply to request(), else dropped
      return;
    }
    if (stanza.name === 'message') {
      // Nothing handles messages to the server itself.
      if (type === 'error') this.delivery.drop(env, 'error-stanza');
      else if (type === 'groupchat' || type === 'headline') this.delivery.drop(env, 'headline-no-resource');
      else this.delivery.bounce(env, new StanzaError('service-unavailable'));
      return;
    }
    // Presence to the server carries no meaning here (RFC 6121 §4.3 probes go to users).
    this.delivery.drop(env, 'presence-no-resource');
  }

  // -------------------------------------------------------------- addressed to a bare JID

  #toBare(env: Envelope): void {
    switch (env.stanza.name) {
      case 'message':
        this.#messageToBare(env);
        return;
      case 'presence':
        this.#presenceToBare(env);
        return;
      case 'iq': {
        const type = env.stanza.attrs.type;
        if (type === 'get' || type === 'set') this.#iqToAccount(env);
        // RFC 6121 §8.5.2.1.3: results and errors to a bare JID are for the server: a reply
        // to request(), else dropped.
        else this.#takeReply(env);
        return;
      }
    }
  }

  /** RFC 6121 §8.5.2.1.1: the highest-priority available resources, else offline storage. */
  #messageToBare(env: Envelope): void {
    const { stanza, from, to } = env;
    const type = stanza.attrs.type ?? 'normal';
    let available = this.#d.sessions.available(to.bare);
    if (this.policy.hasIn) {
      // The account's policy first, then each resource's (an active privacy list).
      const verdict = this.policy.checkIn(stanza, from, to, null);
      if (verdict !== null) {
        if (verdict === 'drop' || type === 'headline') this.delivery.drop(env, 'policy');
        else if (type === 'error') this.delivery.drop(env, 'error-stanza');
        else this.delivery.refuse(env, verdict);
        return;
      }
      if (available.length > 0) available = available.filter((s) => this.policy.checkIn(stanza, from, s.jid, s) === null);
    }
    if (type === 'headline') {
      // Every available resource with non-negative priority; none → dropped.
      const targets = available.filter((s) => s.priority >= 0);
      if (targets.length > 0) this.delivery.toSessions(env, targets);
      else this.delivery.drop(env, 'headline-no-resource');
      return;
    }
    if (type === 'groupchat') {
      this.delivery.bounce(env, new StanzaError('service-unavailable'));
      return;
    }
    const best = bestResources(available);
    if (best.length > 0) {
      this.delivery.toSessions(env, best);
      return;
    }
    if (type === 'error') return this.delivery.drop(env, 'error-stanza'); // RFC 6121 §8.5.2.1.1: errors are never stored or bounced
    this.delivery.toOffline(env);
  }

  #presenceToBare(env: Envelope): void {
    const { stanza, from, to } = env;
    const type = stanza.attrs.type;
    if (type === undefined || type === 'unavailable' || type === 'error') {
      // Directed presence to a bare JID: every available resource (RFC 6121 §8.5.2.1.1).
      // Presence is never bounced: a filter that refuses it drops it.
      const targets = this.#d.sessions.available(to.bare).filter((s) => !this.policy.hasIn || this.policy.checkIn(stanza, from, s.jid, s) === null);
      if (targets.length > 0) this.delivery.toSessions(env, targets);
      else this.delivery.drop(env, 'presence-no-resource');
      return;
    }
    if (this.policy.hasIn && this.policy.checkIn(stanza, from, to, null) !== null) return this.delivery.drop(env, 'policy');
    // subscribe, subscribed, unsubscribe, unsubscribed, probe: the presence module.
    // Unhandled ones are ignored: presence never reveals whether an account exists.
    this.delivery.run(env, this.#d.hooks.handle('presence-to-user', from, to, stanza).then(() => undefined));
  }

  #iqToAccount(env: Envelope): void {
    const { stanza, from, to } = env;
    const type = stanza.attrs.type;
    if (type !== 'get' && type !== 'set') {
      this.#takeReply(env);
      return;
    }
    const self = from.bare === to.bare;
    if (!self && this.policy.hasIn) {
      const verdict = this.policy.checkIn(stanza, from, to, null);
      if (verdict !== null) {
        // After the same lookup an unknown account costs (see Delivery.refuse).
        if (verdict === 'drop') this.delivery.drop(env, 'policy');
        else this.#reply(this.#d.userExists(to.local).then(() => iqError(stanza, to, from, verdict)), from);
        return;
      }
    }
    const work = (async () => {
      if (!self && !(await this.#d.userExists(to.local))) {
        // RFC 6121 §8.5.1: an IQ to an account that does not exist.
        return iqError(stanza, to, from, new StanzaError('service-unavailable'));
      }
      return this.#d.iq.dispatch(stanza, from, to, 'account', env.session);
    })();
    this.#reply(work, from);
  }

  // -------------------------------------------------------------- addressed to a full JID

  #toFull(env: Envelope): void {
    const { stanza, from, to } = env;
    const target = this.#d.sessions.get(to);
    const type = stanza.attrs.type;
    if (target) {
      if (this.policy.hasIn && from.bare !== to.bare) {
        const verdict = this.policy.checkIn(stanza, from, to, target);
        if (verdict !== null) {
          // Presence is never bounced (RFC 6121 §4.3.2); the rest gets the filter's error.
          // A message is refused as for an account with no such resource: from the bare JID.
          if (verdict === 'drop' || stanza.name === 'presence') this.delivery.drop(env, 'policy');
          else if (stanza.name === 'message') this.delivery.refuse(env.readdressed(to.toBare()), verdict);
          else this.delivery.bounce(env, verdict);
          return;
        }
      }
      this.delivery.toSessions(env, [target]);
      return;
    }
    // RFC 6121 §8.5.3.2: no such resource.
    switch (stanza.name) {
      case 'message':
        if (type === 'groupchat') this.delivery.bounce(env, new StanzaError('service-unavailable'));
        else if (type === 'error') this.delivery.drop(env, 'error-stanza');
        else this.#messageToBare(env.readdressed(to.toBare()));
        return;
      case 'presence':
        if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed' || type === 'probe') {
          this.#presenceToBare(env.readdressed(to.toBare()));
        } else this.delivery.drop(env, 'presence-no-resource'); // available, unavailable and error presence to a gone resource
        return;
      case 'iq':
        if (type === 'get' || type === 'set') this.delivery.bounce(env, new StanzaError('service-unavailable'));
        else this.delivery.drop(env, type === 'error' ? 'error-stanza' : 'unsolicited-reply');
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
    return this.#requests.request(iq, from, to, timeoutMs, (el) => this.route(el, from, to));
  }

  /** A result or error IQ for the server or an account: the reply to a request(), or dropped. */
  #takeReply(env: Envelope): void {
    if (!this.#requests.take(env.stanza, env.from, env.to)) this.delivery.drop(env, env.stanza.attrs.type === 'error' ? 'error-stanza' : 'unsolicited-reply');
  }

  // -------------------------------------------------------------- errors and delivery

  /**
   * Sends `error` back to the sender of `stanza`, unless it is an error itself
   * (RFC 6120 §8.3.1: never answer an error with an error).
   */
  bounce(stanza: XmlElement, from: Jid, to: Jid, error: StanzaError): void {
    this.delivery.bounce(new Envelope(stanza, from, to), error);
  }

  /**
   * A message that was on its way to a resource that is gone (it ended, or its cluster
   * node died) after the delivery stages ran for it: see Delivery.redeliver.
   */
  redeliver(stanza: XmlElement, from: Jid, to: Jid, copies?: readonly string[]): void {
    this.delivery.redeliver(new Envelope(stanza, from, to), copies);
  }

  /** Hands a message for an account with no available resource to offline storage (see Delivery.toOffline). */
  toOffline(stanza: XmlElement, from: Jid, to: Jid, opts?: { stagesDone?: boolean }): void {
    this.delivery.toOffline(new Envelope(stanza, from, to), opts);
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
}
