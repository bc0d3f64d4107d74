/**
 * Remembers recent successful PLAIN logins so a client that logs in again (reconnects,
 * reconnect storms after a failover) does not cost another PBKDF2 run.
 *
 * SECURITY: only an HMAC of (user, password) under a per-process random key is kept,
 * never the password; an entry is valid only while the account's stored key is the one
 * it was verified against (a password change invalidates it); entries expire; the map
 * is bounded. A hit is faster than a miss, which tells a caller nothing they did not
 * already know (they had to send the right password).
 */
import { createHmac, randomBytes } from 'node:crypto';

export class VerifiedPasswordCache {
  readonly #key = randomBytes(32);
  readonly #entries = new Map<string, { stored: string; until: number }>();

  constructor(
    readonly max: number,
    readonly ttlMs: number,
  ) {}

  #id(username: string, password: string): string {
    return createHmac('sha256', this.#key).update(username).update('\0').update(password).digest('base64');
  }

  /** True if this password was verified for this user against these stored keys, lately. */
  has(username: string, password: string, storedKey: Buffer): boolean {
    if (this.max === 0) return false;
    const id = this.#id(username, password);
    const e = this.#entries.get(id);
    if (!e) return false;
    if (e.until < Date.now() || e.stored !== storedKey.toString('base64')) {
      this.#entries.delete(id);
      return false;
    }
    return true;
  }

  remember(username: string, password: string, storedKey: Buffer): void {
    if (this.max === 0) return;
    const id = this.#id(username, password);
    this.#entries.delete(id);
    while (this.#entries.size >= this.max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(id, { stored: storedKey.toString('base64'), until: Date.now() + this.ttlMs });
  }

  get size(): number {
    return this.#entries.size;
  }
}
