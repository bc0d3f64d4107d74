/**
 * The SASL exchange of one c2s connection: which mechanisms are offered, the
 * challenge/response steps of the one in progress, and the budgets and lockouts around the
 * credential check (attempts per connection, failures per connection, the login limits
 * with their slow-down and refusals). The session owns the states; it makes an exchange on
 * the first SASL element and drops it once authenticated.
 * References: RFC 6120 §6 (SASL: §6.4.2 auth, §6.4.3 challenge/response, §6.4.4 abort,
 * §6.4.5 failure, §6.4.6 success, §6.5 conditions); RFC 4422; RFC 5802 and RFC 7677
 * (SCRAM, with channel binding: RFC 5929, RFC 9266); docs/limits.md (login limits).
 */
import { x, type XmlElement } from '../xml/element.js';
import { NS } from '../xmpp/ns.js';
import { SaslFailure, StreamError } from '../xmpp/errors.js';
import { createServerMechanism, serverMechanismNames, supportedChannelBindingTypes, channelBindingFeature, type SaslServerMechanism, type SaslStep } from '../xmpp/sasl/server.js';
import { StorageError } from '../support/errors.js';
import type { Logger } from '../support/logger.js';
import type { LimitName } from '../support/stats.js';
import { normalizeUsername } from '../auth/authenticator.js';
import type { C2sCore } from './c2s-endpoint.js';
import type { C2sTransport } from './transport.js';

/** The text of the SASL failure for a login refused by the login limits. */
const TOO_MANY_ATTEMPTS = 'too many attempts, try later';
/** SASL failures that count as failed login attempts (limits.loginFailuresPer*). */
const COUNTED_FAILURES = new Set(['not-authorized', 'credentials-expired', 'account-disabled', 'invalid-authzid', 'malformed-request', 'incorrect-encoding']);

/** What the exchange needs of its session. */
export interface SaslHost {
  /** The session's connection (TLS state, channel binding, address). */
  connection(): C2sTransport;
  /** Still waiting for authentication: an answer that comes after the stream moved on is dropped. */
  isAwaitingAuth(): boolean;
  /** Sends an element of the exchange (challenge, failure). */
  send(el: XmlElement): void;
  close(error: StreamError): void;
  /** Authenticated as `localpart`: the session sends `success` and the stream restarts. */
  succeeded(localpart: string, success: XmlElement): void;
}

/** TLS is required before authentication on TCP unless the listener says otherwise. */
export function requiresTls(core: C2sCore, t: C2sTransport): boolean {
  return t.kind === 'tcp' && core.config.listen.c2s.requireTls;
}

/**
 * The mechanisms offered on `t`. PLAIN without TLS: only on a TCP listener with
 * `requireTls: false` (loopback benchmarks). HTTP transports count as secure only when
 * `listen.http.secure` says TLS is terminated in front.
 */
function offeredMechanisms(core: C2sCore, t: C2sTransport): string[] {
  const allowPlainInsecure = t.kind === 'tcp' && !core.config.listen.c2s.requireTls;
  return serverMechanismNames({ isSecure: t.isSecure, allowPlainInsecure, channelBindingTypes: supportedChannelBindingTypes(t), scram: core.authenticator.offersScram });
}

/** The SASL stream features for `t`: the mechanisms, and the channel binding types (XEP-0440) with SCRAM. */
export function saslFeatures(core: C2sCore, t: C2sTransport): XmlElement[] {
  const out = [x('mechanisms', { xmlns: NS.SASL }, ...offeredMechanisms(core, t).map((m) => x('mechanism', null, m)))];
  const cbTypes = supportedChannelBindingTypes(t);
  if (cbTypes.length > 0 && core.authenticator.offersScram) out.push(channelBindingFeature(cbTypes));
  return out;
}

/** The SASL exchanges of one connection, until it is authenticated. */
export class SaslExchange {
  readonly #core: C2sCore;
  readonly #host: SaslHost;
  readonly #log: Logger;
  #mech: SaslServerMechanism | null = null;
  /** The mechanism of the last exchange, for the login metrics ('other' when not offered: bounded labels). */
  #mechName = 'other';
  #failures = 0;
  /** Exchanges of this connection that reached the credential check (limits.saslAttemptsPerConnection). */
  #credentialChecks = 0;
  /** The exchange in progress checks a portal login token (not a password). */
  #portalToken = false;
  /** The account of the exchange in progress, once its username was read (login limits). */
  #account: string | null = null;
  /** Delay of the final answer of this exchange (login slow-down), and the limit that set it. */
  #delayMs = 0;
  #delayLimit: LimitName | null = null;

