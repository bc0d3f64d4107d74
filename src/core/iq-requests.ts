/**
 * IQs the server sends on its own or an account's behalf, and the correlation of their
 * replies (RFC 6120 §8.2.3): only a reply from the addressed JID, to the sender, with the
 * same id counts. In a cluster the id names the node that sent the request, so a reply
 * routed on another node is passed to it.
 */
import type { XmlElement } from '../xml/element.js';
import { StanzaError } from '../xmpp/errors.js';
import type { Jid } from '../xmpp/jid.js';

/** Bound on IQs the server waits for at once. */
const MAX_PENDING_IQS = 10_000;

/** How a reply to an IQ another node sent reaches that node. */
export interface IqReplyForwarder {
  readonly nodeId: string;
  routeOn(node: string, stanza: XmlElement): boolean;
}

export class IqRequests {
  readonly #pending = new Map<string, { to: string; from: string; resolve(reply: XmlElement): void; timer: NodeJS.Timeout }>();
  #seq = 0;
  #cluster: IqReplyForwarder | null = null;

  attachCluster(c: IqReplyForwarder | null): void {
    this.#cluster = c;
  }

  /**
   * Stamps `iq` with a fresh id, `from` and `to`, and resolves with the reply; rejects
   * after `timeoutMs`, or at once when too many requests wait. `send` routes the IQ.
   */
  request(iq: XmlElement, from: Jid, to: Jid, timeoutMs: number, send: (iq: XmlElement) => void): Promise<XmlElement> {
    if (this.#pending.size >= MAX_PENDING_IQS) return Promise.reject(new StanzaError('resource-constraint', 'too many IQs waiting for a reply'));
    const node = this.#cluster?.nodeId;
    const id = `parley-${(++this.#seq).toString(36)}-${Math.random().toString(36).slice(2, 10)}${node ? `@${node}` : ''}`;
    iq.attrs.id = id;
    iq.attrs.from = from.full;
    iq.attrs.to = to.full;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new StanzaError('remote-server-timeout', 'no reply to the IQ'));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { to: to.full, from: from.full, resolve, timer });
      send(iq);
    });
  }

  /**
   * A result or error IQ for the server or an account: the reply to a request (resolved
   * here or passed to the node that sent it). False when it answers nothing (the caller
   * drops it).
   */
  take(stanza: XmlElement, from: Jid, to: Jid): boolean {
    const id = stanza.attrs.id;
    if (id === undefined) return false;
    const c = this.#cluster;
    if (c && id.startsWith('parley-')) {
      const at = id.lastIndexOf('@');
      const node = at < 0 ? '' : id.slice(at + 1);
      if (node !== '' && node !== c.nodeId) return c.routeOn(node, stanza);
    }
    if (this.#pending.size === 0) return false;
    const p = this.#pending.get(id);
    // SECURITY: only the addressed entity may answer (no spoofed replies from others).
    if (!p || p.to !== from.full || p.from !== to.full) return false;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(stanza);
    return true;
  }
}
