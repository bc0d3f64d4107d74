/**
 * A minimal XMPP client for benchmarks: plaintext TCP, SASL PLAIN, bind, presence.
 * It parses only what it must (string matching on complete stanzas), so one process can
 * drive thousands of sessions without becoming the bottleneck.
 */
import { connect, type Socket } from 'node:net';

export interface RawSessionOptions {
  host: string;
  port: number;
  domain: string;
  username: string;
  password: string;
  resource?: string;
  /** Local source address (127.0.0.x) to spread connections over more ephemeral ports. */
  localAddress?: string;
}

const HEADER = (domain: string) =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`;

export class RawSession {
  readonly socket: Socket;
  #buf = '';
  #waiting: { re: RegExp; resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Called with each complete <message/> once logged in. */
  onMessage: ((stanza: string) => void) | null = null;
  jid = '';

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (d: string) => this.#onData(d));
    socket.on('error', (e) => this.#waiting?.reject(e));
    socket.on('close', () => this.#waiting?.reject(new Error('connection closed')));
  }

  static open(opts: RawSessionOptions): Promise<RawSession> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: opts.host, port: opts.port, localAddress: opts.localAddress }, () => resolve(new RawSession(s)));
      s.once('error', reject);
    });
  }

  #onData(d: string): void {
    this.#buf += d;
    if (this.#waiting) {
      if (this.#waiting.re.test(this.#buf)) {
        const w = this.#waiting;
        this.#waiting = null;
        this.#buf = '';
        w.resolve();
      }
      return;
    }
    if (!this.onMessage) {
      if (this.#buf.length > 65536) this.#buf = '';
      return;
    }
    // Hand over complete messages; keep the tail.
    let start = 0;
    for (;;) {
      const end = this.#buf.indexOf('</message>', start);
      if (end < 0) break;
      const open = this.#buf.indexOf('<message', start);
      this.onMessage(this.#buf.slice(open < 0 ? start : open, end + 10));
      start = end + 10;
    }
    if (start > 0) this.#buf = this.#buf.slice(start);
  }

  #until(re: RegExp, timeoutMs = 30_000): Promise<void> {
    if (re.test(this.#buf)) {
      this.#buf = '';
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timeout waiting for ${re}`)), timeoutMs);
      this.#waiting = {
        re,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Logs in with PLAIN (plaintext stream: the server must allow it) and binds. */
  static async login(opts: RawSessionOptions): Promise<RawSession> {
    const s = await RawSession.open(opts);
    s.socket.write(HEADER(opts.domain));
    await s.#until(/<\/stream:features>/);
    s.socket.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${opts.username}\0${opts.password}`).toString('base64')}</auth>`,
    );
    await s.#until(/<success|<failure/);
    s.socket.write(HEADER(opts.domain));
    await s.#until(/<\/stream:features>/);
    const resource = opts.resource ?? 'bench';
    s.socket.write(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    await s.#until(/<\/iq>/);
    s.jid = `${opts.username}@${opts.domain}/${resource}`;
    return s;
  }

  /** Sends initial presence and waits for the echo. */
  async available(): Promise<void> {
    this.socket.write('<presence/>');
    await this.#until(/<presence/);
  }

  send(xml: string): void {
    this.socket.write(xml);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Runs `fn` over items with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

/** 127.0.0.1, 127.0.0.2, ... for connection i: spreads source ports over several addresses. */
export function sourceAddress(i: number, perAddress = 20_000): string {
  return `127.0.0.${1 + Math.floor(i / perAddress)}`;
}
