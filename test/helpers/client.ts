/**
 * Test clients: a real XMPP client library (@xmpp/client) with a few conveniences, and
 * the one raw connection (RawClient, rawHttp) for sending bytes no library would send.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
// @ts-expect-error @xmpp/client ships no type declarations
import { client as xmppClient, xml as xmppXml } from '@xmpp/client';
import { DOMAIN } from './server.js';

/** The subset of @xmpp/xml's Element the tests use. */
export interface Element {
  name: string;
  attrs: Record<string, string>;
  children: Array<Element | string>;
  is(name: string, ns?: string): boolean;
  getChild(name: string, ns?: string): Element | undefined;
  getChildren(name: string, ns?: string): Element[];
  getChildText(name: string, ns?: string): string | null;
  text(): string;
  toString(): string;
}

export const xml = xmppXml as (name: string, attrs?: Record<string, string | undefined> | null, ...children: unknown[]) => Element;

export interface ClientOptions {
  port: number;
  username: string;
  password?: string;
  resource?: string;
  /** 'starttls' (default, service xmpp://), 'direct' (xmpps://). */
  tls?: 'starttls' | 'direct';
  /** Force a SASL mechanism, e.g. 'PLAIN'. */
  mechanism?: string;
  /** Send initial presence once online (default true). */
  presence?: boolean;
}

export class TestClient {
  readonly received: Element[] = [];
  readonly errors: Error[] = [];
  #waiters: Array<{ pred: (el: Element) => boolean; resolve: (el: Element) => void }> = [];
  #consumed = new Set<Element>();
  jid = '';

  constructor(readonly xmpp: any) {
    xmpp.on('stanza', (el: Element) => {
      this.received.push(el);
      for (const w of [...this.#waiters]) {
        if (!this.#consumed.has(el) && w.pred(el)) {
          this.#consumed.add(el);
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(el);
        }
      }
    });
    xmpp.on('error', (e: Error) => this.errors.push(e));
  }

  /** The first stanza (received before or after this call, not yet taken) that matches. */
  waitFor(pred: (el: Element) => boolean, timeoutMs = 5000, what = 'stanza'): Promise<Element> {
    for (const el of this.received) {
      if (!this.#consumed.has(el) && pred(el)) {
        this.#consumed.add(el);
        return Promise.resolve(el);
      }
    }
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (el: Element) => {
          clearTimeout(timer);
          resolve(el);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`${this.jid}: timed out waiting for ${what}; received: ${this.received.map(String).join('\n')}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Resolves with nothing if no matching stanza arrives within `ms`; rejects if one does. */
  async expectNone(pred: (el: Element) => boolean, ms = 300, what = 'stanza'): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const hit = this.received.find((el) => !this.#consumed.has(el) && pred(el));
    if (hit) throw new Error(`${this.jid}: unexpected ${what}: ${hit.toString()}`);
  }

  message(from?: string): Promise<Element> {
    return this.waitFor((el) => el.name === 'message' && (from === undefined || el.attrs.from?.startsWith(from)), 5000, `message from ${from}`);
  }

  presence(pred: (el: Element) => boolean = () => true, what = 'presence'): Promise<Element> {
    return this.waitFor((el) => el.name === 'presence' && pred(el), 5000, what);
  }

  send(el: Element): Promise<void> {
    return this.xmpp.send(el);
  }

  /** Sends an IQ and resolves with the reply, result or error (does not throw on error). */
  async iq(el: Element): Promise<Element> {
    const id = `t${Math.random().toString(36).slice(2)}`;
    el.attrs.id = id;
    const reply = this.waitFor((r) => r.name === 'iq' && r.attrs.id === id && (r.attrs.type === 'result' || r.attrs.type === 'error'), 5000, `reply to IQ ${id}`);
    await this.send(el);
    return reply;
  }

  async stop(): Promise<void> {
    this.xmpp.reconnect.stop();
    try {
      await this.xmpp.stop();
    } catch {
      // already gone
    }
  }
}

export function makeClient(opts: ClientOptions): any {
  const service = opts.tls === 'direct' ? `xmpps://localhost:${opts.port}` : `xmpp://127.0.0.1:${opts.port}`;
  const password = opts.password ?? 'secret';
  const xmpp = xmppClient({
    service,
    domain: DOMAIN,
    resource: opts.resource ?? 'test',
    credentials: async (authenticate: (c: unknown, m: string) => Promise<void>, mechanisms: string[]) => {
      const mech = opts.mechanism ?? mechanisms[0]!;
      await authenticate({ username: opts.username, password }, mech);
    },
  });
  // A loaded 2-core machine (tests in parallel) can take more than the default 2 s to answer a stream open.
  xmpp.timeout = 10_000;
  xmpp.reconnect.stop();
  return xmpp;
}

/** Connects, authenticates, binds and (by default) sends initial presence. */
export async function connectClient(opts: ClientOptions): Promise<TestClient> {
  const xmpp = makeClient(opts);
  const c = new TestClient(xmpp);
  const address = await xmpp.start();
  c.jid = String(address);
  if (opts.presence !== false) await xmpp.send(xml('presence'));
  return c;
}

/** How a raw connection is opened. */
export interface RawConnectOptions {
  /** The local address to connect from (the whole 127.0.0.0/8 is loopback on Linux: "another client address"). */
  localAddress?: string;
  /** How received bytes become text: utf8, or latin1 to count bytes (HTTP Content-Length). */
  encoding?: BufferEncoding;
}

/**
 * The one raw connection of the tests: bytes in, text out (for XMPP streams written by
 * hand, raw HTTP/1.1, PROXY headers, STARTTLS and direct TLS). Waits are woken by the
 * socket's events; their timeouts are only bounds.
 */
export class RawClient {
  #buf = '';
  #closed = false;
  readonly #checks = new Set<() => void>();
  /** Settles when the connection is closed (by either side). */
  readonly whenClosed: Promise<void>;
  readonly socket: Socket;
  /** The TLS socket, on a connection made by `startTls()`; null on plain TCP. */
  readonly tls: TLSSocket | null;

  private constructor(socket: Socket, encoding: BufferEncoding, tls: TLSSocket | null = null) {
    this.socket = socket;
    this.tls = tls;
    socket.setEncoding(encoding);
    socket.on('data', (d: string) => {
      this.#buf += d;
      this.#wake();
    });
    this.whenClosed = new Promise((resolve) =>
      socket.on('close', () => {
        this.#closed = true;
        resolve();
        this.#wake();
      }),
    );
    socket.on('error', () => undefined);
  }

  /** Connects to 127.0.0.1:port (from `localAddress`, given as a string or in the options). */
  static connect(port: number, opts: RawConnectOptions | string = {}): Promise<RawClient> {
    const o = typeof opts === 'string' ? { localAddress: opts } : opts;
    return new Promise((resolve, reject) => {
      const s = netConnect({ port, host: '127.0.0.1', localAddress: o.localAddress }, () => resolve(new RawClient(s, o.encoding ?? 'utf8')));
      s.once('error', reject);
    });
  }

  /**
   * TLS on this connection from now on (after `<proceed/>` of STARTTLS, or at once for
   * direct TLS, after a PROXY header if any): resolves with the client of the TLS stream
   * once the handshake is done. This client reads no more.
   */
  startTls(opts: ConnectionOptions = {}): Promise<RawClient> {
    this.socket.removeAllListeners('data');
    const tls = tlsConnect({ ...opts, socket: this.socket });
    return new Promise((resolve, reject) => {
      tls.once('secureConnect', () => resolve(new RawClient(tls, 'utf8', tls)));
      tls.once('error', reject);
    });
  }

  get text(): string {
    return this.#buf;
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  #wake(): void {
    for (const check of [...this.#checks]) check();
  }

  /** Waits until `ready()` holds, checked whenever data comes or the connection closes; fails with `failure()` after `timeoutMs`. */
  when(ready: () => boolean, timeoutMs: number, failure: () => string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!ready()) return;
        this.#checks.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#checks.delete(check);
        reject(new Error(failure()));
      }, timeoutMs);
      this.#checks.add(check);
    });
  }

