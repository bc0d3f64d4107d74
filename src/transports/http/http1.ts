/**
 * A lean HTTP/1.1 server for the requests that matter most: BOSH POSTs (and their CORS
 * preflights) and WebSocket upgrades. Everything else is handed, connection and all, to
 * Node's own `http` server.
 * References: RFC 9112 (HTTP/1.1 message syntax: request line, fields, Content-Length,
 * persistence, pipelining order), RFC 9110 §15 (status codes).
 *
 * Why not node:http for BOSH: an idle BOSH client keeps one request held, and with
 * node:http that costs an IncomingMessage, a ServerResponse, their stream states and
 * parser state per connection (about 7 KB of heap); the talk that started Parley made
 * the same choice (its BOSH "bypasses ejabberd_http"). Here a held request is a socket
 * and two small objects.
 *
 * SECURITY: bounded head (16 KiB) and body (listen.http.maxBodySize), a deadline for a
 * request to arrive whole (slowloris), an idle timeout between requests, no chunked
 * bodies on the fast path (handed to node:http), responses strictly in request order.
 */
import type { Socket } from 'node:net';

export const MAX_HEAD = 16 * 1024;

export interface Http1Request {
  method: string;
  /** The request target as sent (path and query). */
  target: string;
  path: string;
  /** Field names lower-cased; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  remoteAddress: string;
}

/** One request's response slot. */
export interface HttpExchange {
  readonly remoteAddress: string;
  /** Sends the response; later calls are ignored. */
  respond(status: number, headers: Record<string, string>, body: string | Buffer): void;
  /** Closes the connection without a response. */
  destroy(): void;
  /** False once the response was sent or the connection is gone. */
  isOpen(): boolean;
  /** Runs if the connection closes before the response. */
  onAbort: (() => void) | null;
}

export interface Http1Routes {
  /** Does the fast path take this request (head only)? If not, the connection goes to node:http. */
  claims(method: string, path: string, headers: Record<string, string>): boolean;
  /** A claimed request, body read. */
  request(req: Http1Request, ex: HttpExchange): void;
  /** A claimed Upgrade request: the socket is the handler's now. */
  upgrade(req: Http1Request, socket: Socket, head: Buffer): void;
  /** Hands a connection (with the bytes already read) to node:http. */
  handOff(socket: Socket, unread: Buffer): void;
}

export interface Http1Limits {
  maxBodySize: number;
  /** Called when a request is refused for its body size (413), for the metric. */
  onBodyTooLarge?: () => void;
  keepAliveTimeoutMs: number;
  requestTimeoutMs: number;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  426: 'Upgrade Required',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  505: 'HTTP Version Not Supported',
};

class Exchange implements HttpExchange {
  onAbort: (() => void) | null = null;
  /** The serialized response, once known (kept until earlier ones are written). */
  out: Buffer | string | null = null;
  done = false;
  constructor(
    readonly conn: Http1Connection,
    readonly keepAlive: boolean,
    readonly head: boolean,
  ) {}

  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }

  respond(status: number, headers: Record<string, string>, body: string | Buffer): void {
    if (this.done) return;
    this.done = true;
    this.onAbort = null;
    const len = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    let s = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Status'}\r\n`;
    for (const k in headers) s += `${k}: ${headers[k]}\r\n`;
    s += this.conn.baseHeaders;
    s += `Content-Length: ${len}\r\n`;
    if (!this.keepAlive) s += 'Connection: close\r\n';
    s += '\r\n';
    this.out = this.head ? s : typeof body === 'string' ? s + body : Buffer.concat([Buffer.from(s, 'latin1'), body]);
    this.conn.flush();
  }

  destroy(): void {
    this.done = true;
    this.onAbort = null;
    this.conn.socket.destroy();
  }

  isOpen(): boolean {
    return !this.done && !this.conn.closed;
  }
}

/** One client connection on the fast path. */
export class Http1Connection {
  readonly remoteAddress: string;
  closed = false;
  #buf: Buffer | null = null;
  /** Exchanges in request order; responses leave in that order (pipelining). */
  #pending: Exchange[] = [];
  #timer: NodeJS.Timeout | null = null;
  #closeAfter = false;
  #gone = false;
  /** A request not for the fast path waits behind earlier ones: hand off when they are answered. */
  #handOffWaiting = false;

