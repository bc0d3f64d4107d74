/**
 * The types of IQ handling and disco that modules, the IQ dispatcher and the disco
 * registry share (kept apart from module.ts so that those files do not import each other).
 */
import type { XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';
import type { HostScope } from './hosts.js';

export type IqType = 'get' | 'set';
/**
 * `host`: IQs to the server's domain; `account`: IQs to a user's bare JID (or with no
 * `to`); `{ host }`: IQs to a host a module serves (`ctx.addHost`), `{ host: '*' }`: to
 * every such host (see HostScope).
 */
export type IqScope = 'host' | 'account' | HostScope;

export interface IqRequest {
  stanza: XmlElement;
  type: IqType;
  /** The one child element of the IQ. */
  payload: XmlElement;
  from: Jid;
  /** The addressed entity: the domain (host scope) or a bare JID (account scope). */
  to: Jid;
  /** The sender addressed its own account. */
  isSelf: boolean;
  /** The local session the IQ came from, when it came from one. */
  session: LocalSession | null;
}

/** Returns the result payload, null for an empty result, or throws StanzaError. */
export type IqHandler = (req: IqRequest) => XmlElement | null | Promise<XmlElement | null>;

export interface Identity {
  category: string;
  type: string;
  name?: string;
}

