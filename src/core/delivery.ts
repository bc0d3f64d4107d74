/**
 * Delivery: the one owner of a stanza's fate. The router finds where a stanza goes; this
 * decides what happens to it there, and counts it:
 *
 *   delivered  handed to sessions (after the message stages: archive, carbons)
 *   stored     written to offline storage (the `message-offline` hook)
 *   bounced    sent back to its sender with a stanza error
 *   dropped    by a named rule of the RFCs (DROP_RULES in support/stats.ts), never silently
 *
 * It also gives back what a gone session did not deliver (RFC 6121 §8.5.3: nothing is
 * lost): the session's undelivered messages go through routing again, to another
 * resource or into offline storage, whether or not an offline module is loaded (without
 * one, their senders get service-unavailable).
 * References: RFC 6120 §8.3 (errors), §10; RFC 6121 §8.5 (delivery rules).
 */
import type { Logger } from 'pino';
import { XmlElement } from '../xml/element.js';
import { StanzaError } from '../xmpp/errors.js';
import { StorageError } from '../support/errors.js';
import { Jid } from '../xmpp/jid.js';
import { performance } from 'node:perf_hooks';
import type { DropRule, ServerStats } from '../support/stats.js';
import type { HookBus, OfflineVerdict } from './hooks.js';
import type { SessionRegistry } from './registry.js';
import type { LocalSession } from './session.js';
import type { Policy } from './policy.js';
import { Envelope } from './envelope.js';
import { MessageStages } from './message-stages.js';

export interface DeliveryDeps {
  log: Logger;
  hooks: HookBus;
  sessions: SessionRegistry;
  policy: Policy;
  stats: ServerStats;
  /** Does this local account exist? */
  userExists(username: string): Promise<boolean>;
  /** Registers async work so shutdown can wait for it. */
  track: <T>(p: Promise<T>) => Promise<T>;
  /** Routes a stanza (an error reply, a message given back): the router's entry. */
  route(env: Envelope): void;
}

export type { OfflineVerdict } from './hooks.js';

export class Delivery {
  readonly #d: DeliveryDeps;
  /** Modules acting on one-to-one messages at delivery (archive, carbons): see message-stages.ts. */
  readonly stages: MessageStages;
  /** The last offline write per recipient (bare JID), to chain the next one on. */
  readonly #offlineQueue = new Map<string, Promise<void>>();

  constructor(deps: DeliveryDeps) {
    this.#d = deps;
    this.stages = new MessageStages(deps.log, deps.track, (env, sessions) => this.#hand(env, sessions));
  }

  // ---------------------------------------------------------------- delivered

  /**
   * Delivers to `sessions`: a message through the stages (it may wait for the archive
   * write), anything else at once.
   */
  toSessions(env: Envelope, sessions: readonly LocalSession[]): void {
    if (env.stanza.name === 'message' && !this.stages.isEmpty) this.stages.deliver(env, sessions);
    else this.#hand(env, sessions);
  }

  /** The last step: the stanza reaches its sessions (and is timed and counted). */
  #hand(env: Envelope, sessions: readonly LocalSession[]): void {
    if (sessions.length === 0) return;
    const together = sessions.length > 1 ? sessions : undefined;
    let local = false;
    for (const s of sessions) {
      s.deliver(env.stanza, together);
      if (s.node === undefined) local = true;
    }
    // The routing histogram: time from entering the router to a session of this node.
    if (env.enteredAt !== 0 && local) this.#d.stats.routing.observe((performance.now() - env.enteredAt) / 1000);
  }

  // ---------------------------------------------------------------- dropped

  /**
   * Drops a stanza by a rule of the RFCs: counted (and logged at trace level), never an
   * error to the sender. `env` is null where the stanza is not parsed (a serialized
   * presence a full link refused).
   */
  drop(env: Envelope | null, rule: DropRule): void {
    this.#d.stats.stanzasDropped[rule]++;
    if (env && this.#d.log.isLevelEnabled('trace')) this.#d.log.trace({ rule, kind: env.stanza.name, type: env.stanza.attrs.type, from: env.from.full, to: env.to.full }, 'stanza dropped');
  }

  // ---------------------------------------------------------------- bounced

  /**
   * Sends `error` back to the sender of the stanza, through routing, unless it is an
   * error itself (RFC 6120 §8.3.1: never answer an error with an error).
   */
  bounce(env: Envelope, error: StanzaError): void {
    if (env.stanza.attrs.type === 'error') {
      this.drop(env, 'error-stanza');
      return;
    }
    this.#countBounce(env.stanza);
    const reply = errorReply(env.stanza, env.from, env.to, error);
    this.#d.route(new Envelope(reply, env.to, env.from, null, clockOf(reply)));
  }

  /**
   * Answers a local client's stanza with an error straight to its session, not routed:
   * the sender's own policy refused it, or it could not be routed at all.
   */
  answer(session: LocalSession, stanza: XmlElement, to: Jid, error: StanzaError): void {
    if (stanza.attrs.type === 'error') return;
    this.#countBounce(stanza);
    session.deliver(errorReply(stanza, session.jid, to, error));
  }

  /**
   * The c2s session answered its client's stanza with an error itself, before routing (a
   * malformed stanza, the message rate limit): counted as bounced.
   */
  answered(stanza: XmlElement): void {
    if (stanza.attrs.type !== 'error') this.#countBounce(stanza);
  }

  #countBounce(stanza: XmlElement): void {
    const kind = stanza.name;
    if (kind === 'message' || kind === 'presence' || kind === 'iq') this.#d.stats.stanzasBounced[kind]++;
  }

