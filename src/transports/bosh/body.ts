/**
 * The BOSH `<body/>` wrapper: parsing requests and writing responses.
 * References: XEP-0124 §6 (wrapper element), §17 (error conditions); XEP-0206 §2 (unqualified stanzas), §5–§7.
 */
import type { XmlElement } from '../../xml/element.js';
import { XmlStreamParser, type XmlParserLimits } from '../../xml/parser.js';
import { escapeAttr } from '../../xml/escape.js';
import { NS } from '../../xmpp/ns.js';

export const NS_HTTPBIND = 'http://jabber.org/protocol/httpbind';
export const NS_XBOSH = 'urn:xmpp:xbosh';
export const NS_STREAM = 'http://etherx.jabber.org/streams';

export interface ParsedBody {
  attrs: Record<string, string>;
  payload: XmlElement[];
}

export class BodyError extends Error {
  readonly code = 'BOSH_BAD_BODY';
  constructor(
    readonly condition: 'bad-request' | 'policy-violation',
    message: string,
  ) {
    super(message);
    this.name = 'BodyError';
  }
}

/**
 * Parses a request body: exactly one `<body/>` in the httpbind namespace, whose children
 * are the payloads. The stanza limits apply to each payload; nothing but whitespace may
 * surround the wrapper.
 */
export function parseBody(data: Buffer, limits: XmlParserLimits): ParsedBody {
  let attrs: Record<string, string> | null = null;
  let rootNs = '';
  let ended = false;
  let error: BodyError | null = null;
  const payload: XmlElement[] = [];
  const parser = new XmlStreamParser(
    {
      onStreamStart(name, a, ns) {
        if (name !== 'body') error ??= new BodyError('bad-request', `the wrapper must be <body/>, not <${name}/>`);
        attrs = a;
        rootNs = ns;
      },
      onElement(el) {
        payload.push(adoptClientNamespace(el));
      },
      onStreamEnd() {
        ended = true;
      },
      onError(condition, text) {
        error ??= new BodyError(condition === 'policy-violation' ? 'policy-violation' : 'bad-request', `${condition}: ${text}`);
      },
    },
    { limits },
  );
  parser.write(data);
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- a BodyError set by the parser callbacks (TS narrows it to `never` here)
  if (error) throw error;
  if (!attrs || !ended) throw new BodyError('bad-request', 'the request is not one complete <body/> element');
  if (rootNs !== NS_HTTPBIND) throw new BodyError('bad-request', `<body/> must be in ${NS_HTTPBIND}`);
  return { attrs, payload };
}

/**
 * XEP-0206 §2 wants stanzas qualified by jabber:client, and notes that many clients do
 * not qualify them: a stanza written without a namespace of its own inherits the
 * wrapper's (httpbind) in the XML. Such a stanza is a jabber:client stanza, as Prosody
 * (mod_bosh clears an httpbind xmlns) and ejabberd treat it; its descendants that
 * inherited httpbind too are jabber:client as well.
 * COMPAT(tsung): tsung 1.7's BOSH client sends `<iq type='set'><bind …/></iq>` unqualified.
 * A stanza with another explicit namespace (jabber:server, …) is left as it is.
 */
function adoptClientNamespace(el: XmlElement): XmlElement {
  if (el.ns !== NS_HTTPBIND || el.name.includes(':')) return el;
  // The top-level element may name httpbind explicitly (Prosody accepts that too).
  if (el.attrs.xmlns === NS_HTTPBIND) delete el.attrs.xmlns;
  requalify(el);
  return el;
}

function requalify(el: XmlElement): void {
  el.ns = NS.CLIENT;
  for (const c of el.children) {
    if (typeof c !== 'string' && c.ns === NS_HTTPBIND && !c.name.includes(':') && c.attrs.xmlns === undefined) requalify(c);
  }
}

/** Serializes a response `<body/>` around already-serialized payloads. */
export function responseBody(attrs: Record<string, string | undefined>, payload: string, needsStreamPrefix: boolean): string {
  let s = `<body xmlns='${NS_HTTPBIND}'`;
  if (needsStreamPrefix) s += ` xmlns:stream='${NS_STREAM}'`;
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined) s += ` ${k}='${escapeAttr(v)}'`;
  }
  return payload === '' ? s + '/>' : s + '>' + payload + '</body>';
}

/**
 * Stanzas inside `<body/>` (and WebSocket frames) stand alone, so they must name their
 * namespace: adds xmlns='jabber:client' to a serialized stanza whose start tag lacks one.
 */
export function withClientNamespace(xml: string): string {
  const end = xml.indexOf('>');
  const space = xml.indexOf(' ');
  const tagEnd = space > 0 && space < end ? space : xml.charCodeAt(end - 1) === 47 ? end - 1 : end;
  const startTag = xml.slice(0, end);
  if (startTag.includes(' xmlns=')) return xml;
  return xml.slice(0, tagEnd) + " xmlns='jabber:client'" + xml.slice(tagEnd);
}
