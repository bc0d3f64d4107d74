/** Making stored credentials from a password. */
import { deriveScramCredentials } from '../xmpp/sasl/scram.js';
import { preparePassword } from '../xmpp/sasl/prep.js';
import type { AccountCredentials } from './user-store.js';

/** SCRAM credentials for both hashes, each with its own random salt. Throws on a password OpaqueString refuses. */
export async function makeCredentials(password: string): Promise<AccountCredentials> {
  preparePassword(password);
  const [sha1, sha256] = await Promise.all([deriveScramCredentials(password, 'SHA-1'), deriveScramCredentials(password, 'SHA-256')]);
  return { sha1, sha256 };
}
