/**
 * A stanza on its way through the server, with what the parts learn about it: who sent it
 * and to whom, the local session it came from, when it entered the router, the archive
 * ids the delivery stages gave it. One envelope per routing; it replaces the
 * `(stanza, from, to, session)` arguments and the side tables keyed by stanza that the
 * parts used to share.
 */
import type { XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';

export class Envelope {
  #stanzaIds: Map<string, string> | undefined;

  constructor(
    /** The stanza as it is delivered and stored; a stage may add to it (a XEP-0359 stanza-id). */
    readonly stanza: XmlElement,
    readonly from: Jid,
    /** As addressed: a bare JID, a full JID, a host. */
    readonly to: Jid,
    /** The local session the stanza came from; null when the server, a module, another node or a component sent it. */
    readonly session: LocalSession | null = null,
    /** When the stanza entered the router (performance.now(); 0 when not timed): the routing histogram's start. */
    readonly enteredAt = 0,
  ) {}

  /**
   * Archive ids the delivery stages gave the message (XEP-0359), by archive owner (bare
   * JID): the recipient's one is also in the stanza; the sender's one goes into its sent
   * carbon copies.
   */
  get stanzaIds(): Map<string, string> {
    return (this.#stanzaIds ??= new Map());
  }

  /** The same stanza, addressed again (re-routing, an account instead of a gone resource). */
  readdressed(to: Jid, from: Jid = this.from): Envelope {
    return new Envelope(this.stanza, from, to, this.session, this.enteredAt);
  }
}