  /**
   * A message refused by the recipient's policy (privacy, blocking), bounced after the
   * same account lookup a message to an unknown account costs: neither the error nor its
   * timing tells a blocked sender from one writing to nobody.
   */
  refuse(env: Envelope, error: StanzaError): void {
    this.run(env, this.#d.userExists(env.to.local).then(() => Promise.reject(error)));
  }

  /** Waits for async work on a stanza; a failure becomes the sender's error. */
  run(env: Envelope, work: Promise<unknown>): void {
    this.#d.track(work).catch((err: unknown) => {
      if (err instanceof StanzaError) {
        this.bounce(env, err);
        return;
      }
      if (err instanceof StorageError) {
        this.#d.log.warn({ err, stanza: env.stanza.name }, 'storage failed while routing');
        this.bounce(env, new StanzaError('internal-server-error', undefined, 'wait'));
        return;
      }
      this.#d.log.error({ err, stanza: env.stanza.name }, 'routing failed');
      this.bounce(env, new StanzaError('internal-server-error'));
    });
  }

  // ---------------------------------------------------------------- stored

  /**
   * Hands a message for an account with no available resource to offline storage.
   * Unknown accounts and refusals bounce to the sender. `stagesDone`: the delivery stages
   * ran already (a message given back after it was on its way to a resource).
   */
  toOffline(env: Envelope, opts?: { stagesDone?: boolean }): void {
    const bare = env.to.toBare();
    // One recipient's messages are stored one after the other, so they keep their order.
    // Messages held by the message stages for this account go first.
    const held = this.stages.pending(bare.bare);
    const prev = this.#offlineQueue.get(bare.bare) ?? held ?? Promise.resolve();
    // The account check and the stages (the archive write) start at once; only the
    // stores are chained, so a burst of offline messages is archived in a few batches.
    const exists = this.#d.userExists(bare.local);
    const staged = !(this.stages.isEmpty || opts?.stagesDone);
    const accepted = staged ? exists.then((ok) => (ok ? this.stages.accept(env) : undefined)) : undefined;
    exists.catch(() => undefined); // awaited below, in order; not an unhandled rejection meanwhile
    accepted?.catch(() => undefined);
    const work = (held && prev !== held ? Promise.all([prev, held]) : prev).then(async () => {
      if (!(await exists)) throw new StanzaError('service-unavailable');
      if (!staged) {
        await this.#d.sessions.catchUp();
        if (this.#deliveredAfterAll(env, bare, false)) return;
        await this.#store(env, bare);
        return;
      }
      await accepted;
      await this.#d.sessions.catchUp();
      if (this.#deliveredAfterAll(env, bare, true)) return;
      // Stored, or dropped by the store's rule: settled either way. A refusal bounces,
      // and the stages undo what they did (the archive row).
      let settled = false;
      try {
        await this.#store(env, bare);
        settled = true;
      } finally {
        if (!settled) await this.stages.rejected(env);
      }
      this.stages.delivered(env, []);
    });
    const tail = work.catch(() => undefined);
    this.#offlineQueue.set(bare.bare, tail);
    void tail.then(() => {
      if (this.#offlineQueue.get(bare.bare) === tail) this.#offlineQueue.delete(bare.bare);
    });
    this.run(env, work);
  }

  /**
   * Just before a message is stored (after the directory caught up): is its recipient
   * there by now? In a cluster a resource bound on another node reaches this node's
   * directory a moment after its client was told it is bound (pub/sub), and a message
   * sent to it at once found nothing. The resource it was sent to (when it was sent to a
   * full JID), else the highest-priority available ones, get it live.
   */
  #deliveredAfterAll(env: Envelope, bare: Jid, staged: boolean): boolean {
    const { stanza, from } = env;
    let targets: LocalSession[] = [];
    const policy = this.#d.policy;
    const allowed = (s: LocalSession) => !policy.hasIn || policy.checkIn(stanza, from, s.jid, s) === null;
    const full = Jid.tryParse(stanza.attrs.to);
    if (full && full.resource !== '' && full.bare === bare.bare) {
      const s = this.#d.sessions.get(full);
      if (s && !s.isClosed && allowed(s)) targets = [s];
    }
    if (targets.length === 0) targets = bestResources(this.#d.sessions.available(bare.bare).filter((s) => !s.isClosed && allowed(s)));
    if (targets.length === 0) return false;
    this.#hand(env, targets);
    if (staged) this.stages.delivered(env, targets);
    return true;
  }

  /**
   * The offline hook. Resolves when stored, or dropped by the store's rule (counted);
   * throws StanzaError when refused (full: resource-constraint; no offline module:
   * service-unavailable), which bounces.
   */
  async #store(env: Envelope, bare: Jid): Promise<void> {
    let verdict: OfflineVerdict | undefined;
    try {
      verdict = await this.#d.hooks.first('message-offline', { to: bare, stanza: env.stanza });
    } finally {
      if (verdict === undefined) this.#d.stats.offlineRefused++;
    }
    if (verdict === undefined) throw new StanzaError('service-unavailable');
    if (verdict === 'stored') this.#d.stats.offlineStored++;
    else this.drop(env, verdict.dropped);
  }

  /**
   * Stores a server-made message for an account now (a portal notification for a user
   * who is offline): true when stored, false when no store took it or it was dropped by
   * the store's rule. A refusal (full) throws StanzaError.
   */
  async storeOffline(env: Envelope): Promise<boolean> {
    const verdict = await this.#d.hooks.first('message-offline', { to: env.to.toBare(), stanza: env.stanza });
    if (verdict === undefined) {
      this.#d.stats.offlineRefused++;
      return false;
    }
    if (verdict === 'stored') {
      this.#d.stats.offlineStored++;
      return true;
    }
    this.drop(env, verdict.dropped);
    return false;
  }

  // ---------------------------------------------------------------- given back

  /**
   * A message that was on its way to a resource that is gone (it ended, or its cluster
   * node died) after the delivery stages (archive, carbons) ran for it. `copies`: the
   * other resources it was delivered to at the same time (to the bare JID); they have
   * it, so nothing more is done. Otherwise the user's available resources now get it,
   * else offline storage. The stages do not run again.
   */
  redeliver(env: Envelope, copies?: readonly string[]): void {
    const { stanza, to } = env;
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error') return this.drop(env, 'error-stanza');
    if (type === 'groupchat') return this.bounce(env, new StanzaError('service-unavailable'));
    if (copies && copies.some((c) => c !== to.full)) return this.drop(env, 'already-delivered');
    const target = to.resource !== '' ? this.#d.sessions.get(to) : undefined;
    if (target && !target.isClosed) return this.#hand(env, [target]);
    const best = bestResources(this.#d.sessions.available(to.bare));
    if (best.length > 0) return this.#hand(env, best);
    if (type === 'headline') return this.drop(env, 'headline-no-resource');
    this.toOffline(env, { stagesDone: true });
  }

  /**
   * A session ended: the messages sent to it that are not known to have reached its
   * client go through routing again, to the user's bare JID (another resource, or
   * offline storage).
   */
  sessionGone(session: LocalSession, undelivered: readonly XmlElement[], domain: Jid): void {
    if (undelivered.length === 0) return;
    this.#d.log.debug({ jid: session.jid.full, messages: undelivered.length, ids: undelivered.slice(0, 5).map((m) => m.attrs.id) }, 'messages not known to have reached a closed session routed again');
    const bare = session.jid.toBare();
    for (const msg of undelivered) this.#d.route(new Envelope(msg, Jid.tryParse(msg.attrs.from) ?? domain, bare, null, clockOf(msg)));
  }
}

/** A message's routing clock starts when it enters the router (the routing histogram); other stanzas are not timed. */
export function clockOf(stanza: XmlElement): number {
  return stanza.name === 'message' ? performance.now() : 0;
}

/** The available resources of the highest non-negative priority (RFC 6121 §8.5.2.1.1). */
export function bestResources(available: readonly LocalSession[]): LocalSession[] {
  let best = -1;
  for (const s of available) if (s.priority > best) best = s.priority;
  return best < 0 ? [] : available.filter((s) => s.priority === best);
}

/** The error reply to `stanza` (its children kept, RFC 6120 §8.3.1), from its recipient to its sender. */
export function errorReply(stanza: XmlElement, from: Jid, to: Jid, error: StanzaError): XmlElement {
  const reply = new XmlElement(stanza.name, { type: 'error', id: stanza.attrs.id, from: to.full, to: from.full });
  if (reply.attrs.id === undefined) delete reply.attrs.id;
  for (const c of stanza.children) if (typeof c !== 'string') reply.append(c);
  reply.append(error.toElement());
  return reply;
}
