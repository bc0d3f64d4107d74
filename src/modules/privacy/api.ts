/**
 * The privacy module's contract: what presence needs of invisibility (XEP-0186).
 * Other modules see this contract only (through `ctx.service`), never the module itself.
 */
import type { LocalSession } from '../../core/session.js';

/**
 * XEP-0186 invisibility, for the presence module (privacy module). Hiding an invisible
 * resource's presence is the privacy out-filter's job (router.checkOut).
 */
export interface PrivacyService {
  /**
   * Should the server give the session its contacts' presence when it sends initial
   * presence? False for a session that went invisible with probe='false' (XEP-0186 §3.1).
   */
  probesContacts(session: LocalSession): boolean;
}

declare module '../../core/services.js' {
  interface Services {
    privacy: PrivacyService;
  }
}
