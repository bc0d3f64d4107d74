/**
 * Checks credentials for SASL against the user store. The portal issue adds other
 * sources (tokens, external HTTP, the portal's SQL) behind the same SaslServerContext.
 */
import { fakeScramCredentials, checkScramPassword, type ChannelBindingType, type ScramCredentials, type ScramHash } from '../xmpp/sasl/scram.js';
import type { SaslServerContext } from '../xmpp/sasl/server.js';
import { usernameCaseMapped } from '../xmpp/precis.js';
import type { UserStore } from './user-store.js';
import type { VerifiedPasswordCache } from './plain-cache.js';

/** The localpart a SASL username stands for, or null if it can't be one. */
export function normalizeUsername(username: string): string | null {
  try {
    const u = usernameCaseMapped(username);
    return /["&'/:<>@]/.test(u) ? null : u;
  } catch {
    return null;
  }
}

export function saslContext(
  users: UserStore,
  domain: string,
  channelBinding: (type: ChannelBindingType) => Buffer | null,
  verified?: VerifiedPasswordCache,
): SaslServerContext {
  return {
    channelBinding,
    async getScramCredentials(username: string, hash: ScramHash): Promise<ScramCredentials | null> {
      const local = normalizeUsername(username);
      if (local === null) return null;
      return users.getCredentials(domain, local, hash);
    },
    async verifyPlain(username: string, password: string): Promise<boolean> {
      const local = normalizeUsername(username);
      const creds = local === null ? null : await users.getCredentials(domain, local, 'SHA-256');
      if (creds && local !== null && verified?.has(local, password, creds.storedKey)) return true;
      // SECURITY: the same PBKDF2 work for unknown users, so timing does not tell them apart.
      const ok = await checkScramPassword(password, 'SHA-256', creds ?? fakeScramCredentials(username, 'SHA-256'));
      if (ok && creds && local !== null) verified?.remember(local, password, creds.storedKey);
      return ok && creds !== null;
    },
  };
}
