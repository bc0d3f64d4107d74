/**
 * What the core and the modules see of a client session. The c2s state machine
 * implements it; modules never see sockets or transports.
 */
import type { XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import type { StreamError } from '../xmpp/errors.js';

export type TransportKind = 'tcp' | 'bosh' | 'websocket';
export type StanzaKind = 'message' | 'presence' | 'iq';

/** Session traits other nodes of a cluster need to act on (bits of LocalSession.flags). */
export const SessionFlag = {
  /** XEP-0280: the resource takes carbon copies. */
  Carbons: 1,
  /** XEP-0186: the resource is invisible (the server sends no presence for it). */
  Invisible: 2,
} as const;

/**
 * A client session: one of this node's (the c2s state machine) or, in a cluster, a
 * stand-in for one on another node (`node` set; delivering forwards to that node).
 */
export interface LocalSession {
  /** Stream id: unique per session. */
  readonly id: string;
  /** Full JID (valid once bound). */
  readonly jid: Jid;
  readonly transport: TransportKind;
  readonly isSecure: boolean;
  /** The client's address (for logs and limits). */
  readonly remoteAddress: string;
  /** Priority of the last available presence (RFC 6121 §4.7.2.3). */
  priority: number;
  /** The last available presence the client broadcast, or null when unavailable. */
  presence: XmlElement | null;
  /** The client asked for its roster: it gets roster pushes (RFC 6121 §2.1.6). */
  rosterRequested: boolean;
  /** SessionFlag bits; a module that changes one calls sessions.changed(session). */
  flags: number;
  /**
   * The session's active privacy list (XEP-0016 §2.2), null or absent without one: set by
   * the privacy module and published, so other nodes judge the session's stanzas by it.
   */
  privacyList?: string | null;
  /** When the resource was bound (ms since the epoch). */
  readonly boundAt?: number;
  /** The cluster node that holds the session when it is not this one. */
  readonly node?: string;
  readonly isAvailable: boolean;
  /** Waiting for stream resumption (XEP-0198), for the metrics; absent on remote sessions. */
  readonly isHibernated?: boolean;
  readonly isClosed: boolean;
  /**
   * Sends one stanza to the client. `together`: every session the stanza is delivered to
   * at once (a message to a bare JID goes to each resource of the highest priority), this
   * one included; a stand-in for another node's session passes it on, so that a copy
   * that cannot be delivered tells whether the user has it already.
   */
  deliver(stanza: XmlElement, together?: readonly LocalSession[]): void;
  /**
   * Sends a stanza already serialized (fan-out: serialize once, send many). `el` is the
   * element behind it, kept when it is a message so it can be handed to offline storage
   * if the session ends before it is written.
   */
  deliverSerialized(xml: string, kind: StanzaKind, el?: XmlElement): void;
  /** Ends the session, with a stream error if given. */
  close(error?: StreamError): void;
}
