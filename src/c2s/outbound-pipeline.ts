/**
 * The outbound pipeline of one c2s session: what happens to a stanza on its way to the
 * client once the core delivers it. It is counted, serialized once (a fan-out hands the
 * bytes in, serialized once for every recipient), held back when the client does not
 * need it yet (presence for an inactive client or a hibernated session: the latest per
 * sender), queued until acknowledged with stream management, and written to the session's
 * connection. Without stream management and with nothing held, a stanza goes straight to
 * the connection (the fast path).
 * References: XEP-0352 §3.2, §4.2, §5.2 (client state indication: what may wait);
 * XEP-0198 §4 (every stanza sent is counted and queued), §5 (nothing is written while
 * hibernated); DESIGN.md (serialize once).
 */
import type { XmlElement } from '../xml/element.js';
import { serialize } from '../xml/serializer.js';
import type { StanzaKind } from '../core/session.js';
import type { C2sCore } from './c2s-endpoint.js';
import { PresenceBuffer } from './presence-buffer.js';
import type { SmDriver } from './sm-driver.js';
import type { C2sTransport, OutboundKind } from './transport.js';

/** What the pipeline needs of its session (read at every write: they change). */
export interface OutboundHost {
  /** The connection to write to (another one after a resumption). */
  readonly connection: C2sTransport;
  /** Stream management, once the client enabled it. */
  readonly streamManagement: SmDriver | null;
  /** No connection, waiting for resumption: nothing is written, stanzas are queued. */
  readonly isHibernated: boolean;
}

/** The kind of a top-level element: a stanza, or a nonza (features, SASL, stream management). */
export function kindOf(el: XmlElement): OutboundKind {
  const n = el.name;
  return n === 'message' || n === 'presence' || n === 'iq' ? n : 'nonza';
}

/** The way out of one session. The session calls it only while it is open (not closing). */
export class OutboundPipeline {
  readonly #core: C2sCore;
  readonly #host: OutboundHost;
  /** Presence held back (client inactive, or hibernated); null when nothing is held back. */
  #held: PresenceBuffer | null = null;
  /** The client said `<inactive/>` (XEP-0352). */
  #inactive = false;

  constructor(core: C2sCore, host: OutboundHost) {
    this.#core = core;
    this.#host = host;
  }

  /** The client said it is inactive (XEP-0352). */
  get isInactive(): boolean {
    return this.#inactive;
  }

  /** A stanza the core delivers to the client. */
  deliver(stanza: XmlElement): void {
    const kind = kindOf(stanza);
    if (kind !== 'nonza') {
      const stats = this.#core.stats;
      stats.stanzasOut[kind]++;
    }
    if (this.#host.streamManagement === null && this.#held === null) this.#host.connection.send(serialize(stanza), kind, stanza);
    else this.#deliverManaged(serialize(stanza), kind, stanza);
  }

  /** A stanza the core delivers already serialized (a fan-out: serialized once for all). */
  deliverSerialized(xml: string, kind: StanzaKind, el?: XmlElement): void {
    const stats = this.#core.stats;
    stats.stanzasOut[kind]++;
    if (this.#host.streamManagement === null && this.#held === null) this.#host.connection.send(xml, kind, el);
    else this.#deliverManaged(xml, kind, el);
  }

  /** An element of the session's own (an answer, an error, a stream management element): never held. */
  send(el: XmlElement): void {
    this.#write(serialize(el), kindOf(el), el);
  }

  /**
   * XEP-0352 §4.2: the client's state. Inactive: presence is held (latest per sender);
   * active: what was held goes out at once.
   */
  setInactive(inactive: boolean): void {
    this.#inactive = inactive;
    if (inactive) this.#held ??= new PresenceBuffer();
    else this.#flushHeld();
  }

  /** The session hibernates: presence is held until it is resumed (or ends). */
  holdPresence(): void {
    this.#held ??= new PresenceBuffer();
  }

  /** The session ends: what is held is let go (presence is not handed to offline storage). */
  stop(): void {
    this.#held = null;
  }

  /** Delivery with stream management, held presence, or both. */
  #deliverManaged(xml: string, kind: OutboundKind, el: XmlElement | undefined): void {
    const held = this.#held;
    if (held !== null) {
      if (kind === 'presence' && PresenceBuffer.holds(el)) {
        held.add(xml, el);
        if (held.size > this.#core.config.csi.maxHeld) this.#flushHeld();
        return;
      }
      // Messages and other presence never wait, and what was held goes out before them
      // (a contact's presence before its message). IQs do not need that order.
      if (kind !== 'iq' && held.size > 0 && !this.#host.isHibernated) this.#flushHeld();
    }
    this.#write(xml, kind, el);
  }

  /** Sends what was held back, in order; stops holding unless the client is inactive or hibernated. */
  #flushHeld(): void {
    const held = this.#held;
    if (held === null) return;
    if (!this.#inactive && !this.#host.isHibernated) this.#held = null;
    for (const p of held.take()) this.#write(p.xml, 'presence', p.el);
  }

  /**
   * Every element for the client goes through here: with stream management a stanza is
   * counted and queued until acknowledged (the driver writes it); a hibernated session
   * writes nothing.
   */
  #write(xml: string, kind: OutboundKind, el: XmlElement | undefined): void {
    const sm = this.#host.streamManagement;
    if (sm === null || kind === 'nonza') {
      if (!this.#host.isHibernated) this.#host.connection.send(xml, kind, el);
      return;
    }
    sm.push(xml, kind, el);
  }
}
