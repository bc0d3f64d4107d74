/**
 * SASL, client side: PLAIN and SCRAM, for tests and the load generator.
 * References:
 * - RFC 4616 §2 (PLAIN message)
 * - RFC 5802 §3, §5, §6, §7 (SCRAM client algorithm, GS2 channel binding flag)
 * - RFC 7677 §3 (SCRAM-SHA-256)
 * - RFC 9266, RFC 5929 §4 (channel binding types, data supplied by the caller)
 * - RFC 8265 §4.2 (OpaqueString password preparation)
 *
 * Bad or forged server messages throw `SaslFailure`: `malformed-request` /
 * `incorrect-encoding` for syntax, `not-authorized` when the server fails to prove it
 * knows the password (wrong `v=`) or reports `e=`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SaslFailure } from '../errors.js';
import { preparePassword } from './prep.js';
import {
  constantTimeEqual,
  decodeScramMessage,
  encodeSaslName,
  gs2Header,
  hmac,
  isPrintableNonce,
  parseServerFinal,
  parseServerFirst,
  saltedPassword,
  scramKeys,
  xor,
  type ScramHash,
} from './scram.js';

/** A PLAIN message: [authzid] NUL authcid NUL passwd (RFC 4616 §2), password prepared. */
export function plainMessage(username: string, password: string, authzid?: string): Buffer {
  return Buffer.from(`${authzid ?? ''}\0${username}\0${preparePassword(password)}`, 'utf8');
}

export interface ScramClientOptions {
  /** Channel binding type to use (`p=`); requires `cbData`. Selects the -PLUS mechanism. */
  cbType?: string;
  /** Channel binding data for `cbType` from the TLS connection. */
  cbData?: Buffer;
  /** Client nonce (tests); default 24 random bytes in base64. */
  clientNonce?: string;
  /**
   * The client supports channel binding but the server did not offer -PLUS: sends `y`
   * so a server that did offer it detects the downgrade. Ignored when `cbType` is set.
   */
  supportsPlus?: boolean;
  /** Authorization identity for the GS2 header (`a=`). */
  authzid?: string;
  /** SECURITY: refuse iteration counts above this (a hostile server could stall us). */
  maxIterations?: number;
}

export const SCRAM_CLIENT_MAX_ITERATIONS = 1_000_000;
const CACHE_MAX_ENTRIES = 64;
const saltedCache = new Map<string, Promise<Buffer>>();

/**
 * `saltedPassword` through a small module-level cache keyed by (hash, password, salt,
 * iterations), so a load generator logging in thousands of users that share a password
 * runs PBKDF2 once. Concurrent callers share one pending computation. The key is a
 * SHA-256 digest, so the cache holds no plaintext password.
 */
export function cachedSaltedPassword(
  password: string,
  hash: ScramHash,
  salt: Buffer,
  iterations: number,
): Promise<Buffer> {
  const key = createHash('sha256')
    .update(`${hash}\0${iterations}\0${salt.toString('base64')}\0`)
    .update(password, 'utf8')
    .digest('base64');
  const hit = saltedCache.get(key);
  if (hit) return hit;
  const pending = saltedPassword(password, hash, salt, iterations);
  pending.catch(() => saltedCache.delete(key));
  if (saltedCache.size >= CACHE_MAX_ENTRIES) saltedCache.delete(saltedCache.keys().next().value!);
  saltedCache.set(key, pending);
  return pending;
}

function malformed(text: string): SaslFailure {
  return new SaslFailure('malformed-request', text);
}

/**
 * One SCRAM exchange, client side (RFC 5802 §5).
 *
 * @example
 * const c = new ScramClient('SHA-256', 'juliet', 'secret', { cbType: 'tls-exporter', cbData });
 * send(c.mechanism, c.first());
 * send(await c.final(challenge));
 * c.verify(successData); // throws unless the server proved it knows our credentials
 */
