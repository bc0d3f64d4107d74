/**
 * Presence held back for a client that does not need it at once: an inactive client
 * (XEP-0352 §3.2) or a session waiting for resumption (XEP-0198). Only the latest
 * presence of each sender (full JID) is kept, as BOSH groups presence; subscription
 * requests and errors are never held.
 */
import type { XmlElement } from '../xml/element.js';

export interface HeldPresence {
  xml: string;
  el: XmlElement;
}

export class PresenceBuffer {
  readonly #byFrom = new Map<string, HeldPresence>();

  /** Available and unavailable presence with a sender: the kind a newer one replaces. */
  static holds(el: XmlElement | undefined): el is XmlElement {
    if (el === undefined) return false;
    const type = el.attrs.type;
    return (type === undefined || type === 'unavailable') && el.attrs.from !== undefined;
  }

  /** Keeps `el` as the sender's latest presence; it goes out after older ones of others. */
  add(xml: string, el: XmlElement): void {
    const from = el.attrs.from!;
    if (this.#byFrom.has(from)) this.#byFrom.delete(from);
    this.#byFrom.set(from, { xml, el });
  }

  get size(): number {
    return this.#byFrom.size;
  }

  /** Everything held, in the order the latest updates came; the buffer is empty after. */
  take(): HeldPresence[] {
    const out = [...this.#byFrom.values()];
    this.#byFrom.clear();
    return out;
  }
}
