/**
 * TCP framing for c2s: the XML stream over a socket, STARTTLS (RFC 6120 §5) and direct
 * TLS (XEP-0368). Framing and connection life only; everything else is the session's.
 *
 * Writes made in one turn of the event loop go out as one socket write. A message counts
 * as delivered once its write reached the kernel; messages still in user space when the
 * connection dies are handed back (`takeUndelivered`) for offline storage.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { XmlElement } from '../../xml/element.js';
import { XmlStreamParser, type XmlErrorCondition, type XmlParserHandler, type XmlParserLimits } from '../../xml/parser.js';
import { openTag, serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { StreamError } from '../../xmpp/errors.js';
import type { ChannelBindingType } from '../../xmpp/sasl/scram.js';
import type { C2sStreamEvents, C2sTransport, OutboundKind, StreamHeader } from '../../c2s/transport.js';

export interface TcpTransportOptions {
  limits: XmlParserLimits;
  secureContext: SecureContext;
  /** Hash for tls-server-end-point channel binding. */
  endPointHash: Buffer;
  /** Time the client has to close its side after we closed ours. */
  closeTimeoutMs: number;
  /** Bytes queued for a client that does not read before it is disconnected. */
  maxSendBuffer: number;
  /** The connection came in on the direct TLS port. */
  directTls: boolean;
}

/** A batch of writes whose callback has not fired: the messages in it are not delivered yet. */
interface InFlight {
  messages: XmlElement[];
}

export class TcpTransport implements C2sTransport {
  readonly kind = 'tcp' as const;
  readonly remoteAddress: string;
  readonly #opts: TcpTransportOptions;
  #socket: Socket;
  #secure: boolean;
  #events: C2sStreamEvents | null = null;
  readonly #parser: XmlStreamParser;
  #headerSent = false;
  #closing = false;
  #closed = false;
  #closeTimer: NodeJS.Timeout | null = null;
  // Output batching
  #out = '';
  #outMessages: XmlElement[] | null = null;
  #flushScheduled = false;
  #inFlight: InFlight[] | null = null;

  /** `remoteAddress`: the client's, when a trusted proxy told it (PROXY v2); else the socket's. */
  constructor(socket: Socket, opts: TcpTransportOptions, remoteAddress: string = socket.remoteAddress ?? '') {
    this.#socket = socket;
    this.#opts = opts;
    this.#secure = opts.directTls;
    this.remoteAddress = remoteAddress;
    this.#parser = new XmlStreamParser(new ParserEvents(this), { limits: opts.limits });
    this.#attach(socket);
  }

  /** Parser events, forwarded to the session (see ParserEvents). */
  streamStart(name: string, attrs: Record<string, string>, ns: string): void {
    if (name.endsWith(':stream') || name === 'stream') {
      if (ns !== NS.STREAM) {
        this.#events?.onStreamError(new StreamError('invalid-namespace', `the stream namespace must be ${NS.STREAM}`));
        return;
      }
      this.#events?.onStreamOpen(attrs, attrs.xmlns ?? '');
    } else {
      this.#events?.onStreamError(new StreamError('invalid-namespace', 'the root element must be <stream:stream>'));
    }
  }
  element(el: XmlElement): void {
    this.#events?.onStanza(el);
  }
  streamEnd(): void {
    this.#events?.onStreamClose();
  }
  parseError(condition: XmlErrorCondition, text: string): void {
    this.#events?.onStreamError(new StreamError(condition, text));
  }

  /** Connects the session; data flows from here on. */
  bind(events: C2sStreamEvents | null): void {
    this.#events = events;
  }

  get isSecure(): boolean {
    return this.#secure;
  }

  get canStartTls(): boolean {
    return !this.#secure;
  }