  /** Waits until the received text matches; returns all of it. */
  async until(re: RegExp, timeoutMs = 3000): Promise<string> {
    await this.when(() => re.test(this.#buf), timeoutMs, () => `timed out waiting for ${re}; got: ${this.#buf}`);
    return this.#buf;
  }

  /** Waits until the received text matches; returns it and starts the text afresh. */
  async take(re: RegExp, timeoutMs = 3000): Promise<string> {
    const out = await this.until(re, timeoutMs);
    this.#buf = '';
    return out;
  }

  async untilClosed(timeoutMs = 3000): Promise<void> {
    await this.when(() => this.#closed, timeoutMs, () => 'connection did not close');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** An HTTP answer, read whole. */
export interface RawHttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * One HTTP request with node:http, for what fetch cannot do: choose the local address,
 * send any method, header or body bytes. The answer is read whole.
 */
export function rawHttp(url: string, opts: { localAddress?: string; method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawHttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', localAddress: opts.localAddress ?? '127.0.0.1', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Mutual presence subscription between two online clients, through the protocol
 * (RFC 6121 §3): each asks, the other approves.
 */
export async function befriend(a: TestClient, au: string, b: TestClient, bu: string): Promise<void> {
  const jid = (u: string) => `${u}@${DOMAIN}`;
  for (const [x1, u1, x2, u2] of [
    [a, au, b, bu],
    [b, bu, a, au],
  ] as const) {
    await x1.send(xml('presence', { to: jid(u2), type: 'subscribe' }));
    await x2.presence((p) => p.attrs.type === 'subscribe' && p.attrs.from === jid(u1), `subscribe from ${u1}`);
    await x2.send(xml('presence', { to: jid(u1), type: 'subscribed' }));
    await x1.presence((p) => p.attrs.type === 'subscribed' && p.attrs.from === jid(u2), `subscribed from ${u2}`);
  }
}

export const STREAM_HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'>`;

/** Plain-text PLAIN login on a raw socket (for servers with requireTls: false). */
export async function rawLogin(port: number, user: string, password = 'secret', resource = 'raw'): Promise<RawClient> {
  const c = await RawClient.connect(port);
  c.write(STREAM_HEADER);
  await c.until(/<\/stream:features>/);
  c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
  await c.until(/<success/);
  c.write(STREAM_HEADER);
  await c.until(/<bind/);
  c.write(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.until(/id='b1'/);
  return c;
}

/**
 * Tries to log in and resolves with the failure condition. (Drives connect/open by hand:
 * `start()` of @xmpp/client leaves a promise unhandled when authentication fails.)
 */
export async function authFailure(opts: ClientOptions): Promise<string> {
  const xmpp = makeClient(opts);
  const failed = new Promise<{ condition?: string; message?: string }>((resolve) => xmpp.on('error', resolve));
  const online = new Promise<void>((resolve) => xmpp.on('online', () => resolve()));
  await xmpp.connect(xmpp.options.service);
  xmpp.open({ domain: xmpp.options.domain }).catch(() => undefined);
  const result: { condition?: string; message?: string } = await Promise.race([failed, online.then(() => ({ condition: 'online' }))]);
  await xmpp.disconnect().catch(() => undefined);
  return result.condition ?? result.message ?? 'unknown';
}
