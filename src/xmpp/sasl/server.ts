/**
 * SASL, server side.
 * References:
 * - RFC 6120 §6.3 (SASL in XMPP: mechanism list, empty initial response, success with
 *   additional data §6.3.10), §6.4.5 and §6.5 (failure conditions)
 * - RFC 4422 §3 (SASL framework: exchanges, authorization identity)
 * - RFC 4616 §2 (PLAIN)
 * - RFC 5802 §5, §6, §7 (SCRAM-SHA-1 and -PLUS, channel binding rules)
 * - RFC 7677 §3 (SCRAM-SHA-256 and -PLUS)
 * - RFC 9266 (tls-exporter), RFC 5929 §4 (tls-server-end-point)
 * - XEP-0440 (SASL Channel-Binding Type Capability, urn:xmpp:sasl-cb:0)
 * - RFC 8265 §4.2 (OpaqueString, for PLAIN passwords)
 *
 * Failure conditions thrown by `step` (as `SaslFailure`):
 * - `malformed-request`: bad syntax, a channel binding flag contradicting the mechanism
 *   name (`p=` with a non-PLUS mechanism, `n`/`y` with a -PLUS one), a mandatory extension
 *   (`m=`), a step after the exchange ended;
 * - `incorrect-encoding`: bad base64 inside a SCRAM attribute;
 * - `not-authorized`: wrong password, unknown user (indistinguishable on the wire), a
 *   downgrade (`y` while -PLUS was advertised), an unsupported channel binding type,
 *   channel binding data or nonce mismatch.
 * Errors from the context (storage) propagate unchanged; the caller answers them with
 * `temporary-auth-failure`. The caller also checks the returned authzid (answering
 * `invalid-authzid`) and normalizes the returned username.
 */
import { randomBytes } from 'node:crypto';
import { XmlElement, x } from '../../xml/element.js';
import { SaslFailure } from '../errors.js';
import { NS } from '../ns.js';
import { PrecisError, fakeCredentialsName, preparePassword } from './prep.js';
import {
  CHANNEL_BINDING_TYPES,
  SCRAM_DEFAULT_ITERATIONS,
  constantTimeEqual,
  decodeScramMessage,
  digestLength,
  fakeScramCredentials,
  h,
  hmac,
  isChannelBindingType,
  isPrintableNonce,
  parseClientFinal,
  parseClientFirst,
  xor,
  type ChannelBindingType,
  type Gs2Header,
  type ScramCredentials,
  type ScramHash,
} from './scram.js';

export interface SaslServerContext {
  /**
   * Channel binding data for this connection, or null if this type is unavailable (no TLS).
   * SECURITY: return null for tls-exporter on TLS 1.2 without the extended master secret
   * extension (RFC 9266 §3), where exporter values are not unique to the connection.
   */
  channelBinding(type: ChannelBindingType): Buffer | null;
  /**
   * Stored credentials for a user (the localpart as sent; normalize it) and hash, or null
   * if the user does not exist, has no credentials for this hash, or the name is invalid.
   */
  getScramCredentials(username: string, hash: ScramHash): Promise<ScramCredentials | null>;
  /**
   * Checks a PLAIN password. The password is already prepared with OpaqueString.
   * SECURITY: for an unknown user do the same work as for a known one (e.g.
   * `checkScramPassword` against `fakeScramCredentials`) so timing does not reveal it.
   */
  verifyPlain(username: string, password: string): Promise<boolean>;
  /**
   * Called once SCRAM credentials were proven (PLAIN's verifyPlain does its own): throws
   * a SaslFailure (e.g. `account-disabled`) to refuse the account anyway.
   */
  admit?(username: string): Promise<void>;
}

export type SaslStep =
  | { done: false; challenge: Buffer }
  | { done: true; username: string; authzid?: string; additionalData?: Buffer };

export interface SaslServerMechanism {
  readonly name: string;
  /**
   * Feeds one client response (decoded from base64 by the caller). Pass an empty Buffer
   * when `<auth/>` carried no initial response: the mechanism answers an empty challenge.
   */
  step(response: Buffer): Promise<SaslStep>;
}

