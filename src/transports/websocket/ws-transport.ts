/**
 * XMPP over WebSocket: `<open/>` and `<close/>` framing, one complete element per
 * message, the same c2s session as TCP and BOSH behind it.
 * References: RFC 7395 §3.3 (framing), §3.4 (stream initiation), §3.5 (restart),
 * §3.6 (closing, see-other-uri), §3.7 (stream errors), §4 (ping/pong).
 */
import type { WebSocket } from 'ws';
import type { XmlElement } from '../../xml/element.js';
import { XmlStreamParser, stanzaSizeErrorText, type XmlParserLimits } from '../../xml/parser.js';
import { openTag, serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { StreamError } from '../../xmpp/errors.js';
import type { ChannelBindingType } from '../../xmpp/sasl/scram.js';
import type { C2sStreamEvents, C2sTransport, OutboundKind, StreamHeader } from '../../c2s/transport.js';
import { withClientNamespace } from '../bosh/body.js';

export const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';

export interface WsTransportOptions {
  limits: XmlParserLimits;
  isSecure: boolean;
  closeTimeoutMs: number;
  maxSendBuffer: number;
}

export class WsTransport implements C2sTransport {
  readonly kind = 'websocket' as const;
  readonly remoteAddress: string;
  readonly isSecure: boolean;
  readonly canStartTls = false;
  /** Answered the last ping (the gateway's keep-alive sweep reads and resets it). */
  alive = true;
  readonly #ws: WebSocket;
  readonly #opts: WsTransportOptions;
  readonly #parser: XmlStreamParser;
  #events: C2sStreamEvents | null = null;
  #elementsInMessage = 0;
  #closing = false;
  /** While closing, waiting for the client's <close/> (a timer); undefined once the connection is being closed. */
  #linger: NodeJS.Timeout | null | undefined = null;
  /** The WebSocket status our close sends (1000, or 1009 for a frame over the payload bound). */
  #closeCode = 1000;
  #closed = false;
  /** Messages sent whose write has not completed. */
  #inFlight: Set<XmlElement> | null = null;
  /** Messages that could not be sent at all. */
  #failed: XmlElement[] | null = null;

  constructor(ws: WebSocket, remoteAddress: string, opts: WsTransportOptions) {
    this.#ws = ws;
    this.#opts = opts;
    this.remoteAddress = remoteAddress;
    this.isSecure = opts.isSecure;
    this.#parser = new XmlStreamParser(
      {
        onStreamStart() {},
        onElement: (el) => {
          this.#elementsInMessage++;
          this.#element(el);
        },
        onStreamEnd() {},
        onError: (condition, text) => {
          this.#events?.onStreamError(new StreamError(condition, text));
        },
      },
      { framed: true, limits: opts.limits },
    );
    // COMPAT(ws): a message over `maxPayload` makes ws close the connection with 1009 at
    // once; the client gets the XMPP stream error first (RFC 7395 §3.7), as on TCP.
    const wsClose = ws.close.bind(ws);
    ws.close = (code?: number, data?: string | Buffer) => {
      if (code === 1009 && !this.#closing && !this.#closed && this.#events) {
        this.#closeCode = 1009; // the WebSocket status says it too: message too big
        this.#events.onStreamError(new StreamError('policy-violation', stanzaSizeErrorText(opts.limits.maxStanzaBytes)));
        if (this.#closing) return;
      }
      wsClose(code, data);
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#message(data, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => {
      this.#closed = true;
      this.#events?.onDisconnect();
    });
    ws.on('error', () => undefined); // 'close' follows
  }

  bind(events: C2sStreamEvents | null): void {
    this.#events = events;
  }

  #message(data: Buffer, isBinary: boolean): void {
    // After this side's <close/>, messages are still parsed: the session reads the client's
    // stream management acknowledgement (and nothing else) until the connection ends.
    if (this.#closed) return;
    if (isBinary) {
      this.#events?.onStreamError(new StreamError('bad-format', 'XMPP over WebSocket uses text messages'));
      return;
    }
    this.#elementsInMessage = 0;
    this.#parser.write(data);
    if (this.#parser.failed || this.#closing) return;
    // RFC 7395 §3.3.3: each message carries exactly one complete element.
    if (!this.#parser.isBetweenElements || this.#elementsInMessage !== 1) {
      this.#events?.onStreamError(new StreamError('not-well-formed', 'each WebSocket message must hold one complete XML element'));
    }
  }

  #element(el: XmlElement): void {
    if (el.ns === NS_FRAMING) {
      if (el.name === 'open') this.#events?.onStreamOpen(el.attrs, NS.CLIENT);
      else if (el.name === 'close') {
        if (this.#closing) this.#endConnection();
        else this.#events?.onStreamClose();
      }
      else this.#events?.onStreamError(new StreamError('unsupported-stanza-type', `unknown framing element <${el.name}/>`));
      return;
    }
    this.#events?.onStanza(el);
  }

  /** Pings for the keep-alive sweep; a connection that missed the last pong is ended. */
  keepAlive(): void {
    if (this.#closed) return;
    if (!this.alive) {
      this.#ws.terminate();
      return;
    }
    this.alive = false;
    this.#ws.ping();
  }

  // ------------------------------------------------------------------ C2sTransport

  startTls(): void {
    throw new Error('WebSocket has no STARTTLS');
  }

  channelBinding(_type: ChannelBindingType): Buffer | null {
    return null;
  }

  open(header: StreamHeader, features: XmlElement): void {
    this.#raw(
      openTag('open', { xmlns: NS_FRAMING, id: header.id, from: header.from, version: header.version, 'xml:lang': header.lang }).replace(/>$/, '/>'),
    );
    this.#raw(withStreamPrefix(serialize(features)));
  }

  send(xml: string, kind: OutboundKind, el?: XmlElement): void {
    if (kind === 'nonza') {
      this.#raw(withStreamPrefix(xml));
      return;
    }
    const message = kind === 'message' ? el : undefined;
    if (this.#closing || this.#closed) {
      if (message) (this.#failed ??= []).push(message);
      return;
    }
    const data = withClientNamespace(xml);
    if (!message) {
      this.#ws.send(data);
    } else {
      (this.#inFlight ??= new Set()).add(message);
      this.#ws.send(data, (err) => {
        if (err) return; // stays in flight: handed back as undelivered
        this.#inFlight?.delete(message);
      });
    }
    // SECURITY: a client that stops reading must not make the server buffer without bound.
    if (this.#ws.bufferedAmount > this.#opts.maxSendBuffer) {
      this.#events?.onStreamError(new StreamError('policy-violation', 'the client is not reading its stream'));
    }
  }

  #raw(data: string): void {
    if (this.#closing || this.#closed) return;
    this.#ws.send(data);
  }

  restart(): void {
    // RFC 7395 §3.5: the client sends a new <open/>; nothing to reset in framed parsing.
  }

  close(error?: StreamError, awaitReply = false): void {
    if (this.#closing || this.#closed) return;
    if (error && error.condition === 'see-other-host' && error.target) {
      this.#raw(`<close xmlns='${NS_FRAMING}' see-other-uri='${error.target.replace(/'/g, '&apos;')}'/>`);
    } else {
      if (error) this.#raw(withStreamPrefix(serialize(error.toElement())));
      this.#raw(`<close xmlns='${NS_FRAMING}'/>`);
    }
    this.#closing = true;
    if (!awaitReply) {
      this.#endConnection();
      return;
    }
    // RFC 7395 §3.6: the stream is closed when the client's <close/> comes; the WebSocket
    // closing handshake follows. A client whose WebSocket is closing can no longer send,
    // so its last acknowledgement would be cut off by closing at once.
    this.#linger = setTimeout(() => this.#endConnection(), this.#opts.closeTimeoutMs);
    this.#linger.unref();
  }

  /** The WebSocket closing handshake, and the end of the connection after the close timeout at most. */
  #endConnection(): void {
    if (this.#linger === undefined) return;
    if (this.#linger !== null) clearTimeout(this.#linger);
    this.#linger = undefined;
    this.#ws.close(this.#closeCode);
    setTimeout(() => this.#ws.terminate(), this.#opts.closeTimeoutMs).unref();
  }

  takeUndelivered(): XmlElement[] {
    const out = [...(this.#inFlight ?? []), ...(this.#failed ?? [])];
    this.#inFlight = null;
    this.#failed = null;
    return out;
  }
}

/** Elements of the stream namespace stand alone in a WebSocket message: declare the prefix. */
function withStreamPrefix(xml: string): string {
  if (!xml.startsWith('<stream:')) return xml;
  const space = xml.indexOf(' ');
  const end = xml.indexOf('>');
  const at = space > 0 && space < end ? space : xml.charCodeAt(end - 1) === 47 ? end - 1 : end;
  return xml.slice(0, at) + ` xmlns:stream='${NS.STREAM}'` + xml.slice(at);
}
