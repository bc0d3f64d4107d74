/**
 * Helpers for the limits tests: raw connections from a chosen local address (the whole
 * 127.0.0.0/8 is loopback on Linux, so 127.0.0.2 is "another IP address" for per-IP
 * limits; RawClient of ./client.ts underneath), PLAIN logins on them, BOSH requests from
 * a chosen address, and a wait on a condition (no timed assertions).
 */
import type { Socket } from 'node:net';
import { RawClient, rawHttp, STREAM_HEADER } from './client.js';

/**
 * A raw connection from a chosen address whose waits look at the text from an offset on
 * (a login's answers, after what came before): the shared RawClient underneath.
 */
export class Conn {
  readonly #raw: RawClient;

  private constructor(raw: RawClient) {
    this.#raw = raw;
  }

  static async open(port: number, localAddress = '127.0.0.1'): Promise<Conn> {
    return new Conn(await RawClient.connect(port, { localAddress }));
  }

  get socket(): Socket {
    return this.#raw.socket;
  }
  get text(): string {
    return this.#raw.text;
  }
  get closed(): boolean {
    return this.#raw.closed;
  }

  write(data: string): void {
    this.#raw.write(data);
  }

  /** Waits until the received text (from `from` on) matches; returns that part. */
  async until(re: RegExp, from = 0, timeoutMs = 10_000): Promise<string> {
    await this.#raw.when(() => re.test(this.#raw.text.slice(from)), timeoutMs, () => `timed out waiting for ${re} in ${this.#raw.text}`);
    return this.#raw.text.slice(from);
  }

  async untilClosed(timeoutMs = 10_000): Promise<void> {
    await this.#raw.when(() => this.#raw.closed, timeoutMs, () => `timed out waiting for the connection to close (got ${this.#raw.text})`);
  }

  close(): void {
    this.#raw.close();
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
export async function postFrom(url: string, body: string, localAddress: string): Promise<{ status: number; text: string }> {
  const { status, text } = await rawHttp(url, { method: 'POST', localAddress, headers: { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) }, body });
  return { status, text };
}

/** A BOSH session creation request body. */
export function boshCreate(rid: number, domain: string): string {
  return `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='${rid}' to='${domain}' wait='1' hold='1' ver='1.6' xmpp:version='1.0'/>`;
}
