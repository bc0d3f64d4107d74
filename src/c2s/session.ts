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
 *
 * This file keeps the states and what moves between them; the session composes its parts:
 * the SASL exchange (sasl-exchange.ts), the stream-management driver (sm-driver.ts) and
 * the outbound pipeline (outbound-pipeline.ts: counters, held presence, serialization,
 * the transport write).
 */
import { randomBytes } from 'node:crypto';
import { XmlElement, x } from '../xml/element.js';
import { NS } from '../xmpp/ns.js';
import { Jid, JidError } from '../xmpp/jid.js';
import { StanzaError, StreamError } from '../xmpp/errors.js';
import { isStanzaSizeError } from '../xml/parser.js';
import type { Logger } from '../support/logger.js';
import type { LocalSession, StanzaKind, TransportKind } from '../core/session.js';
import type { CloseReason } from '../core/hooks.js';
import { iqError, iqResult } from '../core/iq.js';
import type { C2sCore, C2sEndpoint } from './c2s-endpoint.js';
import type { C2sStreamEvents, C2sTransport } from './transport.js';
import { OutboundPipeline, type OutboundHost } from './outbound-pipeline.js';
import { SaslExchange, requiresTls, saslFeatures, type SaslHost } from './sasl-exchange.js';
import { SmDriver, type SmHost } from './sm-driver.js';
import { failed, parseH } from './stream-management.js';

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

export class C2sSession implements LocalSession, C2sStreamEvents, OutboundHost {
  readonly id: string;
  readonly #c2s: C2sEndpoint;
  readonly #core: C2sCore;
  /** The c2s logger (shared by every session; its level changes on reload). */
  readonly #log: Logger;
  #t: C2sTransport;
  #state = State.Header;
  #jid: Jid = UNBOUND;
  /** Localpart once SASL succeeded. */
  #user: string | null = null;
  /** SASL, from the first SASL element until authenticated (null before and after). */
  #sasl: SaslExchange | null = null;
  /** The remote address while it counts as unauthenticated (limits.unauthenticatedPerIp). */
  #unauthIp: string | null;
  #authTimer: NodeJS.Timeout | null = null;
  #closeReason: CloseReason = 'client';
  #wasBound = false;
  /** Stream management, from `<enable/>` on (null: off, the fast path). */
  #sm: SmDriver | null = null;
  /** The way out: counters, held presence, serialization, the transport write. */
  readonly #out: OutboundPipeline;
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

  constructor(c2s: C2sEndpoint, transport: C2sTransport) {
    const core = c2s.core;
    this.#c2s = c2s;
    this.#core = core;
    this.#log = core.logs.for('c2s');
    this.#t = transport;
    this.#out = new OutboundPipeline(core, this);
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
    return this.#out.isInactive;
  }
  /** The stream management resumption id, when resumable. */
  get smId(): string | null {
    return this.#sm?.id ?? null;
  }
  /** The session's connection now (another one after a resumption); for the outbound pipeline. */
  get connection(): C2sTransport {
    return this.#t;
  }
  /** Stream management, once enabled; for the outbound pipeline. */
  get streamManagement(): SmDriver | null {
    return this.#sm;
  }

  // ------------------------------------------------------------------ delivery

