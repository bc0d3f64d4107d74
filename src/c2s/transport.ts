/**
 * What the c2s session needs from a transport. A transport only frames bytes: TCP
 * (stream header and STARTTLS), BOSH (bodies over HTTP) and WebSocket (RFC 7395
 * `<open/>`/`<close/>` frames) all drive the same session through these calls.
 */
import type { XmlElement } from '../xml/element.js';
import type { StreamError } from '../xmpp/errors.js';
import type { ChannelBindingType } from '../xmpp/sasl/scram.js';
import type { StanzaKind, TransportKind } from '../core/session.js';

/** Stanzas, or stream-level elements (features, SASL, stream management). */
export type OutboundKind = StanzaKind | 'nonza';

export interface StreamHeader {
  id: string;
  from: string;
  version: string;
  lang: string;
}

export interface C2sTransport {
  readonly kind: TransportKind;
  readonly remoteAddress: string;
  /** Encrypted, or behind a front that terminates TLS and is trusted to (http `secure`). */
  readonly isSecure: boolean;
  /** STARTTLS may be offered (TCP before TLS). */
  readonly canStartTls: boolean;
  /** Answers `<proceed/>` and upgrades; `done` runs once the handshake finished. */
  startTls(done: () => void): void;
  channelBinding(type: ChannelBindingType): Buffer | null;
  /** Opens the server side of a stream with its features. */
  open(header: StreamHeader, features: XmlElement): void;
  /**
   * Sends one serialized element. `kind` says what it is (BOSH delays presence, not
   * messages); `el` is the element behind it when known: a message is kept until it is
   * known to be delivered, so it can go to offline storage if the session ends first.
   */
  send(xml: string, kind: OutboundKind, el?: XmlElement): void;
  /** After SASL success: the next header from the client starts a new stream. */
  restart(): void;
  /**
   * Ends the stream (with an error if given) and then the connection. Until the connection
   * is gone the client's elements still reach the session (it reads a last stream
   * management acknowledgement). `awaitReply`: the session waits for such an answer, so a
   * transport whose connection closing cuts the client off (WebSocket) waits for the
   * client's own closing element, at most the close timeout, before ending the connection.
   */
  close(error?: StreamError, awaitReply?: boolean): void;
  /** Messages sent but not known to have reached the client. Called once, at the end. */
  takeUndelivered(): XmlElement[];
  /**
   * Points the transport's events at a session, or at nothing (null). Present on
   * transports that offer stream management (TCP, WebSocket): a resumed session takes
   * over the new connection, and the old one is detached before it is closed.
   */
  bind?(events: C2sStreamEvents | null): void;
}

/** What a transport calls on its session. */
export interface C2sStreamEvents {
  /** The client opened a stream. `contentNs` is its default namespace. */
  onStreamOpen(attrs: Record<string, string>, contentNs: string): void;
  onStanza(el: XmlElement): void;
  /** The client closed its stream. */
  onStreamClose(): void;
  /** The transport or its parser hit an error that ends the stream. */
  onStreamError(error: StreamError): void;
  /** The connection is gone. */
  onDisconnect(): void;
}
