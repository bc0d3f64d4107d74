/**
 * The client session state machine, one for every transport.
 * References: RFC 6120 §4 (streams), §5 (STARTTLS), §6 (SASL), §7 (resource binding),
 * §8 (stanzas: `from` stamping, validation); RFC 6121 §1.4 (legacy `session` IQ);
 * XEP-0198 (stream management: acks, resumption); XEP-0352 (client state indication).
 *
 * States: header → (starttls) → header → sasl → header → bind → active → closed.
 * With stream management and resumption, an active session whose connection drops is
 * hibernated: it stays bound and available (in the registry), its stanzas wait in the
 * queue of unacknowledged stanzas, until a new connection of the same user resumes it
 * (active again, on that connection) or `resumeTimeout` passes (closed: unacknowledged
 * messages go to offline storage through 'session-closed').
 *
 * Presence for a hibernated session is held like for an inactive client (XEP-0352): only
 * the latest presence of each contact's resource is kept, and it is sent after the
 * queued stanzas when the session is resumed, so a long absence costs one presence per
 * contact resource, not one per change. Messages and IQs are queued as they are.
 */
import { randomBytes } from 'node:crypto';
import { XmlElement, x } from '../xml/element.js';
import { serialize } from '../xml/serializer.js';
import { NS } from '../xmpp/ns.js';
import { Jid, JidError } from '../xmpp/jid.js';
import { SaslFailure, StanzaError, StreamError } from '../xmpp/errors.js';
import { StorageError } from '../support/errors.js';
import { createServerMechanism, serverMechanismNames, supportedChannelBindingTypes, channelBindingFeature, type SaslServerMechanism, type SaslStep } from '../xmpp/sasl/server.js';
import { normalizeUsername } from '../auth/authenticator.js';
import type { ServerCore } from '../core/server.js';
import type { Logger } from '../support/logger.js';
import type { LocalSession, StanzaKind, TransportKind } from '../core/session.js';
import type { CloseReason } from '../core/hooks.js';
import { iqError, iqResult } from '../core/iq.js';
import type { C2sStreamEvents, C2sTransport, OutboundKind } from './transport.js';
import { parseElement } from '../xml/parse.js';
import { PresenceBuffer } from './presence-buffer.js';
import { isStanzaSizeError } from '../xml/parser.js';
import type { LimitName } from '../support/stats.js';
import { R_XML, SmState, ackXml, failed, grantedResumeMs, handledCountTooHigh, parseH, smRegistryOf, type SmRegistry } from './stream-management.js';

const enum State {
  /** Waiting for the client's stream header (first, after STARTTLS, after SASL). */
  Header,
  /** Features sent, before authentication (STARTTLS, SASL). */
  PreAuth,
  /** Authenticated, waiting for resource binding. */
  Bind,
  /** Bound: stanzas flow. */
  Active,
  /** Bound, connection lost, waiting for resumption (XEP-0198 §5). */
  Hibernated,
  /** Our side is closed; waiting for the connection to go. */
  Closing,
  Closed,
}

const PRESENCE_TYPES = new Set(['unavailable', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'error']);
const IQ_TYPES = new Set(['get', 'set', 'result', 'error']);
/** SECURITY: a BCP 47 tag's shape (RFC 5646 §2.1); anything else in xml:lang is not copied onto stanzas. */
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8}){0,15}$/;

/** A placeholder JID for sessions that are not bound yet. */
const UNBOUND = Jid.parse('unbound.invalid');

export class C2sSession implements LocalSession, C2sStreamEvents {
  readonly id: string;
  readonly #core: ServerCore;
  /** The c2s logger (shared by every session; its level changes on reload). */
  readonly #log: Logger;
  #t: C2sTransport;
  #state = State.Header;
  #jid: Jid = UNBOUND;
  /** Localpart once SASL succeeded. */
  #user: string | null = null;
  #sasl: SaslServerMechanism | null = null;
  /** The mechanism of the last SASL exchange, for the login metrics ('other' when not offered: bounded labels). */
  #saslMechName = 'other';
  #saslFailures = 0;
  /** SASL exchanges of this connection that reached the credential check (limits.saslAttemptsPerConnection). */
  #credentialChecks = 0;
  /** The SASL exchange in progress checks a portal login token (not a password). */
  #saslPortalToken = false;
  /** The account of the SASL exchange in progress, once its username was read (login limits). */
  #saslAccount: string | null = null;
  /** Delay of the final answer of this SASL exchange (login slow-down), and the limit that set it. */
  #loginDelayMs = 0;
  #loginDelayLimit: LimitName | null = null;
  /** The remote address while it counts as unauthenticated (limits.unauthenticatedPerIp). */
  #unauthIp: string | null;
  #authTimer: NodeJS.Timeout | null = null;
  #closeReason: CloseReason = 'client';
  #wasBound = false;
  /** Stream management, from `<enable/>` on (null: off, the fast path). */
  #sm: SmState | null = null;
  /** Presence held back (client inactive, or hibernated); null when nothing is held back. */
  #held: PresenceBuffer | null = null;
  /** The client said `<inactive/>` (XEP-0352). */
  #inactive = false;
  /** Messages that came between close and the end (handed back after the undelivered ones). */
  #late: XmlElement[] | null = null;
  /** The stream's xml:lang (RFC 6120 §4.7.4), or null when it named none (or a malformed one). */
  #lang: string | null = null;
  priority = 0;
  presence: XmlElement | null = null;
  rosterRequested = false;
  flags = 0;
  privacyList: string | null = null;
  boundAt = 0;

