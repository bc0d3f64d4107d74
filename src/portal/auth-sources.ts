/**
 * The portal's implementations of the ports of `src/auth/password-source.ts`:
 * - where portal passwords are checked (`portal.auth.source`): the portal's HTTP endpoint
 *   or a query on the portal's database. Both answer "accepted", "refused", or throw
 *   PortalUnavailable (the login then fails with `temporary-auth-failure`, not
 *   `not-authorized`: the password may well be right);
 * - the portal's login tokens (`portal.secret`, see ./tokens.ts) as PLAIN passwords.
 *
 * Password hashes in the portal's table (column `password_hash` of the auth query's row):
 * - bcrypt: `$2a$`, `$2b$`, `$2y$` (PHP's password_hash) with any cost;
 * - `sha256:<hex>`: hex SHA-256 of the password;
 * - `sha256:<salt>:<hex>`: hex SHA-256 of salt followed by the password (UTF-8).
 * Anything else is refused (and logged once).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import bcrypt from 'bcryptjs';
import type { LoginTokenCheck, LoginTokenVerdict, PasswordSource } from '../auth/password-source.js';
import { PortalUnavailable, type PortalDb } from './portal-db.js';
import { looksLikeToken, verifyLoginToken } from './tokens.js';

/**
 * The portal's login tokens (`pt1.…`, signed with `portal.secret`) as PLAIN passwords.
 *
 * @example
 * new Authenticator({ users, domain, log, tokens: new PortalTokenCheck(secret, domain, 86_400) });
 */
export class PortalTokenCheck implements LoginTokenCheck {
  constructor(
    readonly secret: string,
    readonly domain: string,
    /** `portal.tokenMaxTtl` in seconds: a token valid for longer is refused. */
    readonly maxTtlSeconds: number,
  ) {}

  claims(password: string): boolean {
    return looksLikeToken(password);
  }

  verify(user: string, token: string): LoginTokenVerdict {
    const verdict = verifyLoginToken(this.secret, this.domain, user, token, { maxTtlSeconds: this.maxTtlSeconds });
    return verdict === 'ok' ? { ok: true } : { ok: false, reason: verdict };
  }
}

/** Largest answer body read from the portal. */
const MAX_BODY = 64 * 1024;

/** Checks a password against a stored portal hash (see the file comment for the forms). */
export async function verifyPasswordHash(password: string, hash: string, log?: Logger): Promise<boolean> {
  if (/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
    // $2y$ (PHP) is the same algorithm as $2b$.
    return bcrypt.compare(password, hash.replace(/^\$2y\$/, '$2b$'));
  }
  const m = /^sha256:(?:([^:]*):)?([0-9a-fA-F]{64})$/.exec(hash);
  if (m) {
    const want = Buffer.from(m[2]!, 'hex');
    const got = createHash('sha256')
      .update(m[1] ?? '', 'utf8')
      .update(password, 'utf8')
      .digest();
    return timingSafeEqual(got, want);
  }
  warnOnce(log, 'portal password_hash in an unknown form (expected $2a$/$2b$/$2y$ bcrypt, sha256:<hex> or sha256:<salt>:<hex>): login refused');
  return false;
}

const warned = new Set<string>();
function warnOnce(log: Logger | undefined, msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  log?.warn(msg);
}

/** POSTs {"user", "password"} as JSON to the portal; 200 with {"ok": true} accepts. */
export class HttpPasswordSource implements PasswordSource {
  readonly kind = 'http';

  constructor(
    readonly url: string,
    readonly timeoutMs: number,
    readonly log: Logger,
    /** GET, `{user}` replaced: 200 says the user exists, 404 that it does not. */
    readonly existsUrl?: string,
  ) {}

  async check(user: string, password: string): Promise<boolean> {
    const res = await this.#fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ user, password }) });
    if (res.status !== 200) return false;
    const body = await readBody(res).catch(() => null);
    if (body === null) return false;
    try {
      const json = JSON.parse(body) as unknown;
      return typeof json === 'object' && json !== null && (json as { ok?: unknown }).ok === true;
    } catch {
      this.log.warn({ url: this.url }, 'portal auth answered 200 without a JSON body: login refused');
      return false;
    }
  }

  async userExists(user: string): Promise<boolean | null> {
    if (this.existsUrl === undefined) return null;
    const res = await this.#fetch(this.existsUrl.replaceAll('{user}', encodeURIComponent(user)), { method: 'GET' });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw new PortalUnavailable(`portal user lookup answered ${res.status}`);
  }

  /** A request with a deadline; a timeout, a connection error or a 5xx is PortalUnavailable. */
  async #fetch(url: string, init: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      const err = e as Error;
      const what = err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (err.cause as Error | undefined)?.message ?? err.message;
      throw new PortalUnavailable(`portal at ${new URL(url).origin}: ${what}`, { cause: e });
    }
    if (res.status >= 500) {
      await res.body?.cancel().catch(() => undefined);
      throw new PortalUnavailable(`portal at ${new URL(url).origin} answered ${res.status}`);
    }
    return res;
  }
}

/** Reads a response body up to MAX_BODY bytes. SECURITY: a huge answer is not buffered. */
export async function readBody(res: Response, max = MAX_BODY): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) throw new Error(`answer larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs `portal.auth.query` with :user and :password: a row accepts; a row with a
 * `password_hash` column accepts when the password matches that hash.
 */
export class SqlPasswordSource implements PasswordSource {
  readonly kind = 'sql';

  constructor(
    readonly db: PortalDb,
    readonly query: string,
    readonly log: Logger,
    /** `portal.auth.existsQuery`: a row says the user exists. */
    readonly existsQuery?: string,
  ) {}

  async check(user: string, password: string): Promise<boolean> {
    const rows = await this.db.query(this.query, { user, password });
    const row = rows[0];
    if (!row) return false;
    if ('password_hash' in row) {
      const hash = row.password_hash;
      if (typeof hash !== 'string' && !Buffer.isBuffer(hash)) return false;
      return verifyPasswordHash(password, String(hash), this.log);
    }
    return true;
  }

  async userExists(user: string): Promise<boolean | null> {
    if (this.existsQuery === undefined) return null;
    return (await this.db.query(this.existsQuery, { user })).length > 0;
  }
}
