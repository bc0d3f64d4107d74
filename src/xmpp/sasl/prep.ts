/**
 * String preparation for SASL: passwords, and the name unknown users' stand-in SCRAM
 * credentials are keyed on.
 * References: RFC 8265 §4.2 (OpaqueString), §3.3 (UsernameCaseMapped), RFC 6120 §6.3.8 and RFC 5802 §2.2
 * (the "Normalize" step, originally SASLprep — RFC 4013 — which RFC 8265 replaces).
 *
 * Every password that enters a SASL computation in Parley (PLAIN verification, SCRAM
 * credential derivation, the SCRAM client) goes through `preparePassword`, so stored keys
 * and login attempts are always prepared the same way.
 */
import { PrecisError, opaqueString, usernameCaseMapped } from '../precis.js';

export { PrecisError };

/**
 * Prepares a password with the PRECIS OpaqueString profile.
 * Throws `PrecisError` when the password is not valid under the profile, e.g. empty or
 * containing control characters.
 *
 * @example
 * preparePassword('pencil'); // 'pencil'
 * preparePassword('p\u00A0w'); // 'p w' (non-ASCII space mapped to U+0020)
 */
export function preparePassword(s: string): string {
  return opaqueString(s);
}

/**
 * The name the stand-in credentials of an unknown SCRAM user are keyed on: the localpart
 * as XMPP compares it (RFC 7622 §3.3, UsernameCaseMapped), so "Nobody" and "nobody" get
 * the same fake salt just as "Juliet" and "juliet" get the same real one. A name the
 * profile rejects cannot belong to anyone and is used as sent.
 */
export function fakeCredentialsName(s: string): string {
  try {
    return usernameCaseMapped(s);
  } catch (err) {
    if (err instanceof PrecisError) return s;
    throw err;
  }
}
