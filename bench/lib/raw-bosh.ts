/**
 * A minimal BOSH client for benchmarks: HTTP/1.1 written by hand on two keep-alive
 * sockets per session (hold=1, requests=2), SASL PLAIN (the server must treat HTTP as
 * secure), bind, presence. Parses only what it must.
 */
import { connect, type Socket } from 'node:net';

const HTTPBIND = 'http://jabber.org/protocol/httpbind';

/** One keep-alive HTTP connection, one request at a time. */
class HttpConn {
  readonly socket: Socket;
  #buf = '';
  #pending: ((body: string) => void) | null = null;
  #reject: ((e: Error) => void) | null = null;
  busy = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (d: string) => this.#data(d));
    socket.on('error', (e) => this.#reject?.(e));
    socket.on('close', () => this.#reject?.(new Error('HTTP connection closed')));
  }

  static open(host: string, port: number, localAddress?: string): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, localAddress }, () => resolve(new HttpConn(s)));
      s.once('error', reject);
    });
  }

  post(path: string, host: string, body: string): Promise<string> {
    this.busy = true;
    return new Promise((resolve, reject) => {
      this.#pending = resolve;
      this.#reject = reject;
      this.socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  #data(d: string): void {
    this.#buf += d;
    for (;;) {
      const headEnd = this.#buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = this.#buf.slice(0, headEnd);
      const m = /content-length:\s*(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      // Content-Length counts bytes; these bodies are ASCII except message text.
      const start = headEnd + 4;
      const rest = this.#buf.slice(start);
      if (Buffer.byteLength(rest) < len) return;
      let body = rest;
      if (Buffer.byteLength(rest) > len) body = Buffer.from(rest).subarray(0, len).toString();
      this.#buf = rest.slice(body.length);
      const cb = this.#pending;
      this.#pending = null;
      this.#reject = null;
      this.busy = false;
      cb?.(body);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface BoshLoadOptions {
  host: string;
  port: number;
  path?: string;
  domain: string;
  username: string;
  password: string;
  resource?: string;
  wait?: number;
  localAddress?: string;
}

export class BoshLoadSession {
  readonly #opts: BoshLoadOptions;
  readonly #conns: HttpConn[];
  #rid = Math.floor(Math.random() * 1e9) + 1;
  #sid = '';
  #outstanding = 0;
  #queue: string[] = [];
  #closed = false;
  #opening = false;
  /** Called with the payload of every response (the text inside <body>). */
  onPayload: ((payload: string) => void) | null = null;
  jid = '';

  private constructor(opts: BoshLoadOptions, conns: HttpConn[]) {
    this.#opts = opts;
    this.#conns = conns;
  }

  static async login(opts: BoshLoadOptions): Promise<BoshLoadSession> {
    // One connection; the second is opened the first time it is needed (an idle client
    // keeps one request held on one connection, as browsers do once keep-alive ends).
    const conns = [await HttpConn.open(opts.host, opts.port, opts.localAddress)];
    const s = new BoshLoadSession(opts, conns);
    const create = await s.#post(
      `<body xmlns='${HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='${s.#rid++}' to='${opts.domain}' wait='${opts.wait ?? 60}' hold='1' ver='1.11' xmpp:version='1.0'/>`,
    );
    const sid = /sid='([^']+)'/.exec(create);
    if (!sid) throw new Error(`no session: ${create}`);
    s.#sid = sid[1]!;
    const auth = Buffer.from(`\0${opts.username}\0${opts.password}`).toString('base64');
    const ok = await s.#step(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${auth}</auth>`);
    if (!ok.includes('<success')) throw new Error(`login failed: ${ok}`);
    await s.#step('', ` xmpp:restart='true' to='${opts.domain}'`);
    const resource = opts.resource ?? 'bench';
    await s.#step(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    s.jid = `${opts.username}@${opts.domain}/${resource}`;
    await s.#step("<presence xmlns='jabber:client'/>");
    return s;
  }

  #post(body: string, conn = this.#conns[0]!): Promise<string> {
    return conn.post(this.#opts.path ?? '/http-bind', this.#opts.host, body);
  }

  /** A request during login: its response carries what the server had to say. */
  #step(payload: string, extra = ''): Promise<string> {
    return this.#post(`<body xmlns='${HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='${this.#rid++}' sid='${this.#sid}'${extra}>${payload}</body>`);
  }

  /** Keeps a request held from now on, and sends queued stanzas as soon as a connection is free. */
  start(): void {
    this.#pump();
  }

  send(stanza: string): void {
    this.#queue.push(stanza);
    this.#pump();
  }

  #pump(): void {
    if (this.#closed) return;
    // hold=1, requests=2: at most two requests out; always keep one out to be held.
    while (this.#outstanding < 2 && (this.#queue.length > 0 || this.#outstanding === 0)) {
      const conn = this.#conns.find((c) => !c.busy);
      if (!conn) {
        if (this.#opening) return;
        this.#opening = true;
        void HttpConn.open(this.#opts.host, this.#opts.port, this.#opts.localAddress).then((c) => {
          this.#opening = false;
          this.#conns.push(c);
          this.#pump();
        });
        return;
      }
      const payload = this.#queue.join('');
      this.#queue = [];
      this.#outstanding++;
      this.#post(`<body xmlns='${HTTPBIND}' rid='${this.#rid++}' sid='${this.#sid}'>${payload}</body>`, conn).then(
        (body) => {
          this.#outstanding--;
          const open = body.indexOf('>');
          if (body[open - 1] !== '/' && this.onPayload) this.onPayload(body.slice(open + 1, body.length - 7));
          if (body.includes("type='terminate'")) {
            this.#closed = true;
            return;
          }
          this.#pump();
        },
        () => {
          this.#outstanding--;
          this.#closed = true;
        },
      );
    }
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#conns) c.close();
  }
}
