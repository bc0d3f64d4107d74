/**
 * Where a username and password are checked when Parley's own SCRAM store is not the
 * one that decides (RFC 6120 §6, SASL PLAIN, RFC 4616): the ports that the portal (or any
 * other account owner) plugs into. `auth` declares them, `src/portal/auth-sources.ts`
 * implements them (the portal's HTTP endpoint, its SQL database, its login tokens), and
 * the composition root (`src/main.ts`) hands the implementations to the Authenticator.
 * Nothing here knows the portal.
 */

/**
 * Checks every PLAIN password in place of Parley's own store (`portal.auth.source`
 * `http` or `sql`). Parley holds no SCRAM keys for such users, so only PLAIN is offered.
 *
 * @example
 * const source: PasswordSource = new HttpPasswordSource(url, 5000, log);
 * new Authenticator({ users, domain, log, source });
 */
export interface PasswordSource {
  /** What kind of source it is (`http`, `sql`…), for logs and stats. */
  readonly kind: string;
  /**
   * True: accepted; false: refused. Throws when the source did not answer: the login
   * then fails with `temporary-auth-failure`, not `not-authorized` (the password may be right).
   */
  check(user: string, password: string): Promise<boolean>;
  /** Is `user` one of the source's users? Null when this source cannot tell (not configured). Throws when it did not answer. */
  userExists(user: string): Promise<boolean | null>;
}

/** What a login-token check says: accepted, or refused and why (logged at debug, never told to the client). */
export type LoginTokenVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Signed login tokens given as the PLAIN password (the portal's `pt1.` tokens), checked
 * in every mode, before the password source or the own store. A password that has a
 * token's form is decided by the token check alone.
 *
 * A token check is cheap (one HMAC) and a token cannot be guessed, so the login limits
 * neither refuse nor slow it because of password failures.
 */
export interface LoginTokenCheck {
  /** Does this password have the form of a token (then it is checked here and nowhere else)? */
  claims(password: string): boolean;
  /** Checks a token for `user` (a normalized localpart); constant-time. */
  verify(user: string, token: string): LoginTokenVerdict;
}
