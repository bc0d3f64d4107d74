/**
 * Portal login tokens and signed API requests, both HMAC-SHA256 with `portal.secret`.
 *
 * A login token says "this portal user may log in until T": the portal signs it for a
 * user it has logged in, the page gives it to the widget, and the widget logs in with
 * SASL PLAIN (username = the user, password = the token). Format:
 *
 *     pt1.<expires, Unix seconds>.<base64url HMAC-SHA256(secret, "parley-login-v1\n" + domain + "\n" + user + "\n" + expires)>
 *
 * A signed API request carries `X-Parley-Timestamp` (Unix seconds) and
 * `X-Parley-Signature: v1=<hex HMAC-SHA256(secret, method + "\n" + path + "\n" + timestamp + "\n" + hex SHA-256(body))>`.
 *
 * @example
 * const token = signLoginToken(secret, 'example.com', 'alice', Math.floor(Date.now() / 1000) + 300);
 * verifyLoginToken(secret, 'example.com', 'alice', token, { maxTtlSeconds: 86400 }); // 'ok'
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

const TOKEN = /^pt1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

export function signLoginToken(secret: string, domain: string, user: string, expires: number): string {
  const mac = createHmac('sha256', secret).update(`parley-login-v1\n${domain}\n${user}\n${expires}`).digest('base64url');
  return `pt1.${expires}.${mac}`;
}

/** Does the password look like a login token (so it is checked as one, not as a password)? */
export function looksLikeToken(password: string): boolean {
  return password.startsWith('pt1.');
}

export type TokenVerdict = 'ok' | 'malformed' | 'expired' | 'too-long' | 'bad-signature';

/** Checks a login token for `user` (its localpart); the comparison is constant-time. */
export function verifyLoginToken(secret: string, domain: string, user: string, token: string, opts: { maxTtlSeconds: number; now?: number }): TokenVerdict {
  const m = TOKEN.exec(token);
  if (!m) return 'malformed';
  const expires = Number(m[1]);
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const want = createHmac('sha256', secret).update(`parley-login-v1\n${domain}\n${user}\n${expires}`).digest();
  const given = Buffer.from(m[2]!, 'base64url');
  if (given.length !== want.length || !timingSafeEqual(given, want)) return 'bad-signature';
  if (expires <= now) return 'expired';
  if (expires - now > opts.maxTtlSeconds) return 'too-long';
  return 'ok';
}

/** The signature header value of an API request. */
export function signRequest(secret: string, method: string, path: string, timestamp: number, body: Buffer | string): string {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return 'v1=' + createHmac('sha256', secret).update(`${method.toUpperCase()}\n${path}\n${timestamp}\n${bodyHash}`).digest('hex');
}

/** The one accepted form of `X-Parley-Signature`: `v1=` and 64 lowercase hex digits, nothing around. */
const SIGNATURE_HEADER = /^v1=([0-9a-f]{64})$/;

/**
 * Checks a request signature header; returns the verified MAC (32 bytes) or null.
 * SECURITY: the header must be in canonical form, byte for byte (no whitespace of any
 * kind, no other case, no second value): a replay memory keyed on what was verified then
 * cannot be dodged by spelling the same signature another way. The comparison is
 * constant-time.
 */
export function verifyRequestSignature(secret: string, method: string, path: string, timestamp: number, body: Buffer, header: string): Buffer | null {
  const m = SIGNATURE_HEADER.exec(header);
  if (!m) return null;
  const given = Buffer.from(m[1]!, 'hex');
  const want = Buffer.from(signRequest(secret, method, path, timestamp, body).slice(3), 'hex');
  return timingSafeEqual(given, want) ? given : null;
}

/** Constant-time check of a request signature header against the expected one (strict form, see verifyRequestSignature). */
export function requestSignatureMatches(secret: string, method: string, path: string, timestamp: number, body: Buffer, header: string): boolean {
  return verifyRequestSignature(secret, method, path, timestamp, body, header) !== null;
}

/** Constant-time bearer check: `Authorization: Bearer <secret>`. */
export function bearerMatches(header: string | undefined, secret: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(m ? m[1]! : ''), h(secret)) && m !== null;
}
