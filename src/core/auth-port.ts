/**
 * What the core, the c2s session and the modules need of authentication and accounts
 * (RFC 6120 §6, SASL): the ports the core declares and `src/auth` implements
 * (`authenticator.ts`, `user-store-sql.ts`). The composition root (`src/main.ts`) builds
 * the authenticator with its password sources and hands it and the account store to
 * `ServerCore`, so the core imports nothing of `auth` (nor of the portal behind it).
 */
import type { ChannelBindingType } from '../xmpp/sasl/scram.js';
import type { SaslServerContext } from '../xmpp/sasl/server.js';

/**
 * Checks credentials for the SASL exchange of a c2s session, and tells the router which
 * local accounts exist.
 *
 * @example
 * const core = new ServerCore({ config, log, storage, users, tls, authenticator: new Authenticator({ users, domain, log }) });
 */
export interface AuthPort {
  /** SCRAM is offered only where the server holds the keys (no external password source). */
  readonly offersScram: boolean;
  /**
   * Will this PLAIN password be checked as a login token? Such a check is one HMAC and a
   * token cannot be guessed: the login limits neither refuse nor slow it.
   */
  isPortalToken(password: string): boolean;
  /** The SASL server's view of the accounts, for one connection (its channel bindings). */
  saslContext(channelBinding: (type: ChannelBindingType) => Buffer | null): SaslServerContext;
  /** Does the local account exist (a message for an unknown account bounces)? May provision it from the password source. */
  userExists(username: string): Promise<boolean>;
}

/**
 * The accounts as the core and the modules see them (auth's `UserStore` is one): does an
 * account exist, and make one for a user the portal vouches for. Who needs the whole
 * store (the portal, the CLI, tests) gets it from the composition root, typed as auth's
 * (`ServerCore<UserStore>`).
 */
export interface AccountsPort {
  exists(host: string, username: string): Promise<boolean>;
  /** Makes sure an account exists (created without credentials); true when it was created now. */
  ensure(host: string, username: string): Promise<boolean>;
}