export class ScramClient {
  readonly #hash: ScramHash;
  readonly #password: string;
  readonly #maxIterations: number;
  readonly #cbInput: Buffer;
  readonly #clientNonce: string;
  readonly #bare: string;
  readonly #gs2: string;
  readonly #plus: boolean;
  #state: 'new' | 'first-sent' | 'final-sent' | 'done' = 'new';
  #serverSignature: Buffer | undefined;

  constructor(hash: ScramHash, username: string, password: string, opts: ScramClientOptions = {}) {
    if ((opts.cbType === undefined) !== (opts.cbData === undefined)) {
      throw new TypeError('cbType and cbData go together');
    }
    if (opts.cbType !== undefined && !/^[A-Za-z0-9.-]+$/.test(opts.cbType)) {
      throw new TypeError(`bad channel binding type ${opts.cbType}`);
    }
    const nonce = opts.clientNonce ?? randomBytes(24).toString('base64');
    if (!isPrintableNonce(nonce)) throw new TypeError('clientNonce must be printable ASCII without ","');
    if (username === '') throw new TypeError('empty username');
    this.#hash = hash;
    this.#password = password;
    this.#maxIterations = opts.maxIterations ?? SCRAM_CLIENT_MAX_ITERATIONS;
    this.#plus = opts.cbType !== undefined;
    const flag = this.#plus ? 'p' : opts.supportsPlus ? 'y' : 'n';
    this.#gs2 = gs2Header(flag, opts.cbType, opts.authzid);
    const header = Buffer.from(this.#gs2, 'utf8');
    this.#cbInput = opts.cbData ? Buffer.concat([header, opts.cbData]) : header;
    this.#clientNonce = nonce;
    this.#bare = `n=${encodeSaslName(username)},r=${nonce}`;
  }

  /** The mechanism name matching the options: `SCRAM-SHA-256`, `SCRAM-SHA-1-PLUS`, … */
  get mechanism(): string {
    return `SCRAM-${this.#hash}${this.#plus ? '-PLUS' : ''}`;
  }

  /** client-first-message (the initial response). */
  first(): Buffer {
    if (this.#state !== 'new') throw new Error('ScramClient.first() called twice');
    this.#state = 'first-sent';
    return Buffer.from(this.#gs2 + this.#bare, 'utf8');
  }

  /** Answers server-first-message with client-final-message. */
  async final(serverFirst: Buffer): Promise<Buffer> {
    if (this.#state !== 'first-sent') throw new Error('ScramClient.final() out of order');
    this.#state = 'final-sent';
    const serverFirstMsg = decodeScramMessage(serverFirst);
    const sf = parseServerFirst(serverFirstMsg);
    // SECURITY: the combined nonce must extend ours, or this is a replayed exchange.
    if (!sf.nonce.startsWith(this.#clientNonce) || sf.nonce.length === this.#clientNonce.length) {
      throw malformed('server nonce does not extend the client nonce');
    }
    if (sf.iterations > this.#maxIterations) throw malformed(`iteration count ${sf.iterations} above limit`);

    const salted = await cachedSaltedPassword(this.#password, this.#hash, sf.salt, sf.iterations);
    const { clientKey, storedKey, serverKey } = scramKeys(this.#hash, salted);
    const withoutProof = `c=${this.#cbInput.toString('base64')},r=${sf.nonce}`;
    const authMessage = `${this.#bare},${serverFirstMsg},${withoutProof}`;
    const proof = xor(clientKey, hmac(this.#hash, storedKey, authMessage));
    this.#serverSignature = hmac(this.#hash, serverKey, authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Checks server-final-message (the `<success/>` additional data); throws on mismatch. */
  verify(serverFinal: Buffer): void {
    if (this.#state !== 'final-sent' || !this.#serverSignature) throw new Error('ScramClient.verify() out of order');
    this.#state = 'done';
    const parsed = parseServerFinal(decodeScramMessage(serverFinal));
    if ('error' in parsed) throw new SaslFailure('not-authorized', `server error: ${parsed.error}`);
    if (!constantTimeEqual(parsed.verifier, this.#serverSignature)) {
      throw new SaslFailure('not-authorized', 'server signature mismatch');
    }
  }
}
