/**
 * Helpers for the limits tests: raw connections from a chosen local address (the whole
 * 127.0.0.0/8 is loopback on Linux, so 127.0.0.2 is "another IP address" for per-IP
 * limits), PLAIN logins on them, BOSH requests from a chosen address, and a wait on a
 * condition (no timed assertions).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { request } from 'node:http';
import { STREAM_HEADER } from './client.js';

export class Conn {
  #buf = '';
  #closed = false;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (this.#buf += d));
    socket.on('close', () => (this.#closed = true));
    socket.on('error', () => undefined);
  }

  static open(port: number, localAddress = '127.0.0.1'): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ port, host: '127.0.0.1', localAddress }, () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }

  get text(): string {
    return this.#buf;
  }
  get closed(): boolean {
    return this.#closed;
  }

  write(data: string): void {
    this.socket.write(data);
  }

  /** Waits until the received text (from `from` on) matches; returns that part. */
  async until(re: RegExp, from = 0, timeoutMs = 10_000): Promise<string> {
    await waitUntil(() => re.test(this.#buf.slice(from)), timeoutMs, () => `${re} in ${this.#buf}`);
    return this.#buf.slice(from);
  }

  async untilClosed(timeoutMs = 10_000): Promise<void> {
    await waitUntil(() => this.#closed, timeoutMs, () => `the connection to close (got ${this.#buf})`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Polls `cond` every 10 ms; rejects after `timeoutMs` (a safety net, not an assertion on time). */
export async function waitUntil(cond: () => boolean, timeoutMs = 10_000, what: () => string = () => 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString('base64');

/**
 * Opens a stream (server with requireTls: false) and tries PLAIN; resolves with the
 * connection and the SASL answer (`<success/>` or `<failure>…</failure>`).
 */
export async function plainAttempt(port: number, user: string, password: string, localAddress = '127.0.0.1'): Promise<{ conn: Conn; answer: string }> {
  const conn = await Conn.open(port, localAddress);
  conn.write(STREAM_HEADER);
  await conn.until(/<\/stream:features>/);
  const at = conn.text.length;
  conn.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain(user, password)}</auth>`);
  const got = await conn.until(/<success[^>]*\/>|<success[^>]*>[^<]*<\/success>|<\/failure>/, at);
  return { conn, answer: got };
}

/** A full login (PLAIN, bind) on a raw connection from `localAddress`. */
export async function login(port: number, user: string, password = 'secret', resource = 'raw', localAddress = '127.0.0.1'): Promise<Conn> {
  const { conn, answer } = await plainAttempt(port, user, password, localAddress);
  if (!answer.includes('<success')) throw new Error(`login of ${user} failed: ${answer}`);
  const at = conn.text.length;
  conn.write(STREAM_HEADER);
  await conn.until(/<bind/, at);
  conn.write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await conn.until(/id='bind1'/, at);
  return conn;
}

/** POSTs to a BOSH endpoint from `localAddress`. */
export function postFrom(url: string, body: string, localAddress: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', localAddress, headers: { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A BOSH session creation request body. */
export function boshCreate(rid: number, domain: string): string {
  return `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='${rid}' to='${domain}' wait='1' hold='1' ver='1.6' xmpp:version='1.0'/>`;
}
