/**
 * A raw BOSH client for tests: every request is written by hand, so tests can send
 * what real clients would not (repeated, early, late or broken requests).
 */
import { parseElement } from '../../src/xml/parse.js';
import type { XmlElement } from '../../src/xml/element.js';
import { ScramClient } from '../../src/xmpp/sasl/client.js';
import { DOMAIN } from './server.js';

export const HTTPBIND = 'http://jabber.org/protocol/httpbind';

export interface BoshReply {
  status: number;
  text: string;
  body: XmlElement;
  headers: Headers;
}

export async function post(url: string, xml: string, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<BoshReply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'text/xml; charset=utf-8', ...init.headers },
    body: xml,
    signal: init.signal,
  });
  const text = await res.text();
  let body: XmlElement;
  try {
    body = parseElement(text);
  } catch {
    body = parseElement(`<body xmlns='${HTTPBIND}'/>`);
  }
  return { status: res.status, text, body, headers: res.headers };
}

export class RawBosh {
  rid: number;
  sid = '';
  jid = '';
  constructor(
    readonly url: string,
    rid = 1_000_000 + Math.floor(Math.random() * 1_000_000),
  ) {
    this.rid = rid;
  }

  /** The body for the next request (rid advanced) with these extra attributes and payload. */
  next(attrs: Record<string, string> = {}, payload = ''): { rid: number; xml: string } {
    const rid = this.rid++;
    return { rid, xml: this.body(rid, attrs, payload) };
  }

  body(rid: number, attrs: Record<string, string> = {}, payload = ''): string {
    let a = ` rid='${rid}'`;
    if (this.sid) a += ` sid='${this.sid}'`;
    for (const [k, v] of Object.entries(attrs)) a += ` ${k}='${v}'`;
    return `<body xmlns='${HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh'${a}>${payload}</body>`;
  }

  /** Sends the next request. */
  async send(attrs: Record<string, string> = {}, payload = '', init: { signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<BoshReply> {
    return post(this.url, this.next(attrs, payload).xml, init);
  }

  async create(attrs: Record<string, string> = {}): Promise<BoshReply> {
    const r = await this.send({ to: DOMAIN, wait: '60', hold: '1', ver: '1.6', 'xmpp:version': '1.0', 'xml:lang': 'en', ...attrs });
    this.sid = r.body.attrs.sid ?? '';
    return r;
  }

  /** Creates a session and logs in with SCRAM-SHA-256, binds, and sends initial presence if asked. */
  async login(user: string, password = 'secret', opts: { resource?: string; presence?: boolean; create?: Record<string, string> } = {}): Promise<void> {
    await this.create(opts.create);
    const scram = new ScramClient('SHA-256', user, password);
    let r = await this.send({}, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${scram.first().toString('base64')}</auth>`);
    const challenge = await this.until(r, 'challenge');
    r = await this.send({}, `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${(await scram.final(Buffer.from(challenge.text(), 'base64'))).toString('base64')}</response>`);
    const success = await this.until(r, 'success');
    scram.verify(Buffer.from(success.text(), 'base64'));
    r = await this.send({ 'xmpp:restart': 'true', to: DOMAIN, 'xml:lang': opts.create?.['xml:lang'] ?? 'en' });
    await this.until(r, 'features');
    r = await this.send(
      {},
      `<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${opts.resource ?? 'bosh'}</resource></bind></iq>`,
    );
    const bound = await this.until(r, 'iq');
    this.jid = bound.getChild('bind')?.getChildText('jid') ?? '';
    if (opts.presence !== false) {
      r = await this.send({}, "<presence xmlns='jabber:client'/>");
      await this.until(r, 'presence');
    }
  }

  /** Polls (empty requests) until a payload with this local name arrives; returns it. */
  async until(first: BoshReply, name: string, pred: (el: XmlElement) => boolean = () => true, tries = 20): Promise<XmlElement> {
    let r = first;
    for (let i = 0; i < tries; i++) {
      if (r.body.attrs.type === 'terminate') throw new Error(`session terminated: ${r.text}`);
      const hit = r.body.elements().find((e) => e.localName === name && pred(e));
      if (hit) return hit;
      r = await this.send();
    }
    throw new Error(`no <${name}/> after ${tries} requests`);
  }
}