export interface ServerMechanismOptions {
  /**
   * Whether -PLUS mechanisms were advertised on this connection; a SCRAM client sending
   * `y` then indicates a downgrade. Default: the context offers some channel binding type.
   */
  plusAdvertised?: boolean;
  /** Iteration count of the stand-in credentials for unknown users; match real accounts. */
  fakeIterations?: number;
  /** Key for the stand-in credentials; share one across a cluster. Default: per process. */
  fakeKey?: Buffer;
  /** For tests only: the server part of the SCRAM nonce instead of 24 random bytes. */
  serverNonce?: string;
}

/** Mechanisms in order of preference. */
export const SERVER_MECHANISMS = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-1-PLUS',
  'SCRAM-SHA-256',
  'SCRAM-SHA-1',
  'PLAIN',
] as const;
export type ServerMechanismName = (typeof SERVER_MECHANISMS)[number];

export const SCRAM_SERVER_NONCE_BYTES = 24;
/** Largest PLAIN field (authzid, authcid, password) in bytes. */
export const PLAIN_MAX_FIELD_BYTES = 1024;

/**
 * The mechanisms to advertise in `<mechanisms/>` (RFC 6120 §6.3.3).
 * -PLUS variants only over TLS with a supported channel binding type; PLAIN only over
 * TLS unless explicitly allowed.
 *
 * @example
 * serverMechanismNames({ isSecure: true, allowPlainInsecure: false, channelBindingTypes: ['tls-exporter'] });
 * // ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']
 */
export function serverMechanismNames(opts: {
  isSecure: boolean;
  allowPlainInsecure: boolean;
  channelBindingTypes: string[];
  /** SCRAM needs stored keys: false when passwords are checked elsewhere (the portal). */
  scram?: boolean;
}): string[] {
  const hasPlus = opts.isSecure && opts.channelBindingTypes.some(isChannelBindingType);
  return SERVER_MECHANISMS.filter((name) => {
    if (name.endsWith('-PLUS')) return hasPlus && (opts.scram ?? true);
    if (name === 'PLAIN') return opts.isSecure || opts.allowPlainInsecure;
    return opts.scram ?? true;
  });
}

/** The channel binding types this connection can provide, in order of preference. */
export function supportedChannelBindingTypes(ctx: Pick<SaslServerContext, 'channelBinding'>): ChannelBindingType[] {
  return CHANNEL_BINDING_TYPES.filter((type) => ctx.channelBinding(type) !== null);
}

/**
 * XEP-0440 stream feature listing the channel binding types, sent next to `<mechanisms/>`:
 * `<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/>…`
 */
export function channelBindingFeature(types: readonly string[]): XmlElement {
  return x('sasl-channel-binding', { xmlns: NS.SASL_CB }, ...types.map((type) => x('channel-binding', { type })));
}

/**
 * Starts an exchange for a mechanism name, or returns null for an unknown name (the
 * caller answers `invalid-mechanism`). The caller must only accept names it advertised
 * on this connection (see `serverMechanismNames`).
 *
 * @example
 * const mech = createServerMechanism('SCRAM-SHA-256', ctx);
 * if (!mech) throw new SaslFailure('invalid-mechanism');
 * const step = await mech.step(initialResponse);
 */
export function createServerMechanism(
  name: string,
  ctx: SaslServerContext,
  opts: ServerMechanismOptions = {},
): SaslServerMechanism | null {
  if (name === 'PLAIN') return new PlainServer(ctx);
  const m = /^SCRAM-(SHA-1|SHA-256)(-PLUS)?$/.exec(name);
  if (!m) return null;
  return new ScramServer(name, m[1] as ScramHash, m[2] !== undefined, ctx, opts);
}

function malformed(text: string): SaslFailure {
  return new SaslFailure('malformed-request', text);
}

function notAuthorized(text?: string): SaslFailure {
  return new SaslFailure('not-authorized', text);
}

/** Runs one step at a time and refuses steps once the exchange ended (success or failure). */
abstract class BaseMechanism implements SaslServerMechanism {
  #busy = false;
  #finished = false;
  abstract readonly name: string;

