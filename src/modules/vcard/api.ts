/**
 * The vCard module's contract (XEP-0054), for other modules and the portal's profile events.
 * Other modules see this contract only (through `ctx.service`), never the module itself.
 */
import type { XmlElement } from '../../xml/element.js';
import type { Jid } from '../../xmpp/jid.js';

/** vCards (XEP-0054) for other modules and the portal's profile events. */
export interface VcardService {
  /**
   * Stores a user's vCard as if the user had set it (size limit, avatar hash, presence
   * with the new hash to contacts, avatar to PEP). Returns the new photo hash when the
   * photo changed, else null.
   */
  set(user: Jid, vcard: XmlElement): Promise<string | null>;
}

declare module '../../core/services.js' {
  interface Services {
    vcard: VcardService;
  }
}
