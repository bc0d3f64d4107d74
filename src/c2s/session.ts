/**
 * The client session state machine, one for every transport.
 * References: RFC 6120 §4 (streams), §5 (STARTTLS), §6 (SASL), §7 (resource binding),
 * §8 (stanzas: `from` stamping, validation); RFC 6121 §1.4 (legacy `session` IQ).
 *
 * States: header → (starttls) → header → sasl → header → bind → active → closed.
 */
import { randomBytes } from 'node:crypto';
import { XmlElement, x } from '../xml/element.js';
import { serialize } from '../xml/serializer.js';
import { NS } from '../xmpp/ns.js';
import { Jid, JidError } from '../xmpp/jid.js';
import { SaslFailure, StanzaError, StorageError, StreamError } from '../xmpp/errors.js';
import { createServerMechanism, serverMechanismNames, supportedChannelBindingTypes, channelBindingFeature, type SaslServerMechanism } from '../xmpp/sasl/server.js';
import { saslContext, normalizeUsername } from '../auth/authenticator.js';
import type { ServerCore } from '../core/server.js';
import type { LocalSession, StanzaKind, TransportKind } from '../core/session.js';
import type { CloseReason } from '../core/hooks.js';
import { iqError, iqResult } from '../core/iq.js';
import type { C2sStreamEvents, C2sTransport } from './transport.js';

const enum State {
  /** Waiting for the client's stream header (first, after STARTTLS, after SASL). */
  Header,
  /** Features sent, before authentication (STARTTLS, SASL). */
  PreAuth,
  /** Authenticated, waiting for resource binding. */
  Bind,
  /** Bound: stanzas flow. */
  Active,
  /** Our side is closed; waiting for the connection to go. */
  Closing,
  Closed,
}

const PRESENCE_TYPES = new Set(['unavailable', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'error']);
const IQ_TYPES = new Set(['get', 'set', 'result', 'error']);

/** A placeholder JID for sessions that are not bound yet. */
const UNBOUND = Jid.parse('unbound.invalid');

export class C2sSession implements LocalSession, C2sStreamEvents {
  readonly id: string;
  readonly #core: ServerCore;
  readonly #t: C2sTransport;
  #state = State.Header;
  #jid: Jid = UNBOUND;
  /** Localpart once SASL succeeded. */
  #user: string | null = null;
  #sasl: SaslServerMechanism | null = null;
  #saslFailures = 0;
  #authTimer: NodeJS.Timeout | null = null;
  #closeReason: CloseReason = 'client';
  #wasBound = false;
  priority = 0;
  presence: XmlElement | null = null;
  rosterRequested = false;

  constructor(core: ServerCore, transport: C2sTransport) {
    this.#core = core;
    this.#t = transport;
    this.id = randomBytes(9).toString('base64url');
    core.connections.add(this);
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
    return this.#state === State.Active;
  }

  // ------------------------------------------------------------------ delivery

  deliver(stanza: XmlElement): void {
    if (this.#state >= State.Closing) {
      this.#lateMessage(stanza);
      return;
    }
    this.#t.send(serialize(stanza), kindOf(stanza), stanza);
  }

  deliverSerialized(xml: string, kind: StanzaKind, el?: XmlElement): void {
    if (this.#state >= State.Closing) {
      if (el) this.#lateMessage(el);
      return;
    }
    this.#t.send(xml, kind, el);
  }