  async step(response: Buffer): Promise<SaslStep> {
    if (this.#finished) throw malformed('exchange already finished');
    if (this.#busy) throw malformed('step while the previous one is pending');
    this.#busy = true;
    try {
      const result = await this.handle(response);
      if (result.done) this.#finished = true;
      return result;
    } catch (err) {
      this.#finished = true;
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  protected abstract handle(response: Buffer): Promise<SaslStep>;
}

const EMPTY = Buffer.alloc(0);
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
class PlainServer extends BaseMechanism {
  readonly name = 'PLAIN';
  readonly #ctx: SaslServerContext;
  #challenged = false;

  constructor(ctx: SaslServerContext) {
    super();
    this.#ctx = ctx;
  }

  protected async handle(response: Buffer): Promise<SaslStep> {
    if (response.length === 0 && !this.#challenged) {
      this.#challenged = true; // no initial response: ask for it (RFC 6120 §6.4.2)
      return { done: false, challenge: EMPTY };
    }
    const { authzid, authcid, passwd } = parsePlain(response);
    let prepared: string;
    try {
      prepared = preparePassword(passwd);
    } catch (err) {
      if (err instanceof PrecisError) throw notAuthorized(); // cannot match any stored password
      throw err;
    }
    if (!(await this.#ctx.verifyPlain(authcid, prepared))) throw notAuthorized();
    return authzid === '' ? { done: true, username: authcid } : { done: true, username: authcid, authzid };
  }
}

/** Splits and validates a PLAIN message; throws `malformed-request`. */
export function parsePlain(msg: Buffer): { authzid: string; authcid: string; passwd: string } {
  // SECURITY: bound the size before splitting.
  if (msg.length > 3 * PLAIN_MAX_FIELD_BYTES + 2) throw malformed('PLAIN message too long');
  const nul1 = msg.indexOf(0);
  const nul2 = nul1 < 0 ? -1 : msg.indexOf(0, nul1 + 1);
  if (nul2 < 0) throw malformed('PLAIN message needs two NUL separators');
  // SECURITY: a third NUL would let fields smuggle NUL into the password or name.
  if (msg.indexOf(0, nul2 + 1) >= 0) throw malformed('NUL inside a PLAIN field');
  const fields = [msg.subarray(0, nul1), msg.subarray(nul1 + 1, nul2), msg.subarray(nul2 + 1)];
  const [authzid, authcid, passwd] = fields.map((f) => {
    if (f.length > PLAIN_MAX_FIELD_BYTES) throw malformed('PLAIN field too long');
    try {
      return UTF8.decode(f);
    } catch {
      throw malformed('PLAIN field is not valid UTF-8');
    }
  }) as [string, string, string];
  if (authcid === '') throw malformed('empty authcid');
  if (passwd === '') throw malformed('empty password');
  return { authzid, authcid, passwd };
}

type ScramState =
  | { kind: 'start' }
  | { kind: 'await-first' }
  | {
      kind: 'await-final';
      username: string;
      authzid: string | undefined;
      known: boolean;
      creds: ScramCredentials;
      /** Expected decoded `c=`: GS2 header, then channel binding data for `p`. */
      cbInput: Buffer;
      nonce: string;
      /** client-first-message-bare "," server-first-message "," (AuthMessage prefix). */
      authPrefix: string;
    };

/** RFC 5802 §5 (and RFC 7677), server side, with the §6 channel binding rules. */
class ScramServer extends BaseMechanism {
  readonly #hash: ScramHash;
  readonly #plus: boolean;
  readonly #ctx: SaslServerContext;
  readonly #opts: ServerMechanismOptions;
  #state: ScramState = { kind: 'start' };

  constructor(
    readonly name: string,
    hash: ScramHash,
    plus: boolean,
    ctx: SaslServerContext,
    opts: ServerMechanismOptions,
  ) {
    super();
    if (opts.serverNonce !== undefined && !isPrintableNonce(opts.serverNonce)) {
      throw new RangeError('serverNonce must be printable ASCII without ","');
    }
    this.#hash = hash;
    this.#plus = plus;
    this.#ctx = ctx;
    this.#opts = opts;
  }

  protected async handle(response: Buffer): Promise<SaslStep> {
    const state = this.#state;
    switch (state.kind) {
      case 'start':
        if (response.length === 0) {
          this.#state = { kind: 'await-first' }; // no initial response (RFC 6120 §6.4.2)
          return { done: false, challenge: EMPTY };
        }
        return this.#clientFirst(response);
      case 'await-first':
        return this.#clientFirst(response);
      case 'await-final':
        return this.#clientFinal(response, state);
    }
  }

  async #clientFirst(response: Buffer): Promise<SaslStep> {
    const first = parseClientFirst(decodeScramMessage(response));
    const cbInput = this.#bindingInput(first.gs2);
    const stored = await this.#ctx.getScramCredentials(first.username, this.#hash);
    // SECURITY: unknown users get deterministic stand-in credentials and the same exchange,
    // failing only at the proof check, so the server-first message does not reveal them.
    const creds =
      stored ??
      fakeScramCredentials(
        fakeCredentialsName(first.username),
        this.#hash,
        this.#opts.fakeIterations ?? SCRAM_DEFAULT_ITERATIONS,
        this.#opts.fakeKey,
      );
    const serverNonce = this.#opts.serverNonce ?? randomBytes(SCRAM_SERVER_NONCE_BYTES).toString('base64');
    const nonce = first.clientNonce + serverNonce;
    const serverFirst = `r=${nonce},s=${creds.salt.toString('base64')},i=${creds.iterations}`;
    this.#state = {
      kind: 'await-final',
      username: first.username,
      authzid: first.gs2.authzid,
      known: stored !== null,
      creds,
      cbInput,
      nonce,
      authPrefix: `${first.bare},${serverFirst},`,
    };
    return { done: false, challenge: Buffer.from(serverFirst, 'utf8') };
  }

  /** Applies RFC 5802 §6 to the GS2 flag; returns the expected decoded `c=` value. */
  #bindingInput(gs2: Gs2Header): Buffer {
    const header = Buffer.from(gs2.raw, 'utf8');
    if (this.#plus) {
      if (gs2.cbFlag !== 'p') throw malformed(`${this.name} requires channel binding (p=)`);
      const type = gs2.cbType!;
      const data = isChannelBindingType(type) ? this.#ctx.channelBinding(type) : null;
      if (data === null) throw notAuthorized(`unsupported channel binding type ${type}`);
      return Buffer.concat([header, data]);
    }
    if (gs2.cbFlag === 'p') throw malformed(`channel binding requested with ${this.name}; use -PLUS`);
    const plusAdvertised = this.#opts.plusAdvertised ?? supportedChannelBindingTypes(this.#ctx).length > 0;
    // SECURITY: "y" means the client supports channel binding but did not see -PLUS
    // offered; since we did offer it, someone removed it on the way (RFC 5802 §6).
    if (gs2.cbFlag === 'y' && plusAdvertised) throw notAuthorized('channel binding downgrade detected');
    return header;
  }

  async #clientFinal(response: Buffer, state: Extract<ScramState, { kind: 'await-final' }>): Promise<SaslStep> {
    const msg = decodeScramMessage(response);
    const final = parseClientFinal(msg);
    const { creds } = state;
    if (final.proof.length !== digestLength(this.#hash)) throw malformed('proof has the wrong length');
    if (!constantTimeEqual(Buffer.from(final.nonce, 'utf8'), Buffer.from(state.nonce, 'utf8'))) {
      throw notAuthorized('nonce mismatch');
    }
    if (!constantTimeEqual(final.channelBinding, state.cbInput)) throw notAuthorized('channel binding mismatch');

    const authMessage = state.authPrefix + final.withoutProof;
    const clientSignature = hmac(this.#hash, creds.storedKey, authMessage);
    const clientKey = xor(final.proof, clientSignature);
    const proofOk = constantTimeEqual(h(this.#hash, clientKey), creds.storedKey);
    const serverSignature = hmac(this.#hash, creds.serverKey, authMessage);
    if (!proofOk || !state.known) throw notAuthorized();
    await this.#ctx.admit?.(state.username);

    const additionalData = Buffer.from('v=' + serverSignature.toString('base64'), 'utf8');
    return state.authzid === undefined
      ? { done: true, username: state.username, additionalData }
      : { done: true, username: state.username, authzid: state.authzid, additionalData };
  }
}
