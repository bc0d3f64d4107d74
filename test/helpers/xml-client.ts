/**
 * An element-level raw client over TCP (plain, for servers with requireTls: false) or
 * WebSocket: it writes exactly what the test says and parses what comes back into
 * elements, so tests can count stanzas the way XEP-0198 does and cut connections at will.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { XmlStreamParser } from '../../src/xml/parser.js';
import { parseElement } from '../../src/xml/parse.js';
import type { XmlElement } from '../../src/xml/element.js';
import { ScramClient } from '../../src/xmpp/sasl/client.js';
import { DOMAIN } from './server.js';

const SM = 'urn:xmpp:sm:3';
const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const STANZAS = new Set(['message', 'presence', 'iq']);

export class XmlClient {
  /** Every top-level element received (features, nonzas, stanzas), in order. */
  readonly received: XmlElement[] = [];
  /** Stanzas received since `<enabled/>` or `<resumed/>` (XEP-0198 `h`); null before. */
  h: number | null = null;
  closed = false;
  /** The server closed the stream (`</stream:stream>` or `<close/>`). */
  streamClosed = false;
  readonly #consumed = new Set<XmlElement>();
  #waiters: Array<() => void> = [];
  #socket: Socket | null = null;
  #ws: WebSocket | null = null;
  #parser: XmlStreamParser | null = null;
  /** Counting starts after this element (set by resume()). */
  #startCountAt: number | null = null;

  private constructor() {}

  static tcp(port: number): Promise<XmlClient> {
    const c = new XmlClient();
    c.#parser = new XmlStreamParser(
      {
        onStreamStart() {},
        onElement: (el) => c.#element(el),
        onStreamEnd: () => {
          c.streamClosed = true;
          c.#wake();
        },
        onError() {},
      },
      { limits: { maxStanzaBytes: 1 << 24 } },
    );
    return new Promise((resolve, reject) => {
      const s = netConnect({ port, host: '127.0.0.1' }, () => resolve(c));
      c.#socket = s;
      s.on('data', (d: Buffer) => c.#parser!.write(d));
      s.on('close', () => {
        c.closed = true;
        c.#wake();
      });
      s.on('error', () => undefined);
      s.once('error', reject);
    });
  }

  static ws(url: string): Promise<XmlClient> {
    const c = new XmlClient();
    const ws = new WebSocket(url, ['xmpp']);
    c.#ws = ws;
    ws.on('message', (d) => {
      const el = parseElement(d.toString());
      if (el.ns === FRAMING && el.name === 'close') {
        c.streamClosed = true;
        c.#wake();
        return;
      }
      if (el.ns === FRAMING && el.name === 'open') return;
      c.#element(el);
    });
    ws.on('close', () => {
      c.closed = true;
      c.#wake();
    });
    ws.on('error', () => undefined);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    });
  }

  #element(el: XmlElement): void {
    if (this.h !== null && STANZAS.has(el.name)) this.h = (this.h + 1) >>> 0;
    if (el.ns === SM && el.name === 'enabled') this.h = 0;
    if (el.ns === SM && el.name === 'resumed') this.h = this.#startCountAt;
    this.received.push(el);
    // A new stream follows SASL success on TCP.
    if (el.localName === 'success' && this.#parser) this.#parser.reset();
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  write(data: string): void {
    if (this.#socket) this.#socket.write(data);
    // RFC 7395 §3.3: one element per message, stanzas with their namespace declared.
    else this.#ws!.send(data.replace(/^<(message|presence|iq)(?=[\s/>])(?![^>]*xmlns=)/, "<$1 xmlns='jabber:client'"));
  }

  /** The first element not yet taken that matches. */
  async waitFor(pred: (el: XmlElement) => boolean, what = 'element', timeoutMs = 4000): Promise<XmlElement> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.received.find((el) => !this.#consumed.has(el) && pred(el));
      if (hit) {
        this.#consumed.add(hit);
        return hit;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; received:\n${this.received.map(String).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the SM element `name` (urn:xmpp:sm:3). */
  sm(name: string, timeoutMs?: number): Promise<XmlElement> {
    return this.waitFor((el) => el.ns === SM && el.name === name, `<${name} xmlns='${SM}'/>`, timeoutMs);
  }

  /** Resolves with nothing when no matching element arrives within `ms`. */
  async expectNone(pred: (el: XmlElement) => boolean, ms = 300, what = 'element'): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const hit = this.received.find((el) => !this.#consumed.has(el) && pred(el));
    if (hit) throw new Error(`unexpected ${what}: ${hit.toString()}`);
  }

  /** Message bodies received, in order. */
  bodies(): string[] {
    return this.received.filter((e) => e.name === 'message').map((e) => e.getChildText('body') ?? '');
  }

  /** The stream's `xml:lang`, sent in every stream header when set. */
  lang: string | null = null;

  #open(): void {
    const lang = this.lang === null ? '' : ` xml:lang='${this.lang}'`;
    if (this.#socket) {
      this.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'${lang}>`);
    } else {
      this.write(`<open xmlns='${FRAMING}' to='${DOMAIN}' version='1.0'${lang}/>`);
    }
  }

  /** Opens the stream and authenticates with SCRAM-SHA-256; resolves with the post-auth features. */
  async login(user: string, password = 'secret'): Promise<XmlElement> {
    this.#open();
    await this.waitFor((el) => el.localName === 'features', 'features');
    const scram = new ScramClient('SHA-256', user, password);
    this.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${scram.first().toString('base64')}</auth>`);
    const challenge = await this.waitFor((el) => el.localName === 'challenge', 'SASL challenge');
    const final = await scram.final(Buffer.from(challenge.text(), 'base64'));
    this.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${final.toString('base64')}</response>`);
    const success = await this.waitFor((el) => el.localName === 'success', 'SASL success');
    scram.verify(Buffer.from(success.text(), 'base64'));
    this.#open();
    return this.waitFor((el) => el.localName === 'features', 'features after authentication');
  }

  async bind(resource: string): Promise<string> {
    this.write(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const r = await this.waitFor((el) => el.name === 'iq' && el.attrs.id === 'bind', 'bind result');
    return r.getChild('bind')?.getChildText('jid') ?? '';
  }

  /** Logs in, binds, enables stream management (with resumption unless told) and sends presence if asked. */
  static async session(
    connect: () => Promise<XmlClient>,
    user: string,
    resource: string,
    opts: { resume?: boolean; max?: number; presence?: boolean } = {},
  ): Promise<{ c: XmlClient; id: string }> {
    const c = await connect();
    await c.login(user);
    await c.bind(resource);
    const id = await c.enable(opts);
    if (opts.presence !== false) {
      c.write('<presence/>');
      await c.waitFor((el) => el.name === 'presence' && el.attrs.from === `${user}@${DOMAIN}/${resource}`, 'own presence');
    }
    return { c, id };
  }

  async enable(opts: { resume?: boolean; max?: number } = {}): Promise<string> {
    const attrs = (opts.resume ?? true ? " resume='true'" : '') + (opts.max !== undefined ? ` max='${opts.max}'` : '');
    this.write(`<enable xmlns='${SM}'${attrs}/>`);
    const r = await this.waitFor((el) => el.ns === SM && (el.name === 'enabled' || el.name === 'failed'), 'enabled');
    if (r.name !== 'enabled') throw new Error(`enable failed: ${r.toString()}`);
    return r.attrs.id ?? '';
  }

  /** Sends `<resume/>` with `h` (this client then counts on from `h`); resolves with `<resumed/>` or `<failed/>`. */
  async resume(previd: string, h: number): Promise<XmlElement> {
    this.#startCountAt = h;
    this.write(`<resume xmlns='${SM}' previd='${previd}' h='${h}'/>`);
    return this.waitFor((el) => el.ns === SM && (el.name === 'resumed' || el.name === 'failed'), 'resumed or failed');
  }

  ack(h = this.h ?? 0): void {
    this.write(`<a xmlns='${SM}' h='${h}'/>`);
  }

  /** Cuts the connection without closing the stream (a lost network). */
  cut(): void {
    if (this.#socket) this.#socket.destroy();
    else this.#ws!.terminate();
  }

  /** Closes the stream cleanly (acknowledging what was received first, as XEP-0198 §8 recommends, unless told not to). */
  end(opts: { ack?: boolean } = {}): void {
    if (this.closed) return;
    if (this.h !== null && opts.ack !== false) this.ack();
    if (this.#socket) {
      this.#socket.end('</stream:stream>');
      setTimeout(() => this.#socket?.destroy(), 200).unref();
    } else {
      this.#ws!.send(`<close xmlns='${FRAMING}'/>`);
      setTimeout(() => this.#ws?.terminate(), 200).unref();
    }
  }

  async untilClosed(timeoutMs = 4000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection did not close');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