  deliver(stanza: XmlElement): void {
    if (this.#state >= State.Closing) this.#lateMessage(stanza);
    else this.#out.deliver(stanza);
  }

  deliverSerialized(xml: string, kind: StanzaKind, el?: XmlElement): void {
    if (this.#state < State.Closing) this.#out.deliverSerialized(xml, kind, el);
    else if (el) this.#lateMessage(el);
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
        // This side closed the stream; the client's answer to the last `<r/>` may still
        // come before its closing tag. What it acknowledges reached it: not stored offline
        // again (without this a message written just before a server-side close, such as a
        // node expelled from the cluster or a conflict, came once live and once from
        // storage). Nothing else the client sends now is processed.
        if (this.#sm !== null && this.#wasBound) this.#sm.lateAck(el);
        return;
      default:
        return;
    }
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
    if (this.#state === State.Active && this.#sm?.isResumable) {
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
    // offline storage (SmDriver.lateAck).
    const askAck = this.#sm !== null && this.#state === State.Active && this.#sm.sayGoodbye();
    this.#leave();
    if (hibernated) this.#end(); // no connection to wait for
    else this.#t.close(error, askAck);
  }

  #leave(): void {
    this.#wasBound = this.#state === State.Active || this.#state === State.Hibernated;
    this.#state = State.Closing;
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    this.#sasl?.stop();
    this.#sasl = null;
    this.#out.stop();
    this.#authenticated();
    const sm = this.#sm;
    if (sm !== null) {
      sm.stop();
      if (sm.id !== null) this.#c2s.resumable.retire(sm.id, this.#user!, sm.inbound);
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
      const unacked = sm.unackedMessages();
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
      const requireTls = requiresTls(this.#core, this.#t);
      if (this.#t.canStartTls) {
        const starttls = x('starttls', { xmlns: NS.TLS });
        if (requireTls) starttls.c('required');
        f.append(starttls);
      }
      if (!requireTls || this.#t.isSecure) for (const el of saslFeatures(this.#core, this.#t)) f.append(el);
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
    (this.#sasl ??= new SaslExchange(this.#core, this.#saslHost(), this.#log)).handle(el);
  }

  /** What the SASL exchange may do to this session (made once per connection, before authentication). */
  #saslHost(): SaslHost {
    return {
      connection: () => this.#t,
      isAwaitingAuth: () => this.#state === State.PreAuth,
      send: (el) => this.#send(el),
      close: (error) => this.close(error),
      succeeded: (localpart, success) => {
        this.#user = localpart;
        this.#sasl = null;
        this.#authenticated();
        this.#send(success);
        this.#state = State.Header;
        this.#t.restart();
      },
    };
  }

  /**
   * Prebind (issue 8): the portal vouched for this user, so the session counts as
   * authenticated without SASL; the stream restarts as after <success/> (nothing is
   * sent for it). Only before authentication.
   */
  authenticateAs(localpart: string): void {
    if (this.#state !== State.PreAuth || this.#sasl?.inProgress === true) throw new Error('authenticateAs: the session is not waiting for authentication');
    this.#user = localpart;
    this.#sasl = null;
    this.#authenticated();
    this.#state = State.Header;
    this.#t.restart();
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

  #logStanza(el: XmlElement): void {
    const rec: Record<string, unknown> = { session: this.id, from: this.#jid.full, kind: el.name, type: el.attrs.type, id: el.attrs.id, to: el.attrs.to };
    if (this.#core.logs.sensitive) rec.xml = el.toString();
    this.#log.debug(rec, 'stanza in');
  }

  /** Answers a stanza of this session's client with an error, directly. */
  #replyError(el: XmlElement, error: StanzaError): void {
    if (el.attrs.type === 'error') return;
    const reply = new XmlElement(el.name, { type: 'error', id: el.attrs.id, to: this.#jid.full });
    if (el.attrs.to !== undefined) reply.attrs.from = el.attrs.to;
    if (reply.attrs.id === undefined) delete reply.attrs.id;
    reply.append(error.toElement());
    this.#core.delivery.answered(el);
    this.#send(reply);
  }

  /** Sends a stanza of this session's client back to it with an error, its content included. */
  #bounce(el: XmlElement, error: StanzaError): void {
    const reply = new XmlElement(el.name, { type: 'error', id: el.attrs.id, to: this.#jid.full, from: el.attrs.to ?? this.#jid.bare });
    if (reply.attrs.id === undefined) delete reply.attrs.id;
    for (const c of el.children) if (typeof c !== 'string') reply.append(c);
    reply.append(error.toElement());
    this.#core.delivery.answered(el);
    this.#send(reply);
  }

  /** Sends an element of the server's own to the client (answers, errors, stream-level elements). */
  #send(el: XmlElement): void {
    if (this.#state >= State.Closing) return;
    this.#out.send(el);
  }

  // ------------------------------------------------------------------ nonzas: SM and CSI

  /** A top-level element that is not a stanza, on a bound stream. */
  #nonza(el: XmlElement): void {
    if (el.ns === NS.SM) {
      this.#smCommand(el);
      return;
    }
    if (el.ns === NS.CSI && (el.name === 'active' || el.name === 'inactive') && this.#core.config.csi.enabled) {
      this.#out.setInactive(el.name === 'inactive');
      return;
    }
    this.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stanza`));
  }

  /** Stream management is offered on transports that can hand a session over (not BOSH). */
  #canManageStream(): boolean {
    return this.#core.config.streamManagement.enabled && this.#t.bind !== undefined;
  }

  /** A stream management element on a bound stream: the driver's once enabled. */
  #smCommand(el: XmlElement): void {
    if (this.#sm !== null) {
      this.#sm.command(el);
      return;
    }
    switch (el.name) {
      case 'enable': {
        if (!this.#canManageStream()) {
          this.#send(failed('feature-not-implemented'));
          return;
        }
        const sm = new SmDriver(this.#core, this.#smHost(), this.#log, el);
        if (sm.id !== null) this.#c2s.resumable.register(sm.id, this);
        // Counting starts after <enabled/> (XEP-0198 §4): sent before the driver is in place.
        this.#send(sm.enabled());
        this.#sm = sm;
        return;
      }
      case 'r':
      case 'a':
      case 'resume':
        this.#send(failed('unexpected-request'));
        return;
      default:
        this.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stream management element`));
    }
  }

  /** What the stream-management driver may do to this session (made once, on `<enable/>`). */
  #smHost(): SmHost {
    return {
      connection: () => this.#t,
      isActive: () => this.#state === State.Active,
      send: (el) => this.#send(el),
      close: (error) => this.close(error),
      fail: (error) => {
        this.#closeReason = 'error';
        this.close(error);
      },
      suspend: (error) => {
        const t = this.#t;
        t.bind!(null);
        const leftovers = t.takeUndelivered();
        t.close(error);
        this.#hibernate(leftovers);
      },
    };
  }

  /** The connection is gone; the session waits for the client to resume it. */
  #hibernate(leftovers: XmlElement[]): void {
    const sm = this.#sm!;
    this.#state = State.Hibernated;
    this.#out.holdPresence();
    sm.awaitResumption(() => {
      if (this.#state !== State.Hibernated) return;
      this.#closeReason = 'timeout';
      this.close();
    });
    this.#reroute(sm.notQueued(leftovers));
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
    const registry = this.#c2s.resumable;
    const old = registry.get(previd);
    // SECURITY: another user's session is "not found", exactly as a wrong id.
    if (!(old instanceof C2sSession) || old.#user !== this.#user || old.#sm === null || (old.#state !== State.Active && old.#state !== State.Hibernated)) {
      this.#send(failed('item-not-found', registry.staleH(previd, this.#user!)));
      return;
    }
    const refusal = old.#sm.refusal(h);
    if (refusal !== null) {
      // The client claims more than was sent: the old session cannot be trusted to resume.
      // It ends (its unacknowledged messages go to offline storage) and so does this stream.
      old.#closeReason = 'error';
      old.close();
      this.#closeReason = 'error';
      this.close(refusal);
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
    this.#t = t;
    t.bind!(this);
    this.#state = State.Active;
    sm.resumedOn(t, h);
    // XEP-0352 §5.2: a resumed stream starts active; held presence goes out now.
    this.#out.setInactive(false);
    sm.askIfUnacknowledged();
    this.#reroute(sm.notQueued(leftovers));
  }

  /** A newcomer whose connection was taken over by a resumed session: gone without a trace. */
  #retire(): void {
    this.#authenticated();
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    this.#sasl?.stop();
    this.#sasl = null;
    this.#state = State.Closed;
    this.#core.connections.delete(this);
  }

  /** Messages that may not have reached the client go through routing again. */
  #reroute(messages: XmlElement[]): void {
    if (messages.length === 0 || this.#jid === UNBOUND) return;
    const bare = this.#jid.toBare();
    for (const m of messages) this.#core.router.route(m, Jid.tryParse(m.attrs.from) ?? this.#core.router.domainJid, bare);
  }
}