  /** `remoteAddress`: the client's, when a trusted proxy told it (PROXY v2); else the socket's. */
  constructor(
    readonly socket: Socket,
    readonly routes: Http1Routes,
    readonly limits: Http1Limits,
    /** Header lines ("Name: value\r\n") sent on every response (the listener's safe defaults). */
    readonly baseHeaders = '',
    remoteAddress: string = socket.remoteAddress ?? '',
  ) {
    this.remoteAddress = remoteAddress;
    socket.setNoDelay(true);
    socket.on('data', this.#onData);
    socket.on('error', () => undefined);
    socket.on('close', this.#onClose);
    this.#arm(limits.requestTimeoutMs);
  }

  /** Reads of a body still coming (after `#buf`), joined once `#need` bytes are there. */
  #parts: Buffer[] = [];
  #partsLength = 0;
  #need = 0;

  readonly #onData = (chunk: Buffer): void => {
    // SECURITY: after a refusal (413, 431, 400) nothing more is kept: the rest of a body
    // we refused would otherwise pile up in #buf until the client stops sending.
    if (this.#gone) return;
    if (this.#need > 0 && this.#buf) {
      // SECURITY: a body trickled in small reads is joined once, not copied on every read.
      this.#parts.push(chunk);
      this.#partsLength += chunk.length;
      if (this.#buf.length + this.#partsLength < this.#need) return;
      this.#buf = Buffer.concat([this.#buf, ...this.#parts]);
      this.#parts = [];
      this.#partsLength = 0;
      this.#need = 0;
    } else this.#buf = this.#buf ? Buffer.concat([this.#buf, chunk]) : chunk;
    this.#parse();
  };

  readonly #onClose = (): void => {
    this.closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const ex of this.#pending) {
      if (!ex.done) {
        ex.done = true;
        const abort = ex.onAbort;
        ex.onAbort = null;
        abort?.();
      }
    }
    this.#pending = [];
  };

  /** The deadline for the next request to arrive whole (or an idle keep-alive to end). */
  #arm(ms: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      // Only an incomplete or absent request times out; held requests are the application's.
      if (this.#pending.length === 0 || this.#buf) this.socket.destroy();
    }, ms);
    this.#timer.unref();
  }

  #parse(): void {
    while (this.#buf && !this.#gone) {
      const buf = this.#buf;
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        if (buf.length > MAX_HEAD) this.#reject(431, 'request head too large');
        return;
      }
      const head = buf.toString('latin1', 0, headEnd);
      const lines = head.split('\r\n');
      const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]!);
      if (!m) {
        this.#reject(400, 'bad request line');
        return;
      }
      const headers: Record<string, string> = Object.create(null) as Record<string, string>;
      for (let i = 1; i < lines.length; i++) {
        const line = lines[i]!;
        const c = line.indexOf(':');
        if (c <= 0) {
          this.#reject(400, 'bad header field');
          return;
        }
        const name = line.slice(0, c).trim().toLowerCase();
        const value = line.slice(c + 1).trim();
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      const method = m[1]!;
      const target = m[2]!;
      const q = target.indexOf('?');
      const path = q < 0 ? target : target.slice(0, q);
      if (!this.routes.claims(method, path, headers) || headers['transfer-encoding'] !== undefined) {
        // Not for the fast path: node:http takes the connection from this request on.
        this.#handOff();
        return;
      }
      const upgrade = headers.upgrade !== undefined && /\bupgrade\b/i.test(headers.connection ?? '');
      let length = 0;
      if (headers['content-length'] !== undefined) {
        if (!/^\d{1,12}$/.test(headers['content-length'])) {
          this.#reject(400, 'bad Content-Length');
          return;
        }
        length = Number(headers['content-length']);
      }
      if (length > this.limits.maxBodySize) {
        this.limits.onBodyTooLarge?.();
        this.#reject(
          413,
          `<body type='terminate' condition='policy-violation' xmlns='http://jabber.org/protocol/httpbind'><text>bodies are limited to ${this.limits.maxBodySize} bytes</text></body>`,
          'text/xml; charset=utf-8',
        );
        return;
      }
      const start = headEnd + 4;
      if (buf.length < start + length) {
        this.#need = start + length; // the body is still coming
        return;
      }
      const body = buf.subarray(start, start + length);
      const rest = buf.subarray(start + length);
      this.#buf = rest.length > 0 ? rest : null;
      const req: Http1Request = { method, target, path, headers, body, remoteAddress: this.remoteAddress };
      if (upgrade) {
        this.#detach();
        this.routes.upgrade(req, this.socket, this.#buf ?? Buffer.alloc(0));
        return;
      }
      const httpVersion1 = m[3] === '1';
      const connection = (headers.connection ?? '').toLowerCase();
      const keepAlive = httpVersion1 ? !connection.includes('close') : connection.includes('keep-alive');
      const ex = new Exchange(this, keepAlive, method === 'HEAD');
      if (!keepAlive) this.#closeAfter = true;
      this.#pending.push(ex);
      // A request being answered needs no timer (the application holds it); a half-read
      // next one does. The idle timer comes back in flush() once all is answered.
      if (this.#buf) this.#arm(this.limits.requestTimeoutMs);
      else if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
      this.routes.request(req, ex);
      if (this.#closeAfter) {
        this.#buf = null;
        return;
      }
    }
  }

  /** Writes finished responses in request order. */
  flush(): void {
    while (this.#pending.length > 0 && this.#pending[0]!.out !== null) {
      const ex = this.#pending.shift()!;
      if (!this.closed) this.socket.write(ex.out!);
      ex.out = null;
      if (!ex.keepAlive) {
        this.socket.end();
        this.closed = true;
        return;
      }
    }
    if (this.#pending.length > 0 || this.closed) return;
    if (this.#handOffWaiting) {
      this.#handOffWaiting = false;
      this.#handOffNow();
      return;
    }
    // Nothing left to answer: the connection may idle until the keep-alive timeout.
    if (!this.#buf && !this.#gone) this.#arm(this.limits.keepAliveTimeoutMs);
  }

  #reject(status: number, text: string, type = 'text/plain; charset=utf-8'): void {
    this.#gone = true;
    this.#buf = null;
    this.#parts = [];
    this.#need = 0;
    const ex = new Exchange(this, false, false);
    this.#pending.push(ex);
    ex.respond(status, { 'Content-Type': type }, text);
  }

  #detach(): void {
    this.#gone = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.socket.off('data', this.#onData);
    this.socket.off('close', this.#onClose);
  }

  #handOff(): void {
    if (this.#pending.length > 0) {
      // Earlier requests of this connection are still being answered here (a held BOSH
      // request); the rest waits unread, and flush() hands off once the last is written.
      // Its head is whole, so no request deadline runs meanwhile: the held requests are
      // the application's and bounded by their wait (node:http times the rest after).
      this.#handOffWaiting = true;
      this.socket.pause();
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      return;
    }
    this.#handOffNow();
  }

  #handOffNow(): void {
    const unread = this.#buf ?? Buffer.alloc(0);
    this.#buf = null;
    this.#detach();
    this.routes.handOff(this.socket, unread);
  }
}
