/**
 * SCRAM primitives shared by the server and the client mechanisms.
 * References:
 * - RFC 5802 §3 (SCRAM algorithm overview: SaltedPassword, ClientKey, StoredKey, ServerKey,
 *   AuthMessage, ClientProof, ServerSignature), §5.1 (attributes), §7 (formal syntax)
 * - RFC 7677 §3 (SCRAM-SHA-256)
 * - RFC 5801 §4 (GS2 header, as profiled by RFC 5802 §7)
 * - RFC 4648 §4 (base64, used strictly: canonical padding, no whitespace)
 *
 * Every parser here throws `SaslFailure`: `malformed-request` for bad syntax and
 * `incorrect-encoding` for bad base64 inside a SCRAM attribute. Secrets are only ever
 * compared with `constantTimeEqual`.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { SaslFailure } from '../errors.js';
import { PrecisError, preparePassword } from './prep.js';

export type ScramHash = 'SHA-1' | 'SHA-256';

/** What the server stores per user and hash (RFC 5802 §2.1: never the password itself). */
export interface ScramCredentials {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Channel binding types Parley implements: RFC 9266 and RFC 5929 §4. */
export type ChannelBindingType = 'tls-exporter' | 'tls-server-end-point';

/** In order of preference (RFC 9266 §3: tls-exporter is the default for TLS 1.3). */
export const CHANNEL_BINDING_TYPES: readonly ChannelBindingType[] = ['tls-exporter', 'tls-server-end-point'];

/** RFC 7677 §4 asks for at least 4096 iterations. */
export const SCRAM_DEFAULT_ITERATIONS = 4096;
export const SCRAM_DEFAULT_SALT_BYTES = 16;
/** Largest SCRAM message (decoded bytes) either side accepts. */
export const SCRAM_MAX_MESSAGE_BYTES = 4096;
/** Largest decoded username / authzid in bytes (RFC 7622 §3.3.1 caps a localpart at 1023). */
export const SCRAM_MAX_NAME_BYTES = 1024;
/** Longest combined nonce, in characters. */
export const SCRAM_MAX_NONCE_LENGTH = 512;

const NODE_HASH: Record<ScramHash, string> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256' };
const DIGEST_BYTES: Record<ScramHash, number> = { 'SHA-1': 20, 'SHA-256': 32 };

export function isScramHash(s: string): s is ScramHash {
  return s === 'SHA-1' || s === 'SHA-256';
}

export function isChannelBindingType(s: string): s is ChannelBindingType {
  return (CHANNEL_BINDING_TYPES as readonly string[]).includes(s);
}

/** Output length of H() for this hash, in bytes. */
export function digestLength(hash: ScramHash): number {
  return DIGEST_BYTES[hash];
}

export function hmac(hash: ScramHash, key: Buffer, data: Buffer | string): Buffer {
  return createHmac(NODE_HASH[hash], key).update(data).digest();
}

export function h(hash: ScramHash, data: Buffer | string): Buffer {
  return createHash(NODE_HASH[hash]).update(data).digest();
}

export function xor(a: Buffer, b: Buffer): Buffer {
  if (a.length !== b.length) throw new RangeError('xor: length mismatch');
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/**
 * Compares two secrets in time that depends only on their lengths.
 * Lengths of SCRAM values are public (they follow from the hash), so an early length check
 * leaks nothing; we still do a comparison of equal work to keep the code path uniform.
 */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/**
 * SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3).
 * The password is prepared here with `preparePassword` (OpaqueString), so callers pass it
 * as typed. Runs PBKDF2 on the libuv thread pool.
 */
export async function saltedPassword(
  password: string,
  hash: ScramHash,
  salt: Buffer,
  iterations: number,
): Promise<Buffer> {
  return hi(preparePassword(password), hash, salt, iterations);
}

/** Hi() of RFC 5802 §2.2 (PBKDF2 with HMAC as the PRF) over an already prepared password. */
function hi(prepared: string, hash: ScramHash, salt: Buffer, iterations: number): Promise<Buffer> {
  checkIterations(iterations);
  return new Promise((resolve, reject) => {
    pbkdf2(prepared, salt, iterations, DIGEST_BYTES[hash], NODE_HASH[hash], (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** ClientKey, StoredKey and ServerKey from a salted password (RFC 5802 §3). */
export function scramKeys(
  hash: ScramHash,
  salted: Buffer,
): { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const clientKey = hmac(hash, salted, 'Client Key');
  return { clientKey, storedKey: h(hash, clientKey), serverKey: hmac(hash, salted, 'Server Key') };
}

/**
 * Derives the stored credentials for a password: what account creation and password
 * changes write to storage.
 *
 * @example
 * const creds = await deriveScramCredentials('pencil', 'SHA-256');
 * await store.setScram(user, 'SHA-256', creds);
 */
export async function deriveScramCredentials(
  password: string,
  hash: ScramHash,
  iterations = SCRAM_DEFAULT_ITERATIONS,
  salt?: Buffer,
): Promise<ScramCredentials> {
  const s = salt ?? randomBytes(SCRAM_DEFAULT_SALT_BYTES);
  const { storedKey, serverKey } = scramKeys(hash, await saltedPassword(password, hash, s, iterations));
  return { salt: s, iterations, storedKey, serverKey };
}

/**
 * Checks a plaintext password (from SASL PLAIN) against stored SCRAM credentials, for
 * `SaslServerContext.verifyPlain` implementations. A password that OpaqueString rejects
 * cannot match anything and yields false.
 */
export async function checkScramPassword(
  password: string,
  hash: ScramHash,
  creds: ScramCredentials,
): Promise<boolean> {
  let prepared: string;
  try {
    prepared = preparePassword(password);
  } catch (err) {
    if (err instanceof PrecisError) return false; // no stored key can match it
    throw err;
  }
  const salted = await hi(prepared, hash, creds.salt, creds.iterations);
  return constantTimeEqual(scramKeys(hash, salted).storedKey, creds.storedKey);
}

// SECURITY: per-process key for the fake credentials of unknown users. A cluster should
// pass one shared key (see `fakeScramCredentials`), or an attacker comparing the salts two
// nodes return could tell unknown users (salt differs per node) from real ones.
const FAKE_KEY = randomBytes(32);

/**
 * Stand-in credentials for a user that does not exist, so the exchange looks the same
 * (same salt every time for the same name, same iteration count, same work) and fails
 * only at the proof check.
 */
export function fakeScramCredentials(
  username: string,
  hash: ScramHash,
  iterations = SCRAM_DEFAULT_ITERATIONS,
  key: Buffer = FAKE_KEY,
): ScramCredentials {
  const derive = (label: string, len: number) =>
    createHmac('sha256', key).update(`${label}\0${hash}\0${username}`).digest().subarray(0, len);
  return {
    salt: derive('salt', SCRAM_DEFAULT_SALT_BYTES),
    iterations,
    storedKey: derive('stored', DIGEST_BYTES[hash]),
    serverKey: derive('server', DIGEST_BYTES[hash]),
  };
}

function checkIterations(iterations: number): void {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new RangeError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
}

// ---------------------------------------------------------------------------------------
// Message syntax (RFC 5802 §7)
// ---------------------------------------------------------------------------------------

function malformed(text: string): SaslFailure {
  return new SaslFailure('malformed-request', text);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes a SCRAM message: strict UTF-8, no NUL, at most `SCRAM_MAX_MESSAGE_BYTES`.
 */
export function decodeScramMessage(bytes: Buffer): string {
  // SECURITY: bound the size before any parsing.
  if (bytes.length > SCRAM_MAX_MESSAGE_BYTES) throw malformed('SCRAM message too long');
  if (bytes.length === 0) throw malformed('empty SCRAM message');
  // SECURITY: NUL is excluded by every production of the grammar.
  if (bytes.includes(0)) throw malformed('NUL in SCRAM message');
  try {
    return UTF8.decode(bytes);
  } catch {
    throw malformed('SCRAM message is not valid UTF-8');
  }
}

/** Escapes a name for `n=` / `a=`: "=" → "=3D", "," → "=2C" (RFC 5802 §5.1). */
export function encodeSaslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/**
 * Decodes a `saslname` (RFC 5802 §7): 1*(value-safe-char / "=2C" / "=3D").
 * Any other use of "=" is a bad escape.
 */
export function decodeSaslName(s: string): string {
  if (s === '') throw malformed('empty name');
  // SECURITY: strict escapes, so one name has exactly one spelling on the wire.
  if (!/^(?:[^=,\0]|=2C|=3D)+$/.test(s)) throw malformed('bad escape in name');
  const name = s.replace(/=2C|=3D/g, (m) => (m === '=2C' ? ',' : '='));
  if (Buffer.byteLength(name, 'utf8') > SCRAM_MAX_NAME_BYTES) throw malformed('name too long');
  return name;
}

/** printable = %x21-2B / %x2D-7E (RFC 5802 §7): printable ASCII except ",". */
export function isPrintableNonce(s: string): boolean {
  return s.length > 0 && /^[\x21-\x2B\x2D-\x7E]+$/.test(s);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes base64 strictly: standard alphabet, padding required, no whitespace, and the
 * unused bits of the last group zero (so the encoding is canonical).
 * Throws `incorrect-encoding`.
 */
export function decodeBase64Strict(s: string, what = 'value'): Buffer {
  // SECURITY: Buffer.from(..., 'base64') silently skips junk; validate first.
  if (s === '' || !BASE64.test(s)) throw new SaslFailure('incorrect-encoding', `${what} is not valid base64`);
  const buf = Buffer.from(s, 'base64');
  if (buf.toString('base64') !== s) throw new SaslFailure('incorrect-encoding', `${what} is not canonical base64`);
  return buf;
}

export interface ScramAttribute {
  name: string;
  value: string;
}

/**
 * Splits `a=v,b=w,...` into attributes: each is one ALPHA, "=", then 1*value-char
 * (anything but NUL and ","). The message must already be free of NUL.
 */
export function parseAttributes(s: string): ScramAttribute[] {
  return s.split(',').map((part) => {
    if (!/^[A-Za-z]=./su.test(part)) throw malformed('bad attribute syntax');
    return { name: part[0]!, value: part.slice(2) };
  });
}

export interface Gs2Header {
  /**
   * "n": the client does not support channel binding; "y": it does, but thinks the server
   * does not; "p": it uses `cbType`.
   */
  cbFlag: 'n' | 'y' | 'p';
  cbType?: string;
  authzid?: string;
  /** The header as sent, including its two commas; part of the `c=` value. */
  raw: string;
}

/**
 * Parses the GS2 header at the start of a client-first message:
 * gs2-cbind-flag "," [ "a=" saslname ] "," (RFC 5802 §7).
 */
export function parseGs2Header(msg: string): { header: Gs2Header; rest: string } {
  const c1 = msg.indexOf(',');
  const c2 = c1 < 0 ? -1 : msg.indexOf(',', c1 + 1);
  if (c2 < 0) throw malformed('missing GS2 header');
  const flag = msg.slice(0, c1);
  const authz = msg.slice(c1 + 1, c2);
  const header: Gs2Header = { cbFlag: 'n', raw: msg.slice(0, c2 + 1) };
  if (flag === 'n' || flag === 'y') {
    header.cbFlag = flag;
  } else if (flag.startsWith('p=')) {
    const type = flag.slice(2);
    // cb-name = 1*(ALPHA / DIGIT / "." / "-")
    if (!/^[A-Za-z0-9.-]+$/.test(type)) throw malformed('bad channel binding name');
    header.cbFlag = 'p';
    header.cbType = type;
  } else {
    throw malformed('bad GS2 channel binding flag');
  }
  if (authz !== '') {
    if (!authz.startsWith('a=')) throw malformed('bad GS2 authzid');
    header.authzid = decodeSaslName(authz.slice(2));
  }
  return { header, rest: msg.slice(c2 + 1) };
}

function checkNonce(nonce: string): void {
  if (!isPrintableNonce(nonce)) throw malformed('nonce has characters outside printable ASCII');
  // SECURITY: bound how much a client can make us store and echo.
  if (nonce.length > SCRAM_MAX_NONCE_LENGTH) throw malformed('nonce too long');
}

function rejectMandatoryExtension(attrs: ScramAttribute[]): void {
  // RFC 5802 §5.1: "m" is reserved; a receiver that sees it must fail.
  if (attrs[0]?.name === 'm') throw malformed('mandatory extension (m=) not supported');
}

export interface ClientFirstMessage {
  gs2: Gs2Header;
  /** client-first-message-bare, as sent; part of AuthMessage. */
  bare: string;
  /** The decoded `n=` value. */
  username: string;
  clientNonce: string;
}

/** gs2-header [reserved-mext ","] username "," nonce ["," extensions] */
export function parseClientFirst(msg: string): ClientFirstMessage {
  const { header, rest } = parseGs2Header(msg);
  const attrs = parseAttributes(rest);
  rejectMandatoryExtension(attrs);
  const [n, r] = attrs;
  if (n?.name !== 'n') throw malformed('client-first: expected n=');
  if (r?.name !== 'r') throw malformed('client-first: expected r=');
  checkNonce(r.value);
  // Further attributes are extensions: unknown ones are ignored (RFC 5802 §5.1).
  return { gs2: header, bare: rest, username: decodeSaslName(n.value), clientNonce: r.value };
}

export interface ServerFirstMessage {
  nonce: string;
  salt: Buffer;
  iterations: number;
}

/** [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions] */
export function parseServerFirst(msg: string): ServerFirstMessage {
  const attrs = parseAttributes(msg);
  rejectMandatoryExtension(attrs);
  const [r, s, i] = attrs;
  if (r?.name !== 'r') throw malformed('server-first: expected r=');
  if (s?.name !== 's') throw malformed('server-first: expected s=');
  if (i?.name !== 'i') throw malformed('server-first: expected i=');
  checkNonce(r.value);
  // posit-number = %x31-39 *DIGIT; nine digits keep it a safe integer.
  if (!/^[1-9][0-9]{0,8}$/.test(i.value)) throw malformed('server-first: bad iteration count');
  return { nonce: r.value, salt: decodeBase64Strict(s.value, 'salt'), iterations: Number(i.value) };
}

export interface ClientFinalMessage {
  /** The decoded `c=` value: gs2 header followed by the channel binding data, if any. */
  channelBinding: Buffer;
  nonce: string;
  proof: Buffer;
  /** client-final-message-without-proof, as sent; part of AuthMessage. */
  withoutProof: string;
}

/** channel-binding "," nonce ["," extensions] "," proof */
export function parseClientFinal(msg: string): ClientFinalMessage {
  const attrs = parseAttributes(msg);
  const [c, r] = attrs;
  const p = attrs[attrs.length - 1];
  if (c?.name !== 'c') throw malformed('client-final: expected c=');
  if (r?.name !== 'r') throw malformed('client-final: expected r=');
  if (attrs.length < 3 || p?.name !== 'p') throw malformed('client-final: expected p= last');
  checkNonce(r.value);
  return {
    channelBinding: decodeBase64Strict(c.value, 'channel binding'),
    nonce: r.value,
    proof: decodeBase64Strict(p.value, 'proof'),
    withoutProof: msg.slice(0, msg.lastIndexOf(',')),
  };
}

export type ServerFinalMessage = { verifier: Buffer } | { error: string };

/** (server-error / verifier) ["," extensions] */
export function parseServerFinal(msg: string): ServerFinalMessage {
  const [first] = parseAttributes(msg);
  if (first?.name === 'e') return { error: first.value };
  if (first?.name === 'v') return { verifier: decodeBase64Strict(first.value, 'verifier') };
  throw malformed('server-final: expected v= or e=');
}

/** Builds the GS2 header a client sends (the inverse of `parseGs2Header`). */
export function gs2Header(cbFlag: 'n' | 'y' | 'p', cbType?: string, authzid?: string): string {
  const flag = cbFlag === 'p' ? `p=${cbType ?? ''}` : cbFlag;
  return `${flag},${authzid !== undefined ? 'a=' + encodeSaslName(authzid) : ''},`;
}