  /** A message that reached this session after it closed goes back through routing. */
  #lateMessage(stanza: XmlElement): void {
    if (stanza.name !== 'message' || this.#jid === UNBOUND) return;
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
      default:
        return;
    }
  }

  onStreamClose(): void {
    this.#closeReason = 'client';
    this.close();
  }

  onStreamError(error: StreamError): void {
    this.#closeReason = 'error';
    this.close(error);
  }

  onDisconnect(): void {
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
    this.#leave();
    this.#t.close(error);
  }

  #leave(): void {
    this.#wasBound = this.#state === State.Active;
    this.#state = State.Closing;
    if (this.#authTimer) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    this.#sasl = null;
    if (this.#wasBound) this.#core.sessions.remove(this);
  }

  /** Kicks the session (admin), with a reason the client sees. */
  kick(text = 'kicked by an administrator'): void {
    this.#closeReason = 'kicked';
    this.close(new StreamError('policy-violation', text));
  }

  #end(): void {
    if (this.#state === State.Closed) return;
    this.#state = State.Closed;
    this.#core.connections.delete(this);
    if (!this.#wasBound) return;
    const undelivered = this.#t.takeUndelivered();
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
        const mechs = serverMechanismNames({ isSecure: this.#t.isSecure, allowPlainInsecure: this.#allowPlainInsecure(), channelBindingTypes: cbTypes });
        f.append(x('mechanisms', { xmlns: NS.SASL }, ...mechs.map((m) => x('mechanism', null, m))));
        if (cbTypes.length > 0) f.append(channelBindingFeature(cbTypes));
      }
      for (const p of this.#core.streamFeatures) {
        const el = p(null, 'pre-bind');
        if (el) f.append(el);
      }
    } else {
      f.append(x('bind', { xmlns: NS.BIND }));
      f.append(x('session', { xmlns: NS.SESSION }, x('optional')));
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
      this.#saslFail(new SaslFailure('encryption-required'));
      return;
    }
    const cbTypes = supportedChannelBindingTypes(this.#t);
    const offered = serverMechanismNames({ isSecure: this.#t.isSecure, allowPlainInsecure: this.#allowPlainInsecure(), channelBindingTypes: cbTypes });
    const name = el.attrs.mechanism ?? '';
    const ctx = saslContext(this.#core.users, this.#core.domain, (type) => this.#t.channelBinding(type), this.#core.verifiedPasswords);
    const mech = offered.includes(name) ? createServerMechanism(name, ctx, { plusAdvertised: offered.some((m) => m.endsWith('-PLUS')) }) : null;
    if (!mech) {
      this.#saslFail(new SaslFailure('invalid-mechanism'));
      return;
    }
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
        this.#send(x('success', { xmlns: NS.SASL }, step.additionalData?.length ? step.additionalData.toString('base64') : null));
        this.#state = State.Header;
        this.#t.restart();
      },
      (err: unknown) => {
        if (this.#state !== State.PreAuth || this.#sasl !== mech) return;
        this.#sasl = null;
        if (err instanceof SaslFailure) this.#saslFail(err);
        else {
          if (!(err instanceof StorageError)) this.#core.log.error({ err }, 'SASL step failed');
          this.#saslFail(new SaslFailure('temporary-auth-failure'));
        }
      },
    );
  }

  #saslFail(failure: SaslFailure): void {
    this.#send(failure.toElement());
    if (failure.condition === 'aborted' || failure.condition === 'temporary-auth-failure') return;
    if (++this.#saslFailures >= this.#core.config.limits.maxSaslFailures) {
      this.close(new StreamError('policy-violation', 'too many failed authentication attempts'));
    }
  }

  // ------------------------------------------------------------------ binding

  #preBind(el: XmlElement): void {
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
      this.#send(iqError(el, this.#core.domain, '', new StanzaError('resource-constraint', 'too many sessions for this account', 'cancel')));
      return;
    }
    this.#jid = jid;
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
      this.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stanza`));
      return;
    }
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
    this.#core.router.fromClient(this, el, to);
  }

  /** Answers a stanza of this session's client with an error, directly. */
  #replyError(el: XmlElement, error: StanzaError): void {
    if (el.attrs.type === 'error') return;
    const reply = new XmlElement(el.name, { type: 'error', id: el.attrs.id, to: this.#jid.full });
    if (el.attrs.to !== undefined) reply.attrs.from = el.attrs.to;
    if (reply.attrs.id === undefined) delete reply.attrs.id;
    reply.append(error.toElement());
    this.#send(reply);
  }

  #send(el: XmlElement): void {
    if (this.#state >= State.Closing) return;
    this.#t.send(serialize(el), kindOf(el), el);
  }
}

function kindOf(el: XmlElement): StanzaKind | 'nonza' {
  const n = el.name;
  return n === 'message' || n === 'presence' || n === 'iq' ? n : 'nonza';
}
