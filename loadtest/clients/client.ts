/**
 * What the generator needs of a client, whatever the transport: log in (SASL PLAIN or
 * SCRAM-SHA-1, bind), send serialized stanzas, hand over received stanzas, close.
 * Transports differ only in framing, as in the server.
 */
import type { XmlElement } from '../../src/xml/element.js';
import { ScramClient } from '../../src/xmpp/sasl/client.js';

export interface ClientOptions {
  host: string;
  port: number;
  path: string;
  domain: string;
  username: string;
  password: string;
  resource: string;
  mechanism: 'PLAIN' | 'SCRAM-SHA-1';
  localAddress?: string;
  boshWait: number;
  /** Enable stream management (XEP-0198, acks only) where the server offers it. */
  streamManagement: boolean;
}

const SM = 'urn:xmpp:sm:3';

export interface ClientFailure {
  condition: string;
  text?: string;
}

export abstract class LoadClient {
  /** Received stanzas once logged in. */
  onStanza: ((el: XmlElement) => void) | null = null;
  /** The session ended (stream error, closed connection); `condition` names why. */
  onClose: ((condition: string) => void) | null = null;
  jid = '';
  protected closed = false;
  /** Elements received during login, for the login steps to wait on. */
  #waiter: { pred: (el: XmlElement) => boolean; resolve: (el: XmlElement) => void; reject: (e: ClientFailure) => void } | null = null;
  #early: XmlElement[] = [];
  protected online = false;
  /** The server offered stream management after authentication. */
  protected smOffered = false;
  /** Stanzas handled, once stream management is on (null: off). */
  #smHandled: number | null = null;

  constructor(readonly opts: ClientOptions) {}

  /** Logged in and not closed: only then may traffic be sent (a stanza written during the
   * login would break the negotiation, and be counted as sent and lost). */
  get isOnline(): boolean {
    return this.online && !this.closed;
  }

  /** Connects and logs in: SASL, restart, bind. */
  abstract login(): Promise<void>;
  abstract send(xml: string): void;
  /** Closes abruptly (a dropped connection) or politely. */
  abstract close(polite: boolean): void;

  /** Called by transports for every element at stanza level. */
  protected received(el: XmlElement): void {
    if (this.online) {
      if (el.localName === 'error' && el.ns === 'http://etherx.jabber.org/streams') {
        this.ended(streamErrorCondition(el));
        return;
      }
      if (this.#smHandled !== null) {
        if (el.ns === SM) {
          if (el.name === 'r') this.send(`<a xmlns='${SM}' h='${this.#smHandled}'/>`);
          return;
        }
        this.#smHandled = (this.#smHandled + 1) % 2 ** 32;
      }
      this.onStanza?.(el);
      return;
    }
    if (el.localName === 'error' && el.ns === 'http://etherx.jabber.org/streams') {
      this.#fail({ condition: 'stream:' + streamErrorCondition(el) });
      return;
    }
    if (this.#waiter && this.#waiter.pred(el)) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(el);
      return;
    }
    this.#early.push(el);
  }

  protected ended(condition: string): void {
    if (this.closed) return;
    this.closed = true;
    this.online = false;
    this.#fail({ condition });
    this.onClose?.(condition);
  }

  #fail(f: ClientFailure): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(f);
  }

  /** Waits for an element during login. */
  protected expect(pred: (el: XmlElement) => boolean, timeoutMs = 30_000): Promise<XmlElement> {
    const i = this.#early.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.#early.splice(i, 1)[0]!);
    if (this.closed) return Promise.reject({ condition: 'closed' } satisfies ClientFailure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject({ condition: 'timeout' } satisfies ClientFailure);
      }, timeoutMs);
      this.#waiter = {
        pred,
        resolve: (el) => {
          clearTimeout(timer);
          resolve(el);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /**
   * SASL over whatever framing: `sendNonza` writes one element. Resolves once the server
   * said success; rejects with the failure condition.
   */
  protected async authenticate(sendNonza: (xml: string) => void): Promise<void> {
    const o = this.opts;
    const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
    const isSasl = (el: XmlElement) => el.ns === SASL && (el.name === 'success' || el.name === 'failure' || el.name === 'challenge');
    if (o.mechanism === 'PLAIN') {
      sendNonza(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from(`\0${o.username}\0${o.password}`).toString('base64')}</auth>`);
    } else {
      const scram = new ScramClient('SHA-1', o.username, o.password);
      sendNonza(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-1'>${scram.first().toString('base64')}</auth>`);
      const challenge = await this.expect(isSasl);
      if (challenge.name !== 'challenge') throw saslFailure(challenge);
      sendNonza(`<response xmlns='${SASL}'>${(await scram.final(Buffer.from(challenge.text(), 'base64'))).toString('base64')}</response>`);
    }
    const outcome = await this.expect(isSasl);
    if (outcome.name !== 'success') throw saslFailure(outcome);
  }

  /** Binds the resource; `send` writes one stanza. */
  protected async bind(send: (xml: string) => void): Promise<void> {
    send(`<iq type='set' id='bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${this.opts.resource}</resource></bind></iq>`);
    const r = await this.expect((el) => el.name === 'iq' && el.attrs.id === 'bind');
    if (r.attrs.type !== 'result') throw { condition: 'bind:' + (r.getChild('error')?.firstElement()?.name ?? 'error') } satisfies ClientFailure;
    this.jid = r.getChild('bind')?.getChildText('jid') ?? `${this.opts.username}@${this.opts.domain}/${this.opts.resource}`;
    this.online = true;
    if (this.opts.streamManagement && this.smOffered) {
      // Acks only, no resumption: a client that drops logs in anew, and the server hands
      // what it had not acknowledged to offline storage.
      send(`<enable xmlns='${SM}'/>`);
      this.#smHandled = 0;
    }
    // Stanzas that came with the login (e.g. presence) go to the handler too.
    for (const el of this.#early.splice(0)) this.onStanza?.(el);
  }
}

function saslFailure(el: XmlElement): ClientFailure {
  return { condition: 'sasl:' + (el.firstElement()?.name ?? 'failure') };
}

function streamErrorCondition(el: XmlElement): string {
  return el.elements().find((e) => e.name !== 'text')?.name ?? 'undefined-condition';
}
