/**
 * Accounts and their credentials. Passwords are never stored: only SCRAM keys
 * (RFC 5802 §2.1), for SHA-1 and SHA-256, each with its own random salt.
 */
import type { ScramCredentials, ScramHash } from '../xmpp/sasl/scram.js';

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
}
