/**
 * One external component's connection (XEP-0114, Jabber Component Protocol): the XML
 * stream over a socket in the `jabber:component:accept` namespace, the handshake
 * element, and the connection's life. Framing only: whether the host is known, whether
 * the handshake digest is right and what a stanza may say are the gateway's (the core's
 * component hub) decisions.
 * References: XEP-0114 §2 (the stream), §3 (the handshake); RFC 6120 §4.9 (stream
 * errors), §4.4 (closing a stream).
 *
 *   component                         server
 *   <stream:stream xmlns='jabber:component:accept' to='echo.example.com'>
 *                                     <stream:stream … id='…' from='echo.example.com'>
 *   <handshake>hex SHA-1(id ‖ secret)</handshake>
 *                                     <handshake/>   (or a stream error, then the end)
 *   stanzas both ways
 *
 * Bounds: the parser's (stanza size, depth, attributes: those of c2s), the time to
 * complete the handshake, and the bytes waiting for a component that does not read
 * (past it the stream ends with policy-violation). Writes made in one turn of the event
 * loop go out as one socket write; a stanza counts as sent once its write reached the
 * kernel, and those that had not when the connection died are handed back.
 */
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { XmlElement } from '../../xml/element.js';
import { XmlStreamParser, type XmlErrorCondition, type XmlParserHandler, type XmlParserLimits } from '../../xml/parser.js';
import { openTag, serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { StreamError } from '../../xmpp/errors.js';

export interface ComponentStreamOptions {
  /** The parser's limits (those of c2s: limits.maxStanzaSize and the rest). */
  limits: XmlParserLimits;
  /** Time the component has to open its stream and complete the handshake. */
  handshakeTimeoutMs: number;
  /** Time the component has to close its side after the server closed its own. */
  closeTimeoutMs: number;
  /** Bytes waiting for a component that does not read before its stream is ended. */
  maxSendBuffer: number;
}

/** What the gateway sees of one component connection. */
export interface ComponentConnection {
  /** The stream id (hashed with the secret in the handshake). */
  readonly id: string;
  readonly remoteAddress: string;
  /** The handshake succeeded: `<handshake/>`, and stanzas flow from now on. */
  accept(): void;
  /** Sends a stanza to the component (in order; batched per turn of the event loop). */
  send(stanza: XmlElement): void;
  /** Ends the stream (with a stream error if given), then the connection. */
  close(error?: StreamError): void;
}

/** What the connection tells the gateway. */
export interface ComponentStreamEvents {
  /** The component opened its stream for `host` ('' when it named none); a StreamError refuses it. */
  onOpen(host: string): StreamError | null;
  /** The handshake's content arrived; the gateway answers with accept() or close(). */
  onHandshake(digest: string): void;
  /** A stanza (message, presence or iq) after the handshake, as parsed (namespace jabber:component:accept). */
  onStanza(stanza: XmlElement): void;
  /** The component did not read: its stream is being ended with policy-violation. */
  onOverflow(): void;
  /** The connection is gone; `unsent`: stanzas sent to it that are not known to have left this process. */
  onDisconnect(unsent: XmlElement[]): void;
}

/** Where connections are handed once accepted (the core's component hub). */
export interface ComponentGateway {
  open(connection: ComponentConnection): ComponentStreamEvents;
}

const enum State {
  Header,
  Handshake,
  /** The handshake was sent; the gateway has not answered yet. */
  Checking,
  Active,
  Closing,
  Closed,
}

/** One component's socket: the stream header, the handshake element, stanzas, and the end. */
export class ComponentStream implements ComponentConnection {
  readonly id = randomBytes(12).toString('hex');
  readonly remoteAddress: string;
  readonly #socket: Socket;
  readonly #opts: ComponentStreamOptions;
  readonly #parser: XmlStreamParser;
  readonly #events: ComponentStreamEvents;
  #state = State.Header;
  #host = '';
  #headerSent = false;
  #timer: NodeJS.Timeout | null;
  #closeTimer: NodeJS.Timeout | null = null;
  #out = '';
  #outStanzas: XmlElement[] | null = null;
  #flushScheduled = false;
  /** Batches written whose callback has not fired yet. */
  #inFlight: XmlElement[][] | null = null;

  constructor(socket: Socket, opts: ComponentStreamOptions, gateway: ComponentGateway) {
    this.#socket = socket;
    this.#opts = opts;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.#parser = new XmlStreamParser(new ParserEvents(this), { limits: opts.limits });
    this.#events = gateway.open(this);
    // SECURITY: a connection that does not authenticate in time is ended.
    this.#timer = setTimeout(() => this.close(new StreamError('connection-timeout', 'the handshake took too long')), opts.handshakeTimeoutMs);
    this.#timer.unref();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.on('data', (chunk: Buffer) => this.#parser.write(chunk));
    socket.on('error', () => {
      // 'close' follows.
    });
    socket.on('close', () => this.#closed());
  }

  /** The component's host, once its stream is open. */
  get host(): string {
    return this.#host;
  }

  // ------------------------------------------------------------------ parser events

  streamStart(name: string, attrs: Record<string, string>, ns: string): void {
    if (this.#state !== State.Header) return;
    if ((name !== 'stream' && !name.endsWith(':stream')) || ns !== NS.STREAM) {
      this.close(new StreamError('invalid-namespace', `the root element must be <stream:stream> in ${NS.STREAM}`));
      return;
    }
    if (attrs.xmlns !== NS.COMPONENT) {
      this.close(new StreamError('invalid-namespace', `the content namespace of a component stream is ${NS.COMPONENT}`));
      return;
    }
    const host = attrs.to ?? '';
    const refused = this.#events.onOpen(host);
    if (refused) {
      this.close(refused);
      return;
    }
    this.#host = host;
    this.#sendHeader(host);
    this.#state = State.Handshake;
  }

  element(el: XmlElement): void {
    switch (this.#state) {
      case State.Handshake:
        if (el.localName !== 'handshake' || el.ns !== NS.COMPONENT) {
          // SECURITY: nothing but the handshake before authentication (XEP-0114 §3).
          this.close(new StreamError('not-authorized', 'the handshake comes first'));
          return;
        }
        this.#state = State.Checking;
        this.#events.onHandshake(el.text());
        return;
      case State.Checking:
        this.close(new StreamError('not-authorized', 'stanzas before the handshake was answered'));
        return;
      case State.Active:
        if (el.name !== 'message' && el.name !== 'presence' && el.name !== 'iq') {
          this.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stanza`));
          return;
        }
        this.#events.onStanza(el);
        return;
      default:
        return; // closing: the component's last words are not read
    }
  }

  streamEnd(): void {
    this.close();
  }

  parseError(condition: XmlErrorCondition, text: string): void {
    this.close(new StreamError(condition, text));
  }

  // ------------------------------------------------------------------ ComponentConnection

  accept(): void {
    if (this.#state !== State.Checking) return;
    this.#state = State.Active;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#write('<handshake/>');
  }

  send(stanza: XmlElement): void {
    if (this.#state !== State.Active) {
      (this.#outStanzas ??= []).push(stanza);
      return;
    }
    this.#write(onTheWire(stanza), stanza);
  }

  close(error?: StreamError): void {
    if (this.#state >= State.Closing) return;
    const wasActive = this.#state === State.Active;
    this.#state = State.Closing;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#headerSent) this.#sendHeader(this.#host);
    this.#write((error ? serialize(error.toElement()) : '') + '</stream:stream>');
    this.#flush();
    this.#socket.end();
    this.#closeTimer = setTimeout(() => this.#socket.destroy(), wasActive ? this.#opts.closeTimeoutMs : Math.min(this.#opts.closeTimeoutMs, 1000));
    this.#closeTimer.unref();
  }

  // ------------------------------------------------------------------ output

  #sendHeader(host: string): void {
    this.#headerSent = true;
    this.#write(
      "<?xml version='1.0'?>" + openTag('stream:stream', { xmlns: NS.COMPONENT, 'xmlns:stream': NS.STREAM, id: this.id, from: host === '' ? undefined : host }),
    );
  }

  #write(xml: string, stanza?: XmlElement): void {
    this.#out += xml;
    if (stanza) (this.#outStanzas ??= []).push(stanza);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(flushStream, this);
    }
  }

  /** Writes what was queued in this turn of the event loop in one socket write. */
  flush(): void {
    this.#flush();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#out === '' || this.#state === State.Closed) return;
    const data = this.#out;
    const stanzas = this.#outStanzas;
    this.#out = '';
    this.#outStanzas = null;
    if (stanzas) {
      (this.#inFlight ??= []).push(stanzas);
      this.#socket.write(data, (err) => {
        if (err || !this.#inFlight) return; // stays in flight: handed back
        const i = this.#inFlight.indexOf(stanzas);
        if (i >= 0) this.#inFlight.splice(i, 1);
        if (this.#inFlight.length === 0) this.#inFlight = null;
      });
    } else this.#socket.write(data);
    // SECURITY: a component that stops reading must not make the server buffer without bound.
    if (this.#socket.writableLength > this.#opts.maxSendBuffer && this.#state === State.Active) {
      this.#events.onOverflow();
      this.close(new StreamError('policy-violation', 'the component is not reading its stream'));
    }
  }

  #closed(): void {
    if (this.#state === State.Closed) return;
    this.#state = State.Closed;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#closeTimer) clearTimeout(this.#closeTimer);
    const unsent: XmlElement[] = [];
    if (this.#inFlight) for (const b of this.#inFlight) unsent.push(...b);
    if (this.#outStanzas) unsent.push(...this.#outStanzas);
    this.#inFlight = null;
    this.#outStanzas = null;
    this.#events.onDisconnect(unsent);
  }
}

/**
 * The stanza as the component gets it: in its stream's namespace. A stanza made for
 * clients may name jabber:client on itself; the component's stream says otherwise.
 */
function onTheWire(stanza: XmlElement): string {
  if (stanza.attrs.xmlns !== NS.CLIENT) return serialize(stanza);
  const attrs = { ...stanza.attrs };
  delete attrs.xmlns;
  const copy = new XmlElement(stanza.name, attrs, null, stanza.ns);
  copy.children = stanza.children;
  return serialize(copy);
}

function flushStream(s: ComponentStream): void {
  s.flush();
}

/** The parser's handler: one small object pointing at its stream. */
class ParserEvents implements XmlParserHandler {
  constructor(readonly s: ComponentStream) {}
  onStreamStart(name: string, attrs: Record<string, string>, ns: string): void {
    this.s.streamStart(name, attrs, ns);
  }
  onElement(el: XmlElement): void {
    this.s.element(el);
  }
  onStreamEnd(): void {
    this.s.streamEnd();
  }
  onError(condition: XmlErrorCondition, text: string): void {
    this.s.parseError(condition, text);
  }
}
