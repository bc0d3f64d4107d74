/**
 * A session on another node, as this node sees it (from the directory replica): what the
 * router and the modules read of a session (JID, priority, presence, flags), and
 * delivery that forwards to the node holding it. Stand-ins are kept per full JID and
 * updated in place when the directory entry changes.
 */
import { parseElement } from '../xml/parse.js';
import type { XmlElement } from '../xml/element.js';
import { serialize } from '../xml/serializer.js';
import { Jid } from '../xmpp/jid.js';
import type { StreamError } from '../xmpp/errors.js';
import { type LocalSession, type StanzaKind, type TransportKind } from '../core/session.js';
import type { ReplicaEntry, SessionState } from './session-directory.js';

/** What a stand-in forwards through (the cluster's links). */
export interface Forwarder {
  /** Sends a stanza to a session of `node`; false when it cannot be queued. */
  /** `copies`: the other resources the same message went to at once. */
  deliver(node: string, to: string, xml: string, kind: StanzaKind, el: XmlElement | undefined, copies?: string[]): void;
  close(node: string, to: string, error: StreamError | undefined, boundBefore: number): void;
}

export const ROSTER_REQUESTED = 1 << 8;

export class RemoteSession implements LocalSession, ReplicaEntry {
  readonly full: string;
  readonly transport: TransportKind = 'tcp';
  readonly isSecure = true;
  readonly remoteAddress = '';
  node: string;
  priority = 0;
  flags = 0;
  rosterRequested = false;
  privacyList: string | null = null;
  boundAt = 0;
  #jid: Jid | undefined;
  #available = false;
  #presenceXml: string | undefined;
  #presence: XmlElement | null | undefined;
  #closed = false;
  readonly #fw: Forwarder;

  constructor(full: string, node: string, fw: Forwarder) {
    this.full = full;
    this.node = node;
    this.#fw = fw;
  }

  /** Parsed on first use: most stand-ins are never looked at closely. */
  get jid(): Jid {
    return (this.#jid ??= Jid.parse(this.full));
  }

  get id(): string {
    return `${this.node}/${this.full}`;
  }

  assign(e: SessionState): void {
    this.priority = e.priority;
    this.boundAt = e.bound ?? 0;
    this.#available = e.available;
    const f = e.flags ?? 0;
    this.flags = f & 0xff;
    this.rosterRequested = (f & ROSTER_REQUESTED) !== 0;
    this.privacyList = e.list ?? null;
    if (e.presence !== this.#presenceXml) {
      this.#presenceXml = e.presence;
      this.#presence = undefined;
    }
  }

  get presence(): XmlElement | null {
    if (this.#presence === undefined) {
      try {
        this.#presence = this.#available && this.#presenceXml ? parseElement(this.#presenceXml) : null;
      } catch {
        this.#presence = null;
      }
    }
    return this.#presence;
  }

  set presence(_p: XmlElement | null) {
    // Only the node holding the session changes its presence.
  }

  get isAvailable(): boolean {
    return this.#available && !this.#closed && this.#presenceXml !== undefined;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** The directory entry is gone (the session ended, or its node died). */
  gone(): void {
    this.#closed = true;
  }

  deliver(stanza: XmlElement, together?: readonly LocalSession[]): void {
    const copies = together ? together.map((s) => s.jid.full).filter((j) => j !== this.full) : undefined;
    this.#fw.deliver(this.node, this.full, serialize(stanza), stanza.name as StanzaKind, stanza, copies);
  }

  deliverSerialized(xml: string, kind: StanzaKind, el?: XmlElement): void {
    this.#fw.deliver(this.node, this.full, xml, kind, el);
  }

  close(error?: StreamError): void {
    this.#fw.close(this.node, this.full, error, Date.now());
  }
}
