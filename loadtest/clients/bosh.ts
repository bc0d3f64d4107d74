/**
 * The generator's BOSH client (XEP-0124/0206): HTTP/1.1 written by hand on keep-alive
 * sockets; hold=1, so at most two requests out. An idle client keeps one request held on
 * one connection; the second connection is opened when it sends while a request is
 * held, and closed again after SPARE_IDLE_MS without use (as browsers let idle
 * keep-alive connections go), so an idle session costs the server one connection.
 * Stanzas queued meanwhile go together in the next request.
 */
import { connect, type Socket } from 'node:net';
import { XmlStreamParser } from '../../src/xml/parser.js';
import type { XmlElement } from '../../src/xml/element.js';
import { LoadClient, type ClientOptions } from './client.js';

const HTTPBIND = 'http://jabber.org/protocol/httpbind';
/** A second connection unused for this long is closed. */
const SPARE_IDLE_MS = 5000;
const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 256, maxNameLength: 512 };

/** One keep-alive HTTP/1.1 connection carrying one request at a time. */
class HttpConn {
  #buf: Buffer | null = null;
  #done: ((status: number, body: Buffer) => void) | null = null;
  #fail: ((e: Error) => void) | null = null;
  busy = false;
  dead = false;
  lastUsed = 0;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#data(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.dead = true;
      this.#fail?.(new Error('connection closed'));
    });
  }

  static open(o: ClientOptions): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: o.host, port: o.port, localAddress: o.localAddress }, () => resolve(new HttpConn(s)));
      s.once('error', (e: NodeJS.ErrnoException) => reject({ condition: 'connect:' + (e.code ?? 'error') }));
    });
  }

  post(head: string, body: string): Promise<{ status: number; body: Buffer }> {
    this.busy = true;
    return new Promise((resolve, reject) => {
      this.#done = (status, b) => resolve({ status, body: b });
      this.#fail = reject;
      this.socket.write(head + Buffer.byteLength(body) + '\r\n\r\n' + body);
    });
  }

  #data(d: Buffer): void {
    let buf = this.#buf ? Buffer.concat([this.#buf, d]) : d;
    for (;;) {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) break;
      const head = buf.toString('latin1', 0, headEnd);
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      const start = headEnd + 4;
      if (buf.length < start + len) break;
      const status = Number(head.slice(9, 12));
      const body = buf.subarray(start, start + len);
      buf = buf.subarray(start + len);
      this.busy = false;
      const done = this.#done;
      this.#done = null;
      this.#fail = null;
      done?.(status, body);
    }
    this.#buf = buf.length > 0 ? Buffer.from(buf) : null;
  }

  close(): void {
    this.dead = true;
    this.socket.destroy();
  }
}

/** HTTP requests made by every BOSH client of this process (for requests/s). */
export const boshCounters = { requests: 0 };

export class BoshLoadClient extends LoadClient {
  readonly #conns: HttpConn[] = [];
  #rid = Math.floor(Math.random() * 2 ** 40) + 1;
  #sid = '';
  #outstanding = 0;
  #queue: string[] = [];
  #started = false;
  #spareTimer: NodeJS.Timeout | null = null;
  readonly #head: string;

  constructor(opts: ClientOptions) {
    super(opts);
    this.#head = `POST ${opts.path} HTTP/1.1\r\nHost: ${opts.host}\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: `;
  }