  constructor(core: ServerCore, transport: C2sTransport) {
    this.#core = core;
    this.#log = core.logs.for('c2s');
    this.#t = transport;
    this.id = randomBytes(9).toString('base64url');
    core.connections.add(this);
    this.#unauthIp = transport.remoteAddress;
    core.limits.enterUnauthenticated(this.#unauthIp);
    this.#authTimer = setTimeout(() => {
      this.#closeReason = 'timeout';
      this.close(new StreamError('connection-timeout', 'authentication took too long'));
    }, core.config.limits.authTimeout);
    this.#authTimer.unref();
  }

  get jid(): Jid {
    return this.#jid;
  }
  get transport(): TransportKind {
    return this.#t.kind;
  }
  get isSecure(): boolean {
    return this.#t.isSecure;
  }
  get remoteAddress(): string {
    return this.#t.remoteAddress;
  }
  get isAvailable(): boolean {
    return this.presence !== null;
  }
  get isClosed(): boolean {
    return this.#state >= State.Closing;
  }
  get isBound(): boolean {
    return this.#state === State.Active || this.#state === State.Hibernated;
  }
  /** Waiting for resumption (XEP-0198): no connection, stanzas are queued. */
  get isHibernated(): boolean {
    return this.#state === State.Hibernated;
  }
  /** The client said it is inactive (XEP-0352). */
  get isInactive(): boolean {
    return this.#inactive;
  }
  /** The stream management resumption id, when resumable. */
  get smId(): string | null {
    return this.#sm?.id ?? null;
  }

  // ------------------------------------------------------------------ delivery

  deliver(stanza: XmlElement): void {
    if (this.#state >= State.Closing) {
      this.#lateMessage(stanza);
      return;
    }
    const kind = kindOf(stanza);
    if (kind !== 'nonza') {
      const stats = this.#core.stats;
      stats.stanzasOut[kind]++;
    }
    if (this.#sm === null && this.#held === null) this.#t.send(serialize(stanza), kind, stanza);
    else this.#deliverManaged(serialize(stanza), kind, stanza);
  }

  deliverSerialized(xml: string, kind: StanzaKind, el?: XmlElement): void {
    if (this.#state >= State.Closing) {
      if (el) this.#lateMessage(el);
      return;
    }
    const stats = this.#core.stats;
    stats.stanzasOut[kind]++;
    if (this.#sm === null && this.#held === null) this.#t.send(xml, kind, el);
    else this.#deliverManaged(xml, kind, el);
  }

  /** Delivery with stream management, held presence, or both. */
  #deliverManaged(xml: string, kind: OutboundKind, el: XmlElement | undefined): void {
    const held = this.#held;
    if (held !== null) {
      if (kind === 'presence' && PresenceBuffer.holds(el)) {
        held.add(xml, el);
        if (held.size > this.#core.config.csi.maxHeld) this.#flushHeld();
        return;
      }
      // Messages and other presence never wait, and what was held goes out before them
      // (a contact's presence before its message). IQs do not need that order.
      if (kind !== 'iq' && held.size > 0 && this.#state === State.Active) this.#flushHeld();
    }
    this.#out(xml, kind, el);
  }

  /** Sends what was held back, in order; stops holding unless the client is inactive or hibernated. */
  #flushHeld(): void {
    const held = this.#held;
    if (held === null) return;
    if (!this.#inactive && this.#state !== State.Hibernated) this.#held = null;
    for (const p of held.take()) this.#out(p.xml, 'presence', p.el);
  }

  /**
   * Every element for the client goes through here once bound: with stream management
   * a stanza is counted and queued until acknowledged; a hibernated session only queues.
   */
  #out(xml: string, kind: OutboundKind, el: XmlElement | undefined): void {
    const sm = this.#sm;
    if (sm === null || kind === 'nonza') {
      if (this.#state !== State.Hibernated) this.#t.send(xml, kind, el);
      return;
    }
    sm.queue.push({ xml, kind, el });
    if (this.#state === State.Active) {
      this.#t.send(xml, kind, el);
      // Ask soon for what matters (a message), otherwise every `ackAfter` stanzas.
      if (!sm.awaitingAck && (kind === 'message' || sm.queue.length >= this.#core.config.streamManagement.ackAfter)) this.#requestAck(sm);
    }
    if (sm.queue.length > this.#core.config.streamManagement.maxQueue) {
      // Bounded: a client that does not acknowledge (or does not come back) loses the
      // session; its unacknowledged messages go to offline storage.
      this.#closeReason = 'error';
      this.close(new StreamError('resource-constraint', 'too many unacknowledged stanzas'));
    }
  }

  /**
   * A message that reached this session after it closed goes back through routing: after
   * the session's own undelivered messages when those are not handed back yet (order kept).
   */
  #lateMessage(stanza: XmlElement): void {
    if (stanza.name !== 'message' || this.#jid === UNBOUND) return;
    if (this.#state === State.Closing && this.#wasBound) {
      (this.#late ??= []).push(stanza);
      return;
    }
    const from = Jid.tryParse(stanza.attrs.from) ?? this.#core.router.domainJid;
    this.#core.router.route(stanza, from, this.#jid.toBare());
  }

  // ------------------------------------------------------------------ stream events

  onStreamOpen(attrs: Record<string, string>, contentNs: string): void {
    if (this.#state !== State.Header) {
      this.close(new StreamError('not-well-formed', 'unexpected stream header'));
      return;
    }
    const domain = this.#core.domain;
    this.#t.open({ id: this.id, from: domain, version: '1.0', lang: 'en' }, this.#features());
    if (contentNs !== NS.CLIENT) {
      this.close(new StreamError('invalid-namespace', `the content namespace must be ${NS.CLIENT}`));
      return;
    }
    const to = attrs.to;
    if (to !== undefined && to.toLowerCase() !== domain) {
      this.close(new StreamError('host-unknown', `this server serves ${domain}`));
      return;
    }
    const version = attrs.version;
    if (version === undefined || !/^1\.\d+$/.test(version)) {
      this.close(new StreamError('unsupported-version', 'XMPP 1.0 streams only'));
      return;
    }
    // RFC 6120 §4.7.4: the stream's default language, given to stanzas that name none.
    const lang = attrs['xml:lang'];
    this.#lang = lang !== undefined && LANGUAGE_TAG.test(lang) ? lang : null;
    this.#state = this.#user === null ? State.PreAuth : State.Bind;
  }

  onStanza(el: XmlElement): void {
    switch (this.#state) {
      case State.PreAuth:
        this.#preAuth(el);
        return;
      case State.Bind:
        this.#preBind(el);
        return;
      case State.Active:
        this.#stanza(el);
        return;
      case State.Header:
        this.close(new StreamError('not-authorized', 'stream not open'));
        return;
      case State.Closing:
        this.#ackAfterClose(el);
        return;
      default:
        return;
    }
  }

  /**
   * This side closed the stream; the client's answer to the last `<r/>` may still come
   * before its closing tag. What it acknowledges reached it: not stored offline again
   * (without this a message written just before a server-side close, such as a node
   * expelled from the cluster or a conflict, came once live and once from storage).
   * Nothing else the client sends now is processed.
   */
  #ackAfterClose(el: XmlElement): void {
    const sm = this.#sm;
    if (sm === null || !this.#wasBound || el.ns !== NS.SM || el.name !== 'a') return;
    const h = parseH(el.attrs.h);
    if (h !== null && sm.queue.canAck(h)) sm.queue.ack(h);
  }

  onStreamClose(): void {
    if (this.#state >= State.Closing) return;
    this.#closeReason = 'client';
    this.close();
  }

  onStreamError(error: StreamError): void {
    if (this.#state >= State.Closing) return;
    if (error.condition === 'policy-violation' && isStanzaSizeError(error.text)) this.#core.limits.hit('stanza-size');
    this.#closeReason = 'error';
    this.close(error);
  }

  onDisconnect(): void {
    if (this.#state === State.Active && this.#sm?.id) {
      // XEP-0198 §5: the connection dropped without a closing stream: wait for resumption.
      this.#hibernate(this.#t.takeUndelivered());
      return;
    }
    if (this.#state < State.Closing) {
      this.#closeReason = 'transport';
      this.#leave();
    }
    this.#end();
  }

  /**
   * Ends the session: stream error (if any) and closing tag. The session leaves the
   * registry at once; the 'session-closed' hook runs when the connection is gone, so
   * that what it hands back as undelivered is exact.
   */
  close(error?: StreamError): void {
    if (this.#state >= State.Closing) return;
    if (error && this.#closeReason === 'client') {
      this.#closeReason =
        error.condition === 'conflict' ? 'conflict' : error.condition === 'system-shutdown' ? 'shutdown' : error.condition === 'connection-timeout' ? 'timeout' : 'error';
    }
    const hibernated = this.#state === State.Hibernated;
    // XEP-0198 §8: tell the client what we handled before the stream ends, and ask what it
    // handled: its answer, read until the connection ends, keeps what reached it out of
    // offline storage (#ackAfterClose).
    const askAck = this.#sm !== null && this.#state === State.Active && this.#sm.queue.length > 0;
    if (this.#sm !== null && this.#state === State.Active) {
      if (askAck) this.#t.send(R_XML, 'nonza');
      this.#t.send(ackXml(this.#sm.inbound), 'nonza');
    }
    this.#leave();
    if (hibernated) this.#end(); // no connection to wait for
    else this.#t.close(error, askAck);
  }

  #leave(): void {
    this.#wasBound = this.#state === State.Active || this.#state === State.Hibernated;
    this.#state = State.Closing;
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    this.#sasl = null;
    this.#held = null;
    this.#authenticated();
    const sm = this.#sm;
    if (sm !== null) {
      sm.clearTimers();
      if (sm.id !== null) this.#registry().retire(sm.id, this.#user!, sm.inbound);
    }
    if (this.#wasBound) this.#core.sessions.remove(this);
  }

  /** Kicks the session (admin), with a reason the client sees. */
  kick(text = 'kicked by an administrator'): void {
    this.#closeReason = 'kicked';
    this.close(new StreamError('policy-violation', text));
  }

  /** No longer counts as an unauthenticated connection of its address (authenticated, or gone). */
  #authenticated(): void {
    if (this.#unauthIp === null) return;
    this.#core.limits.leaveUnauthenticated(this.#unauthIp);
    this.#unauthIp = null;
  }

  #end(): void {
    if (this.#state === State.Closed) return;
    this.#state = State.Closed;
    this.#authenticated();
    this.#core.connections.delete(this);
    if (!this.#wasBound) return;
    let undelivered = this.#t.takeUndelivered();
    const sm = this.#sm;
    if (sm !== null && sm.queue.length > 0) {
      // Exact with acknowledgements: every message the client did not acknowledge, after
      // those the transport still had from before stream management was enabled.
      const unacked = this.#unackedMessages(sm);
      const known = new Set(unacked);
      undelivered = [...undelivered.filter((m) => !known.has(m)), ...unacked];
    }
    if (this.#late !== null) {
      undelivered = undelivered.concat(this.#late);
      this.#late = null;
    }
    void this.#core.track(this.#core.hooks.notify('session-closed', this, { reason: this.#closeReason, undelivered }));
  }

  // ------------------------------------------------------------------ features

  #features(): XmlElement {
    const f = new XmlElement('stream:features');
    if (this.#user === null) {
      const requireTls = this.#requireTls();
      if (this.#t.canStartTls) {
        const starttls = x('starttls', { xmlns: NS.TLS });
        if (requireTls) starttls.c('required');
        f.append(starttls);
      }
      if (!requireTls || this.#t.isSecure) {
        const cbTypes = supportedChannelBindingTypes(this.#t);
        const mechs = serverMechanismNames({ isSecure: this.#t.isSecure, allowPlainInsecure: this.#allowPlainInsecure(), channelBindingTypes: cbTypes, scram: this.#core.authenticator.offersScram });
        f.append(x('mechanisms', { xmlns: NS.SASL }, ...mechs.map((m) => x('mechanism', null, m))));
        if (cbTypes.length > 0 && this.#core.authenticator.offersScram) f.append(channelBindingFeature(cbTypes));
      }
      for (const p of this.#core.streamFeatures) {
        const el = p(null, 'pre-bind');
        if (el) f.append(el);
      }
    } else {
      f.append(x('bind', { xmlns: NS.BIND }));
      f.append(x('session', { xmlns: NS.SESSION }, x('optional')));
      if (this.#canManageStream()) f.append(x('sm', { xmlns: NS.SM }));
      if (this.#core.config.csi.enabled) f.append(x('csi', { xmlns: NS.CSI }));
      for (const p of this.#core.streamFeatures) {
        const el = p(this, 'post-bind');
        if (el) f.append(el);
      }
    }
    return f;
  }

  /** TLS is required before authentication on TCP unless the listener says otherwise. */
  #requireTls(): boolean {
    return this.#t.kind === 'tcp' && this.#core.config.listen.c2s.requireTls;
  }

  /**
   * PLAIN without TLS: only on a TCP listener with `requireTls: false` (loopback
   * benchmarks). HTTP transports count as secure only when `listen.http.secure` says
   * TLS is terminated in front.
   */
  #allowPlainInsecure(): boolean {
    return this.#t.kind === 'tcp' && !this.#core.config.listen.c2s.requireTls;
  }

  // ------------------------------------------------------------------ STARTTLS and SASL

  #preAuth(el: XmlElement): void {
    if (el.ns === NS.TLS && el.localName === 'starttls') {
      if (!this.#t.canStartTls) {
        this.close(new StreamError('unsupported-feature', 'STARTTLS is not offered here'));
        return;
      }
      this.#state = State.Header;
      this.#t.startTls(() => undefined);
      return;
    }
    if (el.ns !== NS.SASL) {
      this.close(new StreamError('not-authorized', 'authenticate first'));
      return;
    }
    if (this.#sasl === null && el.localName !== 'auth') {
      if (el.localName === 'abort') this.#saslFail(new SaslFailure('aborted'));
      else this.close(new StreamError('not-authorized', 'no authentication in progress'));
      return;
    }
    switch (el.localName) {
      case 'auth':
        this.#saslStart(el);
        return;
      case 'response':
        this.#saslStep(this.#sasl!, el);
        return;
      case 'abort':
        this.#sasl = null;
        this.#saslFail(new SaslFailure('aborted'));
        return;
      default:
        this.close(new StreamError('unsupported-stanza-type'));
    }
  }

  #saslStart(el: XmlElement): void {
    if (this.#sasl !== null) {
      this.#sasl = null;
      this.#saslFail(new SaslFailure('aborted', 'a new exchange replaced the one in progress'));
      return;
    }
    const requireTls = this.#requireTls();
    if (requireTls && !this.#t.isSecure) {
      this.#saslMechName = 'other';
      this.#saslFail(new SaslFailure('encryption-required'));
      return;
    }
    const cbTypes = supportedChannelBindingTypes(this.#t);
    const offered = serverMechanismNames({ isSecure: this.#t.isSecure, allowPlainInsecure: this.#allowPlainInsecure(), channelBindingTypes: cbTypes, scram: this.#core.authenticator.offersScram });
    const name = el.attrs.mechanism ?? '';
    this.#saslMechName = offered.includes(name) ? name : 'other';
    const base = this.#core.authenticator.saslContext((type) => this.#t.channelBinding(type));
    // Login limits: the account is known once the mechanism reads the username, before
    // any credential is looked at; a refused account is not checked at all.
    const ctx: typeof base = {
      ...base,
      getScramCredentials: async (username, hash) => {
        this.#credentialCheck(username, false);
        return base.getScramCredentials(username, hash);
      },
      verifyPlain: async (username, password) => {
        this.#credentialCheck(username, this.#core.authenticator.isPortalToken(password));
        return base.verifyPlain(username, password);
      },
    };
    const mech = offered.includes(name) ? createServerMechanism(name, ctx, { plusAdvertised: offered.some((m) => m.endsWith('-PLUS')) }) : null;
    if (!mech) {
      this.#saslFail(new SaslFailure('invalid-mechanism'));
      return;
    }
    // The login limits apply when the mechanism reaches the credential check (#credentialCheck).
    this.#saslAccount = null;
    this.#saslPortalToken = false;
    this.#loginDelayMs = 0;
    this.#loginDelayLimit = null;
    this.#sasl = mech;
    this.#saslStep(mech, el);
  }

  #saslStep(mech: SaslServerMechanism, el: XmlElement): void {
    const text = el.text().trim();
    let data: Buffer;
    if (text === '' || text === '=') data = Buffer.alloc(0);
    else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) data = Buffer.from(text, 'base64');
    else {
      this.#sasl = null;
      this.#saslFail(new SaslFailure('incorrect-encoding'));
      return;
    }
    mech.step(data).then(
      (step) => {
        if (this.#state !== State.PreAuth || this.#sasl !== mech) return;
        if (!step.done) {
          this.#send(x('challenge', { xmlns: NS.SASL }, step.challenge.length ? step.challenge.toString('base64') : '='));
          return;
        }
        this.#afterLoginDelay(mech, () => this.#saslDone(step, mech.name));
      },
      (err: unknown) => {
        if (this.#state !== State.PreAuth || this.#sasl !== mech) return;
        const refused = err instanceof SaslFailure && err.condition === 'temporary-auth-failure' && err.text === TOO_MANY_ATTEMPTS;
        const fail = () => {
          this.#sasl = null;
          if (err instanceof SaslFailure) this.#saslFail(err);
          else {
            if (!(err instanceof StorageError)) this.#log.error({ err }, 'SASL step failed');
            this.#saslFail(new SaslFailure('temporary-auth-failure'));
          }
        };
        if (refused) fail();
        else this.#afterLoginDelay(mech, fail);
      },
    );
  }

  /**
   * Runs the final answer of a SASL exchange, after the login slow-down delay if one
   * applies (success and failure alike, so the delay says nothing about the password).
   */
  #afterLoginDelay(mech: SaslServerMechanism, answer: () => void): void {
    const ms = this.#loginDelayMs;
    const limit = this.#loginDelayLimit;
    this.#loginDelayMs = 0;
    this.#loginDelayLimit = null;
    if (ms <= 0) {
      answer();
      return;
    }
    if (limit) this.#core.limits.hit(limit);
    setTimeout(() => {
      if (this.#state !== State.PreAuth || this.#sasl !== mech) return;
      answer();
    }, ms).unref();
  }

  /**
   * The mechanism read the username and is about to check a credential (PBKDF2, a read of
   * the user store or the portal). Throws to stop it: the connection's budget is spent
   * (the stream is closed with policy-violation), or the login limits refuse it
   * (temporary-auth-failure); otherwise notes the slow-down delay of the answer.
   */
  #credentialCheck(username: string, portalToken: boolean): void {
    // SECURITY: every exchange that gets this far costs the server work, whether it ends in
    // success, failure or abort (the work goes on after an <abort/>, and after the
    // connection is gone): one connection cannot pipeline them without bound.
    if (++this.#credentialChecks > this.#core.config.limits.saslAttemptsPerConnection) {
      this.#core.limits.hit('sasl-attempts-per-connection');
      this.close(new StreamError('policy-violation', 'too many authentication attempts'));
      throw new SaslFailure('aborted', 'connection closed'); // not sent: the stream is closed
    }
    const local = normalizeUsername(username);
    this.#saslAccount = local;
    this.#saslPortalToken = portalToken;
    // SECURITY: a portal token costs one HMAC and cannot be guessed: password failures of the
    // account or the address neither refuse nor slow it (the owner's device must get in).
    if (portalToken) return;
    const verdict = this.#core.limits.loginVerdict(this.remoteAddress, local);
    if (verdict.refuse) {
      this.#core.limits.hit(verdict.limit);
      throw new SaslFailure('temporary-auth-failure', TOO_MANY_ATTEMPTS);
    }
    if (!this.#core.limits.startCredentialCheck(this.remoteAddress)) throw new SaslFailure('temporary-auth-failure', TOO_MANY_ATTEMPTS);
    if (verdict.delayMs > this.#loginDelayMs) {
      this.#loginDelayMs = verdict.delayMs;
      this.#loginDelayLimit = verdict.limit;
    }
  }

  #saslDone(step: Extract<SaslStep, { done: true }>, mechanism: string): void {
    this.#sasl = null;
    const local = normalizeUsername(step.username);
    if (local === null) {
      this.#saslFail(new SaslFailure('not-authorized'));
      return;
    }
    if (step.authzid && step.authzid !== `${local}@${this.#core.domain}` && step.authzid !== local) {
      this.#saslFail(new SaslFailure('invalid-authzid'));
      return;
    }
    this.#user = local;
    this.#core.stats.login(mechanism, true);
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ user: local, mechanism, transport: this.#t.kind }, 'authenticated');
    // A token login says nothing about who sent the wrong passwords: their counts stay.
    if (!this.#saslPortalToken) this.#core.limits.loginSucceeded(this.remoteAddress, local);
    this.#authenticated();
    this.#send(x('success', { xmlns: NS.SASL }, step.additionalData?.length ? step.additionalData.toString('base64') : null));
    this.#state = State.Header;
    this.#t.restart();
  }

  /**
   * Prebind (issue 8): the portal vouched for this user, so the session counts as
   * authenticated without SASL; the stream restarts as after <success/> (nothing is
   * sent for it). Only before authentication.
   */
  authenticateAs(localpart: string): void {
    if (this.#state !== State.PreAuth || this.#sasl !== null) throw new Error('authenticateAs: the session is not waiting for authentication');
    this.#user = localpart;
    this.#authenticated();
    this.#state = State.Header;
    this.#t.restart();
  }

  #saslFail(failure: SaslFailure): void {
    if (COUNTED_FAILURES.has(failure.condition)) this.#core.limits.loginFailed(this.remoteAddress, this.#saslAccount);
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ condition: failure.condition, transport: this.#t.kind, remote: this.#t.remoteAddress }, 'authentication failed');
    this.#send(failure.toElement());
    if (failure.condition !== 'aborted') this.#core.stats.login(this.#saslMechName, false);
    if (failure.condition === 'aborted' || failure.condition === 'temporary-auth-failure') return;
    if (++this.#saslFailures >= this.#core.config.limits.maxSaslFailures) {
      this.close(new StreamError('policy-violation', 'too many failed authentication attempts'));
    }
  }

  // ------------------------------------------------------------------ binding

  #preBind(el: XmlElement): void {
    if (el.ns === NS.SM) {
      // XEP-0198 §5: resumption comes instead of binding; enabling only after it (§3).
      if (el.name === 'resume') this.#resume(el);
      else this.#send(failed('unexpected-request'));
      return;
    }
    if (el.name !== 'iq' || el.ns !== NS.CLIENT) {
      this.close(new StreamError('not-authorized', 'bind a resource first'));
      return;
    }
    const bind = el.getChild('bind', NS.BIND);
    if (!bind) {
      // Other IQs before binding are refused without ending the stream.
      if (el.attrs.type === 'get' || el.attrs.type === 'set') this.#send(iqError(el, this.#core.domain, '', new StanzaError('not-authorized')));
      return;
    }
    if (el.attrs.type !== 'set' || !el.attrs.id) {
      this.#send(iqError(el, this.#core.domain, '', new StanzaError('bad-request')));
      return;
    }
    const wanted = bind.getChildText('resource')?.trim();
    let jid: Jid;
    try {
      jid = Jid.of(this.#user!, this.#core.domain, wanted || `parley-${randomBytes(6).toString('hex')}`);
    } catch (e) {
      if (!(e instanceof JidError)) throw e;
      this.#send(iqError(el, this.#core.domain, '', new StanzaError('bad-request', 'invalid resource')));
      return;
    }
    const existing = this.#core.sessions.resources(jid.bare);
    const replacing = existing.some((s) => s.jid.resource === jid.resource);
    if (!replacing && existing.length >= this.#core.config.limits.maxResourcesPerUser) {
      // RFC 6120 §7.6.2.1: resource-constraint (wait) when the account has too many resources.
      this.#core.limits.hit('sessions-per-user');
      this.#send(iqError(el, this.#core.domain, '', new StanzaError('resource-constraint', 'too many sessions for this account', 'wait')));
      return;
    }
    this.#jid = jid;
    this.boundAt = Date.now();
    this.#state = State.Active;
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    const replaced = this.#core.sessions.add(this);
    // RFC 6120 §7.7.2.2: the newer session wins; the older one ends with <conflict/>.
    if (replaced && replaced !== this) replaced.close(new StreamError('conflict', 'replaced by a new session with the same resource'));
    this.#send(iqResult(el, this.#core.domain, jid.full, x('bind', { xmlns: NS.BIND }, x('jid', null, jid.full))));
    void this.#core.track(this.#core.hooks.notify('session-bound', this));
  }

  // ------------------------------------------------------------------ stanzas

  #stanza(el: XmlElement): void {
    const name = el.name;
    if (name !== 'message' && name !== 'presence' && name !== 'iq') {
      this.#nonza(el);
      return;
    }
    // SECURITY: a stanza is logged by kind and id; its XML (bodies) only with log.sensitive.
    if (this.#log.isLevelEnabled('debug')) this.#logStanza(el);
    // XEP-0198 §4: every stanza received counts as handled, whatever its fate.
    if (this.#sm !== null) this.#sm.countInbound();
    this.#core.stats.stanzasIn[name]++;
    if (el.ns !== NS.CLIENT) {
      this.close(new StreamError('invalid-namespace', `stanzas must be in ${NS.CLIENT}`));
      return;
    }
    // RFC 6120 §8.1.2.1: the server stamps `from`; a client may only name itself.
    const from = el.attrs.from;
    if (from !== undefined && from !== this.#jid.full && from !== this.#jid.bare) {
      const parsed = Jid.tryParse(from);
      if (!parsed || (parsed.full !== this.#jid.full && parsed.full !== this.#jid.bare)) {
        this.close(new StreamError('invalid-from', 'stanzas may only come from the session’s own JID'));
        return;
      }
    }
    el.attrs.from = this.#jid.full;
    // RFC 6120 §4.7.4: a stanza without xml:lang is in the stream's language; recipients
    // and the archive get it explicitly.
    if (this.#lang !== null && el.attrs['xml:lang'] === undefined) el.attrs['xml:lang'] = this.#lang;
    const type = el.attrs.type;
    if (name === 'iq') {
      if (type === undefined || !IQ_TYPES.has(type) || !el.attrs.id) {
        this.#replyError(el, new StanzaError('bad-request', 'an IQ needs an id and a type of get, set, result or error'));
        return;
      }
      if (type === 'set' && el.attrs.to === undefined && el.getChild('session', NS.SESSION)) {
        // RFC 6121 legacy session establishment: nothing left to do.
        this.#send(iqResult(el, this.#core.domain, this.#jid.full, null));
        return;
      }
    } else if (name === 'presence' && type !== undefined && !PRESENCE_TYPES.has(type)) {
      this.#replyError(el, new StanzaError('bad-request', `unknown presence type ${type}`));
      return;
    }
    let to: Jid | null = null;
    if (el.attrs.to !== undefined) {
      to = Jid.tryParse(el.attrs.to);
      if (!to) {
        this.#replyError(el, new StanzaError('jid-malformed'));
        return;
      }
      el.attrs.to = to.full;
    }
    if (name === 'message' && !this.#core.limits.allowMessage(this.#jid.bare)) {
      // Over limits.messagesPerSecond: bounced, never dropped (RFC 6120 §8.3.3.12,
      // policy-violation of type wait: the same message may be sent again later). An
      // error message is never answered with an error (§8.3.1): it is dropped and counted.
      if (type !== 'error') this.#bounce(el, new StanzaError('policy-violation', 'too many messages; slow down and send again later', 'wait'));
      return;
    }
    this.#core.router.fromClient(this, el, to);
  }

  /** Answers a stanza of this session's client with an error, directly. */
  #logStanza(el: XmlElement): void {
    const rec: Record<string, unknown> = { session: this.id, from: this.#jid.full, kind: el.name, type: el.attrs.type, id: el.attrs.id, to: el.attrs.to };
    if (this.#core.logs.sensitive) rec.xml = el.toString();
    this.#log.debug(rec, 'stanza in');
  }

  #replyError(el: XmlElement, error: StanzaError): void {
    if (el.attrs.type === 'error') return;
    const reply = new XmlElement(el.name, { type: 'error', id: el.attrs.id, to: this.#jid.full });
    if (el.attrs.to !== undefined) reply.attrs.from = el.attrs.to;
    if (reply.attrs.id === undefined) delete reply.attrs.id;
    reply.append(error.toElement());
    const kind = el.name;
    if (kind === 'message' || kind === 'presence' || kind === 'iq') this.#core.stats.stanzasBounced[kind]++;
    this.#send(reply);
  }

  /** Sends a stanza of this session's client back to it with an error, its content included. */
  #bounce(el: XmlElement, error: StanzaError): void {
    const reply = new XmlElement(el.name, { type: 'error', id: el.attrs.id, to: this.#jid.full, from: el.attrs.to ?? this.#jid.bare });
    if (reply.attrs.id === undefined) delete reply.attrs.id;
    for (const c of el.children) if (typeof c !== 'string') reply.append(c);
    reply.append(error.toElement());
    this.#send(reply);
  }

  #send(el: XmlElement): void {
    if (this.#state >= State.Closing) return;
    this.#out(serialize(el), kindOf(el), el);
  }

  // ------------------------------------------------------------------ nonzas: SM and CSI

  /** A top-level element that is not a stanza, on a bound stream. */
  #nonza(el: XmlElement): void {
    if (el.ns === NS.SM) {
      this.#smCommand(el);
      return;
    }
    if (el.ns === NS.CSI && (el.name === 'active' || el.name === 'inactive') && this.#core.config.csi.enabled) {
      this.#setInactive(el.name === 'inactive');
      return;
    }
    this.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stanza`));
  }

  /**
   * XEP-0352 §4.2: the client's state. Inactive: presence is held (latest per sender);
   * active: what was held goes out at once.
   */
  #setInactive(inactive: boolean): void {
    this.#inactive = inactive;
    if (inactive) this.#held ??= new PresenceBuffer();
    else this.#flushHeld();
  }

  /** Stream management is offered on transports that can hand a session over (not BOSH). */
  #canManageStream(): boolean {
    return this.#core.config.streamManagement.enabled && this.#t.bind !== undefined;
  }

  #registry(): SmRegistry<C2sSession> {
    return smRegistryOf<C2sSession>(this.#core);
  }

  #smCommand(el: XmlElement): void {
    const sm = this.#sm;
    switch (el.name) {
      case 'enable': {
        if (sm !== null) {
          this.#send(failed('unexpected-request'));
          return;
        }
        if (!this.#canManageStream()) {
          this.#send(failed('feature-not-implemented'));
          return;
        }
        const resume = el.attrs.resume === 'true' || el.attrs.resume === '1';
        const cfg = this.#core.config.streamManagement;
        const state = new SmState(resume, grantedResumeMs(el.attrs.max, cfg.resumeTimeout));
        const enabled = x('enabled', { xmlns: NS.SM });
        if (state.id !== null) {
          enabled.attrs.id = state.id;
          enabled.attrs.resume = 'true';
          enabled.attrs.max = String(Math.floor(state.resumeMs / 1000));
          this.#registry().register(state.id, this);
        }
        // Counting starts after <enabled/> (XEP-0198 §4): sent before the state is set.
        this.#send(enabled);
        this.#sm = state;
        return;
      }
      case 'r':
        if (sm === null) this.#send(failed('unexpected-request'));
        else this.#t.send(ackXml(sm.inbound), 'nonza');
        return;
      case 'a': {
        if (sm === null) {
          this.#send(failed('unexpected-request'));
          return;
        }
        const h = parseH(el.attrs.h);
        if (h === null) {
          this.close(new StreamError('bad-format', 'h must be an integer from 0 to 4294967295'));
          return;
        }
        if (sm.queue.ack(h) === 'too-high') {
          this.#closeReason = 'error';
          this.close(handledCountTooHigh(h, sm.queue.sent));
          return;
        }
        sm.awaitingAck = false;
        if (sm.ackTimer) clearTimeout(sm.ackTimer);
        sm.ackTimer = null;
        // Stanzas sent after our request are still out: ask again (one request per round trip).
        if (sm.queue.length > 0) this.#requestAck(sm);
        return;
      }
      case 'resume':
        // Only instead of binding, on a new stream.
        this.#send(failed('unexpected-request'));
        return;
      default:
        this.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stream management element`));
    }
  }

  /** Sends `<r/>`; a connection that does not answer within ackTimeout counts as dead. */
  #requestAck(sm: SmState): void {
    sm.awaitingAck = true;
    this.#t.send(R_XML, 'nonza');
    if (sm.ackTimer) clearTimeout(sm.ackTimer);
    sm.ackTimer = setTimeout(() => this.#ackTimedOut(sm), this.#core.config.streamManagement.ackTimeout);
    sm.ackTimer.unref();
  }

  /**
   * The client did not answer an ack request: the connection is likely half-open (a
   * mobile that lost its network). A resumable session lets go of it and waits for the
   * client to come back; otherwise the session ends.
   */
  #ackTimedOut(sm: SmState): void {
    sm.ackTimer = null;
    if (this.#sm !== sm || this.#state !== State.Active) return;
    if (sm.id === null) {
      this.close(new StreamError('connection-timeout', 'no acknowledgement from the client'));
      return;
    }
    const t = this.#t;
    t.bind!(null);
    const leftovers = t.takeUndelivered();
    t.close(new StreamError('connection-timeout', 'no acknowledgement from the client'));
    this.#hibernate(leftovers);
  }

  /** The connection is gone; the session waits `resumeMs` for the client to resume it. */
  #hibernate(leftovers: XmlElement[]): void {
    const sm = this.#sm!;
    this.#state = State.Hibernated;
    sm.clearTimers();
    this.#held ??= new PresenceBuffer();
    sm.resumeTimer = setTimeout(() => {
      sm.resumeTimer = null;
      if (this.#state !== State.Hibernated) return;
      this.#closeReason = 'timeout';
      this.close();
    }, sm.resumeMs);
    sm.resumeTimer.unref();
    this.#reroute(leftovers.filter((m) => !sm.queue.has(m)));
  }

  /**
   * `<resume/>` on a new, authenticated stream (this session is the newcomer; it is not
   * bound and goes away if the resumption succeeds).
   */
  #resume(el: XmlElement): void {
    if (!this.#canManageStream()) {
      this.#send(failed('feature-not-implemented'));
      return;
    }
    const previd = el.attrs.previd;
    const h = parseH(el.attrs.h);
    if (!previd || h === null) {
      this.#send(failed('bad-request'));
      return;
    }
    const registry = this.#registry();
    const old = registry.get(previd);
    // SECURITY: another user's session is "not found", exactly as a wrong id.
    if (!old || old.#user !== this.#user || old.#sm === null || (old.#state !== State.Active && old.#state !== State.Hibernated)) {
      this.#send(failed('item-not-found', registry.staleH(previd, this.#user!)));
      return;
    }
    const sm = old.#sm;
    if (!sm.queue.canAck(h)) {
      // The client claims more than was sent: the old session cannot be trusted to resume.
      // It ends (its unacknowledged messages go to offline storage) and so does this stream.
      old.#closeReason = 'error';
      old.close();
      this.#closeReason = 'error';
      this.close(handledCountTooHigh(h, sm.queue.sent));
      return;
    }
    old.#takeOver(this, h);
  }

  /** Moves this (resumable) session onto the newcomer's connection and replays what is unacknowledged. */
  #takeOver(newcomer: C2sSession, h: number): void {
    const sm = this.#sm!;
    const t = newcomer.#t;
    newcomer.#retire();
    let leftovers: XmlElement[] = [];
    if (this.#state === State.Active) {
      // The old connection is not known dead yet (half-open): it is closed now.
      const old = this.#t;
      old.bind!(null);
      leftovers = old.takeUndelivered();
      old.close();
    }
    sm.clearTimers();
    this.#t = t;
    t.bind!(this);
    this.#state = State.Active;
    sm.queue.ack(h);
    t.send(serialize(x('resumed', { xmlns: NS.SM, previd: sm.id!, h: String(sm.inbound) })), 'nonza');
    for (const q of sm.queue.items()) t.send(q.xml, q.kind, q.el);
    // XEP-0352 §5.2: a resumed stream starts active; held presence goes out now.
    this.#inactive = false;
    this.#flushHeld();
    if (sm.queue.length > 0) this.#requestAck(sm);
    this.#reroute(leftovers.filter((m) => !sm.queue.has(m)));
  }

  /** A newcomer whose connection was taken over by a resumed session: gone without a trace. */
  #retire(): void {
    this.#authenticated();
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    this.#sasl = null;
    this.#state = State.Closed;
    this.#core.connections.delete(this);
  }

  /** Unacknowledged messages, oldest first, as elements. */
  #unackedMessages(sm: SmState): XmlElement[] {
    const out: XmlElement[] = [];
    for (const q of sm.queue.items()) {
      if (q.kind !== 'message') continue;
      if (q.el) out.push(q.el);
      else {
        try {
          out.push(parseElement(q.xml));
        } catch (err) {
          this.#log.error({ err }, 'unacknowledged message could not be parsed back');
        }
      }
    }
    return out;
  }

  /** Messages that may not have reached the client go through routing again. */
  #reroute(messages: XmlElement[]): void {
    if (messages.length === 0 || this.#jid === UNBOUND) return;
    const bare = this.#jid.toBare();
    for (const m of messages) this.#core.router.route(m, Jid.tryParse(m.attrs.from) ?? this.#core.router.domainJid, bare);
  }
}

/** The text of the SASL failure for a login refused by the login limits. */
const TOO_MANY_ATTEMPTS = 'too many attempts, try later';
/** SASL failures that count as failed login attempts (limits.loginFailuresPer*). */
const COUNTED_FAILURES = new Set(['not-authorized', 'credentials-expired', 'account-disabled', 'invalid-authzid', 'malformed-request', 'incorrect-encoding']);

function kindOf(el: XmlElement): StanzaKind | 'nonza' {
  const n = el.name;
  return n === 'message' || n === 'presence' || n === 'iq' ? n : 'nonza';
}
