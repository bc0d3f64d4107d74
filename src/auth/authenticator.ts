/**
 * Checks credentials for SASL (RFC 6120 §6), from one of these sources:
 * - Parley's own SCRAM store (`portal.auth.source: internal`): SCRAM and PLAIN;
 * - a login token as the PLAIN password (a LoginTokenCheck, in every mode: the portal's
 *   when `portal.secret` is set);
 * - a PasswordSource (the portal over HTTP or SQL, `portal.auth.source: http | sql`):
 *   PLAIN only, since Parley holds no SCRAM keys for those users; accepted passwords are
 *   remembered (an HMAC, for `portal.auth.cacheTtl`).
 * The sources are ports this part declares (`./password-source.ts`); the portal
 * implements them and the composition root (`src/main.ts`) plugs them in, so `auth`
 * knows nothing of the portal. The core sees the built Authenticator through the port it
 * declares (`src/core/auth-port.ts`).
 * In every mode an account flagged banned or deleted (user store `getFlag`) is refused with
 * `account-disabled` (RFC 6120 §6.5.1) and the ban reason as text, after its credentials
 * were checked (so the flag tells nothing to someone without them). A user who logs in
 * through the portal gets an account (`users.ensure`), so messages to them route and
 * offline storage works.
 */
import type { Logger } from 'pino';
import { fakeScramCredentials, checkScramPassword, type ChannelBindingType, type ScramCredentials, type ScramHash } from '../xmpp/sasl/scram.js';
import type { SaslServerContext } from '../xmpp/sasl/server.js';
import { SaslFailure } from '../xmpp/errors.js';
import { usernameCaseMapped } from '../xmpp/precis.js';
import type { LoginTokenCheck, PasswordSource } from './password-source.js';
import type { UserStore } from './user-store.js';
import { VerifiedPasswordCache } from './plain-cache.js';

