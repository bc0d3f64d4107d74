/**
 * Accounts and their credentials. Passwords are never stored: only SCRAM keys
 * (RFC 5802 §2.1), for SHA-1 and SHA-256, each with its own random salt.
 */
import type { ScramCredentials, ScramHash } from '../xmpp/sasl/scram.js';
import type { UserFlagState } from '../storage/schema.js';

export interface AccountCredentials {
  sha1: ScramCredentials;
  sha256: ScramCredentials;
}

export interface UserStore {
  /** Creates an account; false if it already exists. */
  create(host: string, username: string, creds: AccountCredentials): Promise<boolean>;
  /** Creates many accounts in few transactions; returns how many were new. */
  createMany(host: string, users: Array<{ username: string; creds: AccountCredentials }>): Promise<number>;
  /** Removes the account and everything stored for it; false if it did not exist. */
  delete(host: string, username: string): Promise<boolean>;
  /** Replaces the credentials; false if the account does not exist. */
  setCredentials(host: string, username: string, creds: AccountCredentials): Promise<boolean>;
  getCredentials(host: string, username: string, hash: ScramHash): Promise<ScramCredentials | null>;
  exists(host: string, username: string): Promise<boolean>;
  /** Usernames in order, a page at a time (crosses every database). */
  list(host: string, opts?: { after?: string; limit?: number }): Promise<string[]>;
  count(host: string): Promise<number>;
  /**
   * Makes sure an account exists for a user whose password the portal checks (tokens,
   * external or SQL auth, a user-created event): created without credentials, so only
   * the portal can let it log in. True when it was created now.
   */
  ensure(host: string, username: string): Promise<boolean>;
  /** Why the account may not log in (banned by the portal, or deleted with data kept), or null. */
  getFlag(host: string, username: string): Promise<{ state: UserFlagState; reason: string | null } | null>;
  /** Sets (or with null clears) that flag. */
  setFlag(host: string, username: string, flag: { state: UserFlagState; reason: string | null } | null): Promise<void>;
}