  /** Sends one request and parses its response body's children as received elements. */
  async #request(attrs: string, payload: string, conn?: HttpConn): Promise<XmlElement> {
    let c = conn ?? this.#conns.find((x) => !x.busy && !x.dead);
    if (!c) {
      c = await HttpConn.open(this.opts);
      for (let i = this.#conns.length - 1; i >= 0; i--) if (this.#conns[i]!.dead) this.#conns.splice(i, 1);
      this.#conns.push(c);
      this.#trimLater();
    }
    c.lastUsed = Date.now();
    const body = `<body xmlns='${HTTPBIND}' rid='${this.#rid++}'${this.#sid ? ` sid='${this.#sid}'` : ''}${attrs}>${payload}</body>`;
    boshCounters.requests++;
    const res = await c.post(this.#head, body);
    let root: XmlElement | null = null;
    const children: XmlElement[] = [];
    let error = '';
    const parser = new XmlStreamParser(
      {
        onStreamStart: (_n, a) => (root = { attrs: a } as unknown as XmlElement),
        onElement: (el) => children.push(el),
        onStreamEnd: () => undefined,
        onError: (cond) => (error = cond),
      },
      { limits: LIMITS },
    );
    parser.write(res.body);
    if (error || !root) throw { condition: `http:${res.status}:${error || 'no body'}` };
    const attrsOf = (root as XmlElement).attrs;
    if (attrsOf.type === 'terminate') {
      for (const el of children) this.received(el);
      this.ended('terminate:' + (attrsOf.condition ?? 'none'));
      throw { condition: 'terminate:' + (attrsOf.condition ?? 'none') };
    }
    for (const el of children) this.received(el);
    // The caller only needs to know whether anything came.
    return children.length > 0 ? ({ attrs: attrsOf, children } as unknown as XmlElement) : ({ attrs: attrsOf } as unknown as XmlElement);
  }

  async login(): Promise<void> {
    const o = this.opts;
    const created = await this.#request(
      ` xmlns:xmpp='urn:xmpp:xbosh' to='${o.domain}' wait='${o.boshWait}' hold='1' ver='1.11' xmpp:version='1.0' xml:lang='en'`,
      '',
    );
    this.#sid = created.attrs.sid ?? '';
    if (!this.#sid) throw { condition: 'bosh:no-sid' };
    await this.expect((el) => el.localName === 'features');
    await this.authenticate((x) => this.#fire('', x));
    this.#fire(` xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true' to='${o.domain}'`, '');
    await this.expect((el) => el.localName === 'features');
    await this.bind((x) => this.#fire('', x));
  }

  /**
   * A login step: one request carrying the step's payload. The server answers it when it
   * has something to say; an empty answer (wait expired) is followed by another request.
   */
  #fire(attrs: string, payload: string): void {
    this.#request(attrs, payload).then(
      (root) => {
        if (!this.online && !this.closed && (root as XmlElement).children === undefined) this.#fire('', '');
      },
      (e: { condition?: string }) => this.ended(e?.condition ?? 'http-error'),
    );
  }

  /** From now on keep one request held and send queued stanzas at once. */
  #pump(): void {
    if (this.closed) return;
    while (this.#outstanding < 2 && (this.#queue.length > 0 || this.#outstanding === 0)) {
      const payload = this.#queue.join('');
      this.#queue = [];
      this.#outstanding++;
      this.#request('', payload).then(
        () => {
          this.#outstanding--;
          this.#pump();
        },
        (e: { condition?: string }) => {
          this.#outstanding--;
          if (!this.closed) this.ended(e?.condition ?? 'http-error');
        },
      );
    }
  }

  /** Closes a second connection once it has been idle SPARE_IDLE_MS. */
  #trimLater(): void {
    if (this.#spareTimer || this.#conns.length < 2) return;
    this.#spareTimer = setTimeout(() => {
      this.#spareTimer = null;
      if (this.closed) return;
      const live = this.#conns.filter((x) => !x.dead);
      this.#conns.length = 0;
      this.#conns.push(...live);
      if (live.length < 2) return;
      const spare = live.find((x) => !x.busy && Date.now() - x.lastUsed >= SPARE_IDLE_MS);
      if (spare) {
        spare.close();
        this.#conns.splice(this.#conns.indexOf(spare), 1);
      }
      this.#trimLater();
    }, SPARE_IDLE_MS);
    this.#spareTimer.unref();
  }

  /** Starts holding a request (call after login and initial presence). */
  start(): void {
    this.#started = true;
    this.#pump();
  }

  send(xml: string): void {
    if (this.closed) return;
    this.#queue.push(xml);
    if (this.#started) this.#pump();
  }

  close(polite: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (this.#spareTimer) clearTimeout(this.#spareTimer);
    this.online = false;
    if (polite && this.#sid) {
      const c = this.#conns.find((x) => !x.busy && !x.dead);
      const body = `<body xmlns='${HTTPBIND}' rid='${this.#rid++}' sid='${this.#sid}' type='terminate'/>`;
      if (c) void c.post(this.#head, body).catch(() => undefined);
      setTimeout(() => this.#conns.forEach((x) => x.close()), 2000).unref();
    } else this.#conns.forEach((x) => x.close());
  }
}
