/**
 * The PEP module's contract (XEP-0163): publishing on a user's nodes for other modules.
 * Other modules see this contract only (through `ctx.service`), never the module itself.
 */
import type { XmlElement } from '../../xml/element.js';
import type { Jid } from '../../xmpp/jid.js';

/** One item of a PEP node (XEP-0060 §7.1): its id and its one payload element. */
export interface PepItem {
  id: string;
  payload: XmlElement;
}

/** The personal eventing service of every account (XEP-0163), for other modules. */
export interface PepService {
  /**
   * Publishes an item on a user's node on the server's behalf, as if the owner did:
   * creates the node when missing (with `accessModel`, default the service default),
   * stores the item and notifies. Runs the `pep-published` hook with byServer = true.
   */
  publish(owner: Jid, node: string, item: PepItem, opts?: { accessModel?: 'open' | 'presence' | 'whitelist' }): Promise<void>;
  /** One item by id, or the latest item when `id` is undefined; null when none. */
  getItem(owner: Jid, node: string, id?: string): Promise<PepItem | null>;
}

declare module '../../core/services.js' {
  interface Services {
    pep: PepService;
  }
}

declare module '../../core/hooks.js' {
  interface NotifyHooks {
    /**
     * An item was published on a node of a user's PEP service (XEP-0163), after it was
     * stored and notifications went out. `byServer`: a module published it (XEP-0398
     * conversion), not one of the user's clients.
     */
    'pep-published': (owner: Jid, node: string, item: { id: string; payload: XmlElement }, byServer: boolean) => void | Promise<void>;
  }
}