/** The localpart a SASL username stands for, or null if it can't be one. */
export function normalizeUsername(username: string): string | null {
  try {
    const u = usernameCaseMapped(username);
    return /["&'/:<>@]/.test(u) ? null : u;
  } catch {
    return null;
  }
}

export interface AuthenticatorOptions {
  users: UserStore;
  domain: string;
  log: Logger;
  /** Recent internal PLAIN logins (skips PBKDF2 when logging in again). */
  verified?: VerifiedPasswordCache;
  /** Login tokens accepted as the PLAIN password (the portal's, when `portal.secret` is set), or none. */
  tokens?: LoginTokenCheck | null;
  /** Where every other PLAIN password is checked (the portal over http or sql), or none: the own store. */
  source?: PasswordSource | null;
  /** How long a password the portal accepted is remembered (0: not at all). */
  cacheTtlMs?: number;
  /** Bound of that cache. */
  cacheMax?: number;
}

/** A stand-in "stored key" for the portal cache: portal passwords have none. */
const PORTAL_KEY = Buffer.from('portal');

/**
 * Checks SASL credentials against the own store, login tokens and a password source;
 * refuses banned and deleted accounts; provisions accounts for users the source vouches for.
 *
 * @example
 * const auth = new Authenticator({ users, domain: 'example.com', log, tokens: portalTokens, source: null });
 * const sasl = auth.saslContext((type) => transport.channelBinding(type));
 */
export class Authenticator {
  readonly #o: AuthenticatorOptions;
  readonly #portalCache: VerifiedPasswordCache;
  /** Portal users looked up lately by `userExists` (name → [exists, until]). */
  readonly #lookups = new Map<string, { exists: boolean; until: number }>();

  constructor(opts: AuthenticatorOptions) {
    this.#o = opts;
    this.#portalCache = new VerifiedPasswordCache(opts.cacheTtlMs ? (opts.cacheMax ?? 100_000) : 0, opts.cacheTtlMs ?? 0);
  }

  /** SCRAM works only where Parley holds the keys: the internal source. */
  get offersScram(): boolean {
    return !this.#o.source;
  }

  /** The password source, if any (for stats and tests). */
  get source(): PasswordSource | null {
    return this.#o.source ?? null;
  }

  /**
   * Will this PLAIN password be checked as a login token (a token check is plugged in and
   * the password has a token's form)? Such a check is one HMAC, and a token cannot be guessed, so the
   * login limits neither refuse nor slow it because of password failures (c2s session).
   */
  isPortalToken(password: string): boolean {
    return this.#o.tokens?.claims(password) ?? false;
  }

  /** The SASL server's view of the accounts, for one connection (its channel bindings). */
  saslContext(channelBinding: (type: ChannelBindingType) => Buffer | null): SaslServerContext {
    const { users, domain, verified } = this.#o;
    return {
      channelBinding,
      getScramCredentials: async (username: string, hash: ScramHash): Promise<ScramCredentials | null> => {
        const local = normalizeUsername(username);
        if (local === null) return null;
        return users.getCredentials(domain, local, hash);
      },
      verifyPlain: async (username: string, password: string): Promise<boolean> => {
        const local = normalizeUsername(username);
        const tokens = this.#o.tokens;
        if (local !== null && tokens?.claims(password)) {
          const verdict = tokens.verify(local, password);
          if (!verdict.ok) {
            this.#o.log.debug({ user: local, verdict: verdict.reason }, 'login token refused');
            return false;
          }
          await this.#admit(local, true);
          return true;
        }
        const source = this.#o.source;
        if (source) {
          if (local === null) return false;
          if (!this.#portalCache.has(local, password, PORTAL_KEY)) {
            let ok: boolean;
            try {
              ok = await source.check(local, password);
            } catch (e) {
              this.#o.log.warn({ err: e, user: local }, 'portal password check failed');
              throw new SaslFailure('temporary-auth-failure', 'the portal did not answer; try again');
            }
            if (!ok) return false;
            this.#portalCache.remember(local, password, PORTAL_KEY);
          }
          await this.#admit(local, true);
          return true;
        }
        const creds = local === null ? null : await users.getCredentials(domain, local, 'SHA-256');
        if (creds && local !== null && verified?.has(local, password, creds.storedKey)) {
          await this.#admit(local, false);
          return true;
        }
        // SECURITY: the same PBKDF2 work for unknown users, so timing does not tell them apart.
        const ok = await checkScramPassword(password, 'SHA-256', creds ?? fakeScramCredentials(username, 'SHA-256'));
        if (!ok || creds === null || local === null) return false;
        verified?.remember(local, password, creds.storedKey);
        await this.#admit(local, false);
        return true;
      },
      admit: async (username: string): Promise<void> => {
        const local = normalizeUsername(username);
        if (local !== null) await this.#admit(local, false);
      },
    };
  }

  /** After the credentials were checked: refuses flagged accounts, provisions portal users. */
  async #admit(local: string, portal: boolean): Promise<void> {
    const { users, domain } = this.#o;
    const flag = await users.getFlag(domain, local);
    if (flag) throw new SaslFailure('account-disabled', flag.reason ?? (flag.state === 'banned' ? 'the account is banned' : 'the account was deleted'));
    if (portal) await users.ensure(domain, local);
  }

  /**
   * Does the local account exist (router: a message for an unknown account bounces)?
   * With a portal source, a user who never logged in is not in Parley's table yet: when
   * `portal.auth.existsUrl`/`existsQuery` is set the portal is asked, and a yes provisions
   * the account (offline storage works from then on). Answers are remembered for the auth
   * cache TTL (negative ones too, so mail to a non-existent name does not ask every time).
   */
  async userExists(username: string): Promise<boolean> {
    const { users, domain, source } = this.#o;
    if (await users.exists(domain, username)) return true;
    if (!source) return false;
    const now = Date.now();
    const known = this.#lookups.get(username);
    if (known && known.until > now) return known.exists;
    let exists: boolean | null;
    try {
      exists = await source.userExists(username);
    } catch (e) {
      this.#o.log.warn({ err: e, user: username }, 'portal user lookup failed');
      return false;
    }
    if (exists === null) return false;
    if (exists) await users.ensure(domain, username);
    if (this.#lookups.size >= 10_000) this.#lookups.delete(this.#lookups.keys().next().value!);
    this.#lookups.set(username, { exists, until: now + Math.max(this.#o.cacheTtlMs ?? 0, 1000) });
    return exists;
  }
}