  constructor(core: C2sCore, host: SaslHost, log: Logger) {
    this.#core = core;
    this.#host = host;
    this.#log = log;
  }

  /** An exchange is in progress (an `<auth/>` was not answered with success or failure yet). */
  get inProgress(): boolean {
    return this.#mech !== null;
  }

  /** Forgets the exchange in progress: whatever its mechanism still answers is dropped. */
  stop(): void {
    this.#mech = null;
  }

  /** An element in the SASL namespace, before authentication. */
  handle(el: XmlElement): void {
    if (this.#mech === null && el.localName !== 'auth') {
      if (el.localName === 'abort') this.#fail(new SaslFailure('aborted'));
      else this.#host.close(new StreamError('not-authorized', 'no authentication in progress'));
      return;
    }
    switch (el.localName) {
      case 'auth':
        this.#start(el);
        return;
      case 'response':
        this.#step(this.#mech!, el);
        return;
      case 'abort':
        this.#mech = null;
        this.#fail(new SaslFailure('aborted'));
        return;
      default:
        this.#host.close(new StreamError('unsupported-stanza-type'));
    }
  }

  #start(el: XmlElement): void {
    if (this.#mech !== null) {
      this.#mech = null;
      this.#fail(new SaslFailure('aborted', 'a new exchange replaced the one in progress'));
      return;
    }
    const t = this.#host.connection();
    if (requiresTls(this.#core, t) && !t.isSecure) {
      this.#mechName = 'other';
      this.#fail(new SaslFailure('encryption-required'));
      return;
    }
    const offered = offeredMechanisms(this.#core, t);
    const name = el.attrs.mechanism ?? '';
    this.#mechName = offered.includes(name) ? name : 'other';
    const authenticator = this.#core.authenticator;
    const base = authenticator.saslContext((type) => this.#host.connection().channelBinding(type));
    // Login limits: the account is known once the mechanism reads the username, before
    // any credential is looked at; a refused account is not checked at all.
    const ctx: typeof base = {
      ...base,
      getScramCredentials: async (username, hash) => {
        this.#credentialCheck(username, false);
        return base.getScramCredentials(username, hash);
      },
      verifyPlain: async (username, password) => {
        this.#credentialCheck(username, authenticator.isPortalToken(password));
        return base.verifyPlain(username, password);
      },
    };
    const mech = offered.includes(name) ? createServerMechanism(name, ctx, { plusAdvertised: offered.some((m) => m.endsWith('-PLUS')) }) : null;
    if (!mech) {
      this.#fail(new SaslFailure('invalid-mechanism'));
      return;
    }
    // The login limits apply when the mechanism reaches the credential check (#credentialCheck).
    this.#account = null;
    this.#portalToken = false;
    this.#delayMs = 0;
    this.#delayLimit = null;
    this.#mech = mech;
    this.#step(mech, el);
  }

  #step(mech: SaslServerMechanism, el: XmlElement): void {
    const text = el.text().trim();
    let data: Buffer;
    if (text === '' || text === '=') data = Buffer.alloc(0);
    else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) data = Buffer.from(text, 'base64');
    else {
      this.#mech = null;
      this.#fail(new SaslFailure('incorrect-encoding'));
      return;
    }
    mech.step(data).then(
      (step) => {
        if (!this.#isCurrent(mech)) return;
        if (!step.done) {
          this.#host.send(x('challenge', { xmlns: NS.SASL }, step.challenge.length ? step.challenge.toString('base64') : '='));
          return;
        }
        this.#afterLoginDelay(mech, () => this.#done(step, mech.name));
      },
      (err: unknown) => {
        if (!this.#isCurrent(mech)) return;
        const refused = err instanceof SaslFailure && err.condition === 'temporary-auth-failure' && err.text === TOO_MANY_ATTEMPTS;
        const fail = () => {
          this.#mech = null;
          if (err instanceof SaslFailure) this.#fail(err);
          else {
            if (!(err instanceof StorageError)) this.#log.error({ err }, 'SASL step failed');
            this.#fail(new SaslFailure('temporary-auth-failure'));
          }
        };
        if (refused) fail();
        else this.#afterLoginDelay(mech, fail);
      },
    );
  }

  /** `mech` is still the exchange in progress, on a stream still waiting for authentication. */
  #isCurrent(mech: SaslServerMechanism): boolean {
    return this.#host.isAwaitingAuth() && this.#mech === mech;
  }

  /**
   * Runs the final answer of an exchange, after the login slow-down delay if one applies
   * (success and failure alike, so the delay says nothing about the password).
   */
  #afterLoginDelay(mech: SaslServerMechanism, answer: () => void): void {
    const ms = this.#delayMs;
    const limit = this.#delayLimit;
    this.#delayMs = 0;
    this.#delayLimit = null;
    if (ms <= 0) {
      answer();
      return;
    }
    if (limit) this.#core.limits.hit(limit);
    setTimeout(() => {
      if (!this.#isCurrent(mech)) return;
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
    const core = this.#core;
    // SECURITY: every exchange that gets this far costs the server work, whether it ends in
    // success, failure or abort (the work goes on after an <abort/>, and after the
    // connection is gone): one connection cannot pipeline them without bound.
    if (++this.#credentialChecks > core.config.limits.saslAttemptsPerConnection) {
      core.limits.hit('sasl-attempts-per-connection');
      this.#host.close(new StreamError('policy-violation', 'too many authentication attempts'));
      throw new SaslFailure('aborted', 'connection closed'); // not sent: the stream is closed
    }
    const local = normalizeUsername(username);
    this.#account = local;
    this.#portalToken = portalToken;
    // SECURITY: a portal token costs one HMAC and cannot be guessed: password failures of the
    // account or the address neither refuse nor slow it (the owner's device must get in).
    if (portalToken) return;
    const ip = this.#host.connection().remoteAddress;
    const verdict = core.limits.loginVerdict(ip, local);
    if (verdict.refuse) {
      core.limits.hit(verdict.limit);
      throw new SaslFailure('temporary-auth-failure', TOO_MANY_ATTEMPTS);
    }
    if (!core.limits.startCredentialCheck(ip)) throw new SaslFailure('temporary-auth-failure', TOO_MANY_ATTEMPTS);
    if (verdict.delayMs > this.#delayMs) {
      this.#delayMs = verdict.delayMs;
      this.#delayLimit = verdict.limit;
    }
  }

  #done(step: Extract<SaslStep, { done: true }>, mechanism: string): void {
    this.#mech = null;
    const local = normalizeUsername(step.username);
    if (local === null) {
      this.#fail(new SaslFailure('not-authorized'));
      return;
    }
    if (step.authzid && step.authzid !== `${local}@${this.#core.domain}` && step.authzid !== local) {
      this.#fail(new SaslFailure('invalid-authzid'));
      return;
    }
    const t = this.#host.connection();
    this.#core.stats.login(mechanism, true);
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ user: local, mechanism, transport: t.kind }, 'authenticated');
    // A token login says nothing about who sent the wrong passwords: their counts stay.
    if (!this.#portalToken) this.#core.limits.loginSucceeded(t.remoteAddress, local);
    this.#host.succeeded(local, x('success', { xmlns: NS.SASL }, step.additionalData?.length ? step.additionalData.toString('base64') : null));
  }

  #fail(failure: SaslFailure): void {
    const core = this.#core;
    const t = this.#host.connection();
    if (COUNTED_FAILURES.has(failure.condition)) core.limits.loginFailed(t.remoteAddress, this.#account);
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ condition: failure.condition, transport: t.kind, remote: t.remoteAddress }, 'authentication failed');
    this.#host.send(failure.toElement());
    if (failure.condition !== 'aborted') core.stats.login(this.#mechName, false);
    if (failure.condition === 'aborted' || failure.condition === 'temporary-auth-failure') return;
    if (++this.#failures >= core.config.limits.maxSaslFailures) {
      this.#host.close(new StreamError('policy-violation', 'too many failed authentication attempts'));
    }
  }
}
