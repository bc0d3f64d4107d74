/**
 * IQ dispatch (RFC 6120 §8.2.3): handlers are keyed by type, scope (the server, an
 * account, a host a module serves), namespace and name of the payload, like Prosody's
 * `iq-get/host/urn:xmpp:ping:ping`. An IQ nobody handles
 * gets service-unavailable; `result` and `error` IQs are never answered.
 */
import type { Logger } from 'pino';
import { XmlElement } from '../xml/element.js';
import { StanzaError } from '../xmpp/errors.js';
import type { Jid } from '../xmpp/jid.js';
import type { IqHandler, IqScope, IqType } from './iq-types.js';
import type { LocalSession } from './session.js';
import { ANY_HOST, scopeKey } from './hosts.js';

interface Registered {
  handler: IqHandler;
  owner: string;
}

export class IqDispatcher {
  readonly #handlers = new Map<string, Registered>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  register(type: IqType, scope: IqScope, ns: string, name: string, handler: IqHandler, owner: string): () => void {
    const key = keyOf(type, scope, ns, name);
    const existing = this.#handlers.get(key);
    if (existing) throw new Error(`IQ ${key} is already handled by module ${existing.owner}`);
    const entry = { handler, owner };
    this.#handlers.set(key, entry);
    return () => {
      if (this.#handlers.get(key) === entry) this.#handlers.delete(key);
    };
  }

  /**
   * Handles a get/set IQ addressed to the server or to an account. Resolves with the
   * reply stanza (result or error), never rejects.
   */
  async dispatch(stanza: XmlElement, from: Jid, to: Jid, scope: IqScope, session: LocalSession | null): Promise<XmlElement> {
    const type = stanza.attrs.type as IqType;
    try {
      const children = stanza.elements();
      if (children.length !== 1) throw new StanzaError('bad-request', 'an IQ get or set carries exactly one child element');
      const payload = children[0]!;
      // A module host's own handler first, then one for every module host (disco).
      const entry = this.#handlers.get(keyOf(type, scope, payload.ns, payload.localName)) ?? (typeof scope === 'string' ? undefined : this.#handlers.get(keyOf(type, { host: ANY_HOST }, payload.ns, payload.localName)));
      if (!entry) throw new StanzaError('service-unavailable');
      const result = await entry.handler({ stanza, type, payload, from, to, isSelf: from.bare === to.bare, session });
      return iqResult(stanza, to, from, result);
    } catch (e) {
      if (e instanceof StanzaError) return iqError(stanza, to, from, e);
      this.#log.error({ err: e, iq: stanza.attrs.id }, 'IQ handler failed');
      return iqError(stanza, to, from, new StanzaError('internal-server-error'));
    }
  }
}

function keyOf(type: IqType, scope: IqScope, ns: string, name: string): string {
  return `${type}/${scopeKey(scope)}/${ns}:${name}`;
}

/** `<iq type='result'/>` answering `req`, from `from` to `to`. */
export function iqResult(req: XmlElement, from: Jid | string, to: Jid | string, payload: XmlElement | null): XmlElement {
  const el = new XmlElement('iq', { type: 'result', id: req.attrs.id ?? '', from: String(from), to: String(to) });
  if (payload) el.append(payload);
  return el;
}

/** `<iq type='error'/>` answering `req`. */
export function iqError(req: XmlElement, from: Jid | string, to: Jid | string, error: StanzaError): XmlElement {
  const el = new XmlElement('iq', { type: 'error', id: req.attrs.id ?? '', from: String(from), to: String(to) });
  const payload = req.firstElement();
  if (payload) el.append(payload);
  el.append(error.toElement());
  return el;
}
