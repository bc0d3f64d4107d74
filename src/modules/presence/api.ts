/**
 * The presence module's contract: presence follows policy changes and gone sessions.
 * Other modules see this contract only (through `ctx.service`), never the module itself.
 */
import type { Jid } from '../../xmpp/jid.js';
import type { LocalSession } from '../../core/session.js';

/** Who sees which of a user's resources: kept in line with policy changes (presence module). */
export interface PresenceService {
  /**
   * Runs `change` (a change of `user`'s privacy lists, blocklist or invisibility) and
   * makes presence follow it: unavailable to whoever stopped seeing one of the user's
   * resources, the resource's current presence — once — to whoever started to, and the
   * same for contacts' presence the user stopped or started seeing. `forgetDirected`: a
   * session whose directed-presence targets are to be treated as gone (going invisible);
   * `republish`: a session whose presence goes to everyone who sees it after the change,
   * old audience included (going visible).
   */
  applyPolicyChange<T>(user: Jid, change: () => T | Promise<T>, opts?: { forgetDirected?: LocalSession; republish?: LocalSession }): Promise<T>;
  /**
   * Resources that ended without saying so (their cluster node died): their unavailable
   * presence goes to the users' subscribers and other resources, once. `last`: the gone
   * sessions' last known state (their stand-ins), by full JID; with it, the unavailable
   * goes only where their presence was allowed to go (not for an invisible resource).
   */
  sessionsGone(jids: Jid[], last?: ReadonlyMap<string, LocalSession>): Promise<void>;
}

declare module '../../core/services.js' {
  interface Services {
    presence: PresenceService;
  }
}