  #attach(socket: Socket): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    (socket as OwnedSocket)[OWNER] = this;
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
  }

  #detach(socket: Socket): void {
    socket.off('data', onSocketData);
    socket.off('error', onSocketError);
    socket.off('close', onSocketClose);
  }

  /** Bytes from the socket. */
  data(chunk: Buffer): void {
    this.#parser.write(chunk);
  }

  /** The socket is gone. */
  socketClosed(): void {
    this.#closed = true;
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    this.#events?.onDisconnect();
  }

  // ------------------------------------------------------------------ C2sTransport

  startTls(done: () => void): void {
    // SECURITY: anything the client sent after <starttls/> in the clear is dropped, never
    // parsed as part of the encrypted stream (STARTTLS command injection).
    this.#parser.halt();
    const plain = this.#socket;
    this.flush();
    plain.write(`<proceed xmlns='${NS.TLS}'/>`);
    this.#detach(plain);
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.#opts.secureContext });
    this.#socket = secure;
    this.#attach(secure);
    secure.once('secure', () => {
      this.#secure = true;
      this.#headerSent = false;
      this.#parser.reset();
      done();
    });
  }

  channelBinding(type: ChannelBindingType): Buffer | null {
    const s = this.#socket;
    if (!this.#secure || !(s instanceof TLSSocket)) return null;
    if (type === 'tls-server-end-point') return this.#opts.endPointHash;
    // RFC 9266: tls-exporter only where exporter values are unique (TLS 1.3).
    if (type === 'tls-exporter' && s.getProtocol() === 'TLSv1.3') return s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
    return null;
  }

  open(header: StreamHeader, features: XmlElement): void {
    this.#sendHeader(header);
    this.#write(serialize(features));
  }

  #sendHeader(header: StreamHeader): void {
    if (this.#headerSent) return;
    this.#headerSent = true;
    this.#write(
      "<?xml version='1.0'?>" +
        openTag('stream:stream', {
          xmlns: NS.CLIENT,
          'xmlns:stream': NS.STREAM,
          id: header.id,
          from: header.from,
          version: header.version,
          'xml:lang': header.lang,
        }),
    );
  }

  send(xml: string, kind: OutboundKind, el?: XmlElement): void {
    const message = kind === 'message' ? el : undefined;
    if (this.#closing || this.#closed) {
      if (message) (this.#outMessages ??= []).push(message);
      return;
    }
    this.#write(xml, message);
  }

  #write(xml: string, message?: XmlElement): void {
    this.#out += xml;
    if (message) (this.#outMessages ??= []).push(message);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(flushTransport, this);
    }
  }

  /** Writes what was queued in this turn of the event loop in one socket write. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#out === '' || this.#closed) return;
    const data = this.#out;
    const messages = this.#outMessages;
    this.#out = '';
    this.#outMessages = null;
    if (messages) {
      const batch: InFlight = { messages };
      (this.#inFlight ??= []).push(batch);
      this.#socket.write(data, (err) => {
        if (err) return; // stays in flight: handed back as undelivered
        const list = this.#inFlight;
        if (!list) return;
        const i = list.indexOf(batch);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.#inFlight = null;
      });
    } else {
      this.#socket.write(data);
    }
    // SECURITY: a client that stops reading must not make the server buffer without bound.
    if (this.#socket.writableLength > this.#opts.maxSendBuffer && !this.#closing) {
      this.#events?.onStreamError(new StreamError('policy-violation', 'the client is not reading its stream'));
    }
  }

  restart(): void {
    this.#headerSent = false;
    this.#parser.reset();
  }

  close(error?: StreamError): void {
    if (this.#closing || this.#closed) return;
    if (!this.#headerSent) this.#sendHeader({ id: 'closed', from: '', version: '1.0', lang: 'en' });
    this.#write((error ? serialize(error.toElement()) : '') + '</stream:stream>');
    this.flush();
    this.#closing = true;
    // The parser goes on until the connection ends: the session still reads the client's
    // stream management acknowledgement (and nothing else) after its own closing tag.
    this.#socket.end();
    this.#closeTimer = setTimeout(() => this.#socket.destroy(), this.#opts.closeTimeoutMs);
    this.#closeTimer.unref();
  }

  takeUndelivered(): XmlElement[] {
    const out: XmlElement[] = [];
    if (this.#inFlight) for (const b of this.#inFlight) out.push(...b.messages);
    if (this.#outMessages) out.push(...this.#outMessages);
    this.#inFlight = null;
    this.#outMessages = null;
    return out;
  }
}

// Listeners shared by every connection (one function each, not closures per connection):
// an idle session costs less.
const OWNER = Symbol('parley.transport');
type OwnedSocket = Socket & { [OWNER]?: TcpTransport };

function onSocketData(this: OwnedSocket, chunk: Buffer): void {
  this[OWNER]?.data(chunk);
}
function onSocketError(): void {
  // 'close' follows; errors such as ECONNRESET need no more than that.
}
function onSocketClose(this: OwnedSocket): void {
  this[OWNER]?.socketClosed();
}
function flushTransport(t: TcpTransport): void {
  t.flush();
}

/** The parser's handler: one small object pointing at its transport. */
class ParserEvents implements XmlParserHandler {
  constructor(readonly t: TcpTransport) {}
  onStreamStart(name: string, attrs: Record<string, string>, ns: string): void {
    this.t.streamStart(name, attrs, ns);
  }
  onElement(el: XmlElement): void {
    this.t.element(el);
  }
  onStreamEnd(): void {
    this.t.streamEnd();
  }
  onError(condition: XmlErrorCondition, text: string): void {
    this.t.parseError(condition, text);
  }
}
