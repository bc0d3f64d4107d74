/**
 * A streaming XML parser made for XMPP.
 * References: XML 1.0 (5th ed.) §2–§4; Namespaces in XML 1.0; RFC 6120 §4.9.3 (stream
 * error conditions), §11 (XML usage: restricted XML, UTF-8 only).
 *
 * It takes bytes, not strings: UTF-8 is validated and decoded here, with incomplete
 * sequences carried across reads, and limits are enforced while the bytes arrive, never
 * after a whole stanza has been built (STYLE.md trap 1).
 *
 * Two modes:
 * - `stream`: one root element (`<stream:stream>`, or BOSH `<body>`); each complete child
 *   of the root is handed over as an element.
 * - `framed`: a sequence of complete top-level elements (WebSocket, RFC 7395).
 *
 * SECURITY: no DTD, no comments, no processing instructions (except the XML declaration
 * at the start of a stream), no entity beyond the five predefined; these end the stream
 * with `restricted-xml`. Sizes, depth and attribute counts are bounded (`policy-violation`).
 */
import { isUtf8 } from 'node:buffer';
import { XmlElement, type XmlAttrs } from './element.js';
import { PREDEFINED_ENTITIES } from './escape.js';

export type XmlErrorCondition =
  | 'not-well-formed'
  | 'restricted-xml'
  | 'policy-violation'
  | 'unsupported-encoding'
  | 'bad-namespace-prefix';

export interface XmlParserLimits {
  /** Bytes of one stanza (a top-level element, start tag included). Also bounds the stream header. */
  maxStanzaBytes: number;
  /** Elements nested inside one stanza, the stanza itself counted. */
  maxDepth: number;
  /** Attributes on one element. */
  maxAttributes: number;
  /** Characters of an element or attribute name. */
  maxNameLength: number;
}

export const DEFAULT_LIMITS: XmlParserLimits = Object.freeze({
  maxStanzaBytes: 65536,
  maxDepth: 48,
  maxAttributes: 64,
  maxNameLength: 256,
});

export interface XmlParserHandler {
  /** The root element opened (stream mode). `ns` is its resolved namespace. */
  onStreamStart(name: string, attrs: XmlAttrs, ns: string): void;
  /** A complete stanza (child of the root, or a top-level element in framed mode). */
  onElement(el: XmlElement): void;
  /** The root element closed (stream mode). */
  onStreamEnd(): void;
  /** The input is bad; the parser ignores everything after this call. */
  onError(condition: XmlErrorCondition, text: string): void;
}

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';
const MAX_ENTITY_LENGTH = 12; // "&#x10FFFF;" is the longest legal reference

const STANZA_TOO_LARGE = 'stanza larger than ';

/** The error text for a stanza over `max` bytes (transports that bound size themselves use it too). */
export function stanzaSizeErrorText(max: number): string {
  return `${STANZA_TOO_LARGE}${max} bytes`;
}

/** Is this error text the parser's for a stanza over `maxStanzaBytes` (the stanza-size limit)? */
export function isStanzaSizeError(text: string | undefined): boolean {
  return text !== undefined && text.startsWith(STANZA_TOO_LARGE);
}

/** Thrown inside the parser to unwind to `write`; never escapes it. */
class ParseFailure {
  constructor(
    readonly condition: XmlErrorCondition,
    readonly text: string,
  ) {}
}

interface Scope {
  /** Default namespace in force. */
  ns: string;
  /** Prefix declarations made on this element (null when none: the common case). */
  prefixes: Record<string, string> | null;
}

type PendingKind = 'markup' | 'cdata' | 'decl' | 'entity';

export class XmlStreamParser {
  readonly #handler: XmlParserHandler;
  readonly #limits: XmlParserLimits;
  readonly #framed: boolean;
  /** Depth at which an opening element is a stanza: 2 under a stream root, 1 in framed mode. */
  readonly #stanzaLevel: number;

  // Byte layer
  #carryBytes: Buffer | null = null;

  // Markup or reference split across reads: its text so far, and how far it has been scanned.
  #pending = '';
  #pendingKind: PendingKind = 'markup';
  #pendingScan = 0;
  #pendingQuote = 0;
  /** The pending text is ASCII (its chars are its bytes); false when unknown. */
  #pendingAscii = true;
  /** `]` characters (0–2) ending the character data of the previous read, for the `]]>` check. */
  #textBrackets = 0;

  // Tree state
  #depth = 0;
  #stack: XmlElement[] = [];
  #scopes: Scope[] = [];
  #rootSeen = false;
  #rootName = '';
  #atDocumentStart = true;
  /** Bytes of the current stanza counted so far (or of the stream header before the root opens). */
  #stanzaBytes = 0;

  #failed = false;
  #ended = false;
  /** Bumped by reset() and halt() so the loop notices a callback changed the state. */
  #epoch = 0;
  #halted = false;

  constructor(handler: XmlParserHandler, options?: { limits?: Partial<XmlParserLimits>; framed?: boolean }) {
    this.#handler = handler;
    this.#limits = { ...DEFAULT_LIMITS, ...options?.limits };
    this.#framed = options?.framed ?? false;
    this.#stanzaLevel = this.#framed ? 1 : 2;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** No element is open and nothing is half-read (framed mode: one message was whole). */
  get isBetweenElements(): boolean {
    return this.#depth === 0 && this.#pending === '' && this.#carryBytes === null;
  }

  get limits(): Readonly<XmlParserLimits> {
    return this.#limits;
  }

  /**
   * Starts a new stream (after STARTTLS or SASL success). When called from a handler
   * callback, the rest of the current read is parsed as the new stream.
   */
  reset(): void {
    this.#pending = '';
    this.#pendingScan = 0;
    this.#pendingQuote = 0;
    this.#textBrackets = 0;
    this.#depth = 0;
    this.#stack = [];
    this.#scopes = [];
    this.#rootSeen = false;
    this.#atDocumentStart = true;
    this.#stanzaBytes = 0;
    this.#ended = false;
    this.#rootName = '';
    this.#epoch++;
  }

  /**
   * Stops processing the current read, dropping what is left of it (STARTTLS: bytes that
   * came in the clear after `<starttls/>` must never be parsed as part of the TLS stream).
   * Call reset() before feeding the next stream.
   */
  halt(): void {
    this.#halted = true;
    this.#carryBytes = null;
    this.#epoch++;
  }

  /** Feeds bytes. Never throws for bad input: errors go to `onError`. */
  write(chunk: Buffer): void {
    if (this.#failed) return;
    let buf = chunk;
    if (this.#carryBytes) {
      buf = Buffer.concat([this.#carryBytes, chunk]);
      this.#carryBytes = null;
    }
    const end = completeUtf8End(buf);
    if (end < buf.length) {
      this.#carryBytes = Buffer.from(buf.subarray(end));
      if (end === 0) return;
    }
    // SECURITY: reject invalid UTF-8 (overlong forms, surrogates, stray bytes) before decoding.
    const complete = end === buf.length ? buf : buf.subarray(0, end);
    if (!isUtf8(complete)) {
      this.#fail('not-well-formed', 'invalid UTF-8');
      return;
    }
    this.writeString(complete.toString('utf8'), end);
  }

  /**
   * Feeds already-decoded text. `byteLength` is its UTF-8 size when the caller knows it.
   * Used by `write` and by transports whose framing delivers strings (WebSocket text frames).
   */
  writeString(s: string, byteLength = Buffer.byteLength(s)): void {
    if (this.#failed) return;
    this.#halted = false;
    try {
      this.#feed(s, s.length === byteLength);
    } catch (e) {
      if (e instanceof ParseFailure) this.#fail(e.condition, e.text);
      else throw e;
    }
  }

  #fail(condition: XmlErrorCondition, text: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#pending = '';
    this.#stack = [];
    this.#carryBytes = null;
    this.#handler.onError(condition, text);
  }

  // ---------------------------------------------------------------- main loop

  #feed(input: string, isAscii: boolean): void {
    if (this.#pending !== '' && this.#pendingScan > 0 && this.#pendingKind !== 'entity' && input.indexOf('>') < 0) {
      // SECURITY: markup trickled in small reads cannot end in this one (all markup ends
      // with '>'): append without rescanning, or each read would copy the whole of it.
      if (this.#pendingKind !== 'markup' || this.#glueTagText(input)) {
        this.#pending += input;
        this.#pendingScan = this.#pending.length;
        this.#pendingAscii &&= isAscii;
        this.#stanzaBytes += isAscii ? input.length : Buffer.byteLength(input);
        this.#checkStanzaSize();
        this.#checkPendingSize(this.#pending.length);
        return;
      }
    }
    let s = input;
    let i = 0;
    // Bytes of `s` before position `i` that are already counted in #stanzaBytes.
    if (this.#pending !== '') {
      // Continue an unfinished piece of markup: glue the new text to it. Its bytes are
      // counted again from its start, so the whole of `s` must be ASCII to count chars.
      s = this.#pending + input;
      i = 0;
      this.#pending = '';
      isAscii = isAscii && this.#pendingAscii;
    }
    const len = s.length;
    const pendingLen = len - input.length;
    // Count the bytes of this read against the current stanza; exact for ASCII, and for
    // other text computed at stanza boundaries (see #countSlice).
    let countedFrom = pendingLen; // chars before this index are already counted

    while (i < len) {
      if (this.#ended || this.#halted) {
        if (this.#halted) return;
        // After the root closed: only whitespace may follow.
        if (!isWhitespace(s.charCodeAt(i))) throw new ParseFailure('not-well-formed', 'data after the end of the stream');
        i++;
        continue;
      }
      const epoch = this.#epoch;
      const c = s.charCodeAt(i);
      if (c !== 60 /* < */) {
        i = this.#text(s, i, len);
        if (i < 0) {
          // An entity reference runs past the end of this read: kept in #pending.
          this.#pendingAscii = isAscii;
          countedFrom = this.#count(s, countedFrom, len, isAscii);
          return;
        }
        continue;
      }
      // Markup: find where it ends.
      const kindEnd = this.#markupEnd(s, i, len);
      if (kindEnd < 0) {
        // Unfinished: keep from '<' on, with the scan position, and wait for more.
        this.#pendingAscii = isAscii;
        countedFrom = this.#count(s, countedFrom, len, isAscii);
        this.#checkPendingSize(len - i);
        return;
      }
      const inStanzaBefore = this.#depth >= this.#stanzaLevel;
      const startsStanza = !inStanzaBefore && this.#isStartTag(s, i);
      if (startsStanza) {
        // Bytes before this '<' belong to no stanza.
        countedFrom = i;
        this.#stanzaBytes = 0;
      }
      const next = kindEnd;
      this.#stanzaBytes += this.#bytesOf(s, countedFrom, next, isAscii);
      countedFrom = next;
      this.#checkStanzaSize();
      this.#markup(s, i, next);
      i = next;
      if (this.#epoch !== epoch) {
        // A callback reset or halted the parser: the rest of this read belongs to the new stream.
        if (this.#halted) return;
        countedFrom = i;
        this.#stanzaBytes = 0;
      }
    }
    this.#count(s, countedFrom, len, isAscii);
  }

  /** Counts bytes of s[from, to) against the stanza in progress; returns `to`. */
  #count(s: string, from: number, to: number, isAscii: boolean): number {
    if (to > from && (this.#depth >= this.#stanzaLevel || this.#pending !== '' || !this.#rootSeen)) {
      this.#stanzaBytes += this.#bytesOf(s, from, to, isAscii);
      this.#checkStanzaSize();
    }
    return to;
  }

  #bytesOf(s: string, from: number, to: number, isAscii: boolean): number {
    if (isAscii) return to - from;
    return Buffer.byteLength(from === 0 && to === s.length ? s : s.slice(from, to));
  }

  #checkStanzaSize(): void {
    if (this.#stanzaBytes > this.#limits.maxStanzaBytes) {
      throw new ParseFailure('policy-violation', `${STANZA_TOO_LARGE}${this.#limits.maxStanzaBytes} bytes`);
    }
  }

  #checkPendingSize(chars: number): void {
    // Chars never outnumber bytes, so this bounds the memory held for an unfinished tag.
    if (chars > this.#limits.maxStanzaBytes) {
      throw new ParseFailure('policy-violation', `${STANZA_TOO_LARGE}${this.#limits.maxStanzaBytes} bytes`);
    }
  }

  #isStartTag(s: string, i: number): boolean {
    const c = s.charCodeAt(i + 1);
    return c !== 47 /* / */ && c !== 33 /* ! */ && c !== 63 /* ? */;
  }

  // ---------------------------------------------------------------- text

  /**
   * Character data from `i` up to the next '<'. Returns the index of that '<' (or len),
   * or -1 when an entity reference is cut by the end of the read (then kept pending).
   */
  #text(s: string, i: number, len: number): number {
    if (this.#depth < this.#stanzaLevel) {
      // Between stanzas: whitespace keep-alives, dropped. Before the root: whitespace only
      // (and a byte-order mark at the very start).
      let lt = s.indexOf('<', i);
      if (lt < 0) lt = len;
      if (!this.#rootSeen && !this.#framed) {
        for (let k = i; k < lt; k++) {
          const c = s.charCodeAt(k);
          if (!isWhitespace(c) && !(c === 0xfeff && this.#atDocumentStart && k === 0)) {
            throw new ParseFailure('not-well-formed', 'text before the root element');
          }
        }
      }
      return lt;
    }
    const textStart = i;
    let start = i;
    let out = '';
    while (i < len) {
      const c = s.charCodeAt(i);
      if (c === 60 /* < */) break;
      if (c === 38 /* & */) {
        const semi = s.indexOf(';', i + 1);
        if (semi < 0 || semi - i > MAX_ENTITY_LENGTH) {
          if (len - i > MAX_ENTITY_LENGTH) throw new ParseFailure('not-well-formed', 'unterminated entity reference');
          out += s.slice(start, i);
          if (out !== '') this.#appendText(out);
          this.#pending = s.slice(i);
          this.#pendingKind = 'entity';
          return -1;
        }
        out += s.slice(start, i) + decodeReference(s.slice(i + 1, semi));
        i = semi + 1;
        start = i;
        continue;
      }
      if (c < 0x20) {
        if (c !== 0x9 && c !== 0xa && c !== 0xd) throw new ParseFailure('not-well-formed', 'control character');
      } else if (c === 62 /* > */) {
        // The `]]` may have come at the end of the previous read.
        if (this.#bracketsBefore(s, textStart, i) >= 2) {
          throw new ParseFailure('not-well-formed', "']]>' in character data");
        }
      } else if (c >= 0xfffe) {
        throw new ParseFailure('not-well-formed', 'character not allowed in XML');
      }
      i++;
    }
    out += s.slice(start, i);
    if (out !== '') this.#appendText(out);
    // A read that ends in character data: its trailing `]` count for a `>` in the next one.
    this.#textBrackets = i === len ? this.#bracketsBefore(s, textStart, len) : 0;
    return i;
  }

  /** `]` characters (at most 2) right before s[i] in character data, with those that ended the previous read. */
  #bracketsBefore(s: string, textStart: number, i: number): number {
    let b = 0;
    while (b < 2 && i - 1 - b >= textStart && s.charCodeAt(i - 1 - b) === 93) b++;
    return b === i - textStart ? Math.min(2, b + this.#textBrackets) : b;
  }

  #appendText(t: string): void {
    const top = this.#stack[this.#stack.length - 1]!;
    const ch = top.children;
    const last = ch.length - 1;
    if (last >= 0 && typeof ch[last] === 'string') ch[last] = (ch[last] as string) + t;
    else ch.push(t);
  }

  // ---------------------------------------------------------------- markup

  /**
   * Index just past the markup that starts at `i` ('<'), or -1 if it runs past the end of
   * the read (then the unfinished text and scan state are kept in #pending*).
   */
  #markupEnd(s: string, i: number, len: number): number {
    // Resume a scan when this markup was pending before (i === 0 then).
    let scan = i + 1;
    let quote = 0;
    let kind: PendingKind = 'markup';
    if (i === 0 && this.#pendingScan > 0) {
      scan = this.#pendingScan;
      quote = this.#pendingQuote;
      kind = this.#pendingKind;
      this.#pendingScan = 0;
      this.#pendingQuote = 0;
    } else {
      const c1 = s.charCodeAt(i + 1);
      // scannedTo === i means "kind not decided yet": decided again when more text comes.
      if (i + 1 >= len) return this.#keep(s, i, i, 0, 'markup');
      if (c1 === 33 /* ! */) {
        // Only CDATA sections are allowed; decide once enough characters are here.
        const head = s.slice(i, i + 9);
        if (head === '<![CDATA[') {
          kind = 'cdata';
          scan = i + 9;
        } else if ('<![CDATA['.startsWith(head)) {
          return this.#keep(s, i, i, 0, 'markup');
        } else if (head.startsWith('<!--')) {
          throw new ParseFailure('restricted-xml', 'comments are not allowed');
        } else if (head.length >= 3 || i + 2 < len) {
          throw new ParseFailure('restricted-xml', 'DTDs and declarations are not allowed');
        } else {
          return this.#keep(s, i, i, 0, 'markup');
        }
      } else if (c1 === 63 /* ? */) {
        if (!this.#atDocumentStart) throw new ParseFailure('restricted-xml', 'processing instructions are not allowed');
        kind = 'decl';
        scan = i + 2;
      }
    }
    if (kind === 'cdata') {
      const close = s.indexOf(']]>', Math.max(scan - 2, i + 9));
      if (close < 0) return this.#keep(s, i, len, 0, 'cdata');
      return close + 3;
    }
    if (kind === 'decl') {
      const close = s.indexOf('?>', Math.max(scan - 1, i + 2));
      if (close < 0) return this.#keep(s, i, len, 0, 'decl');
      return close + 2;
    }
    // A tag: find '>' outside quoted attribute values.
    for (let k = scan; k < len; k++) {
      const c = s.charCodeAt(k);
      if (quote !== 0) {
        if (c === quote) quote = 0;
      } else if (c === 62 /* > */) {
        return k + 1;
      } else if (c === 34 || c === 39) {
        quote = c;
      } else if (c === 60 /* < */) {
        throw new ParseFailure('not-well-formed', "'<' inside a tag");
      }
    }
    return this.#keep(s, i, len, quote, 'markup');
  }

  /**
   * Follows the quotes of a pending tag through `t` (no '>' in it); false when `t` needs
   * the full scan (a '<', maybe an error).
   */
  #glueTagText(t: string): boolean {
    if (t.indexOf('<') >= 0) return false;
    let quote = this.#pendingQuote;
    for (let k = 0; k < t.length; k++) {
      const c = t.charCodeAt(k);
      if (quote !== 0) {
        if (c === quote) quote = 0;
      } else if (c === 34 || c === 39) quote = c;
    }
    this.#pendingQuote = quote;
    return true;
  }

  #keep(s: string, from: number, scannedTo: number, quote: number, kind: PendingKind): -1 {
    this.#pending = s.slice(from);
    this.#pendingScan = scannedTo - from;
    this.#pendingQuote = quote;
    this.#pendingKind = kind;
    return -1;
  }

  /** Handles one complete piece of markup s[i, end). */
  #markup(s: string, i: number, end: number): void {
    this.#textBrackets = 0;
    const c1 = s.charCodeAt(i + 1);
    if (c1 === 63 /* ? */) {
      this.#xmlDeclaration(s.slice(i, end));
      return;
    }
    this.#atDocumentStart = false;
    if (c1 === 33 /* ! */) {
      // CDATA section
      if (this.#depth < this.#stanzaLevel) throw new ParseFailure('not-well-formed', 'CDATA outside an element');
      const text = s.slice(i + 9, end - 3);
      checkChars(text);
      if (text !== '') this.#appendText(text);
      return;
    }
    if (c1 === 47 /* / */) {
      this.#endTag(s, i + 2, end - 1);
      return;
    }
    const selfClosing = s.charCodeAt(end - 2) === 47;
    this.#startTag(s, i + 1, selfClosing ? end - 2 : end - 1, selfClosing);
  }

  #xmlDeclaration(decl: string): void {
    if (!/^<\?xml[\s?]/.test(decl)) throw new ParseFailure('restricted-xml', 'processing instructions are not allowed');
    this.#atDocumentStart = false;
    const enc = /encoding\s*=\s*["']([^"']*)["']/.exec(decl);
    if (enc && enc[1]!.toLowerCase() !== 'utf-8') {
      throw new ParseFailure('unsupported-encoding', `encoding ${enc[1]} is not UTF-8`);
    }
    const ver = /version\s*=\s*["']([^"']*)["']/.exec(decl);
    if (!ver || ver[1] !== '1.0') throw new ParseFailure('not-well-formed', 'bad XML declaration');
  }

  #startTag(s: string, from: number, to: number, selfClosing: boolean): void {
    if (this.#rootSeen && this.#depth === 0 && !this.#framed) {
      throw new ParseFailure('not-well-formed', 'a second root element');
    }
    // Name
    let k = from;
    while (k < to && !isWhitespace(s.charCodeAt(k))) k++;
    const name = s.slice(from, k);
    this.#checkName(name);
    const depthInStanza = this.#depth - this.#stanzaLevel + 2;
    if (depthInStanza > this.#limits.maxDepth) {
      throw new ParseFailure('policy-violation', `elements nested deeper than ${this.#limits.maxDepth}`);
    }

    // Attributes
    const attrs = new Attrs();
    let count = 0;
    let prefixes: Record<string, string> | null = null;
    let defaultNs: string | undefined;
    while (k < to) {
      const c = s.charCodeAt(k);
      if (isWhitespace(c)) {
        k++;
        continue;
      }
      const nameStart = k;
      while (k < to) {
        const d = s.charCodeAt(k);
        if (d === 61 /* = */ || isWhitespace(d)) break;
        k++;
      }
      const aname = s.slice(nameStart, k);
      this.#checkName(aname);
      while (k < to && isWhitespace(s.charCodeAt(k))) k++;
      if (s.charCodeAt(k) !== 61) throw new ParseFailure('not-well-formed', `attribute ${aname} has no value`);
      k++;
      while (k < to && isWhitespace(s.charCodeAt(k))) k++;
      const q = s.charCodeAt(k);
      if (q !== 34 && q !== 39) throw new ParseFailure('not-well-formed', `attribute ${aname} is not quoted`);
      const close = s.indexOf(q === 34 ? '"' : "'", k + 1);
      if (close < 0 || close > to) throw new ParseFailure('not-well-formed', `attribute ${aname} is not closed`);
      const value = attrValue(s.slice(k + 1, close));
      k = close + 1;
      if (k < to && !isWhitespace(s.charCodeAt(k))) {
        throw new ParseFailure('not-well-formed', 'attributes must be separated by whitespace');
      }
      if (aname in attrs) throw new ParseFailure('not-well-formed', `duplicate attribute ${aname}`);
      if (++count > this.#limits.maxAttributes) {
        throw new ParseFailure('policy-violation', `more than ${this.#limits.maxAttributes} attributes`);
      }
      attrs[aname] = value;
      if (aname === 'xmlns') defaultNs = value;
      else if (aname.startsWith('xmlns:')) {
        const p = aname.slice(6);
        if (p === '' || p === 'xmlns' || (p === 'xml' && value !== XML_NS)) {
          throw new ParseFailure('bad-namespace-prefix', `bad declaration of prefix ${p}`);
        }
        if (value === '') throw new ParseFailure('not-well-formed', `empty namespace for prefix ${p}`);
        (prefixes ??= Object.create(null) as Record<string, string>)[p] = value;
      }
    }

    // Namespaces
    const parent = this.#scopes[this.#scopes.length - 1];
    const scope: Scope = { ns: defaultNs ?? parent?.ns ?? '', prefixes };
    this.#scopes.push(scope);
    const colon = name.indexOf(':');
    const ns = colon < 0 ? scope.ns : this.#resolvePrefix(name.slice(0, colon));
    for (const a in attrs) {
      const ac = a.indexOf(':');
      if (ac > 0 && !a.startsWith('xmlns:')) this.#resolvePrefix(a.slice(0, ac));
    }

    this.#depth++;
    if (this.#depth < this.#stanzaLevel) {
      // The stream root.
      this.#rootSeen = true;
      this.#rootName = name;
      this.#stanzaBytes = 0;
      this.#handler.onStreamStart(name, attrs, ns);
      if (selfClosing) {
        // An empty root (a BOSH <body/> without payloads): opened and closed at once.
        this.#depth = 0;
        this.#scopes.pop();
        this.#ended = true;
        this.#handler.onStreamEnd();
      }
      return;
    }

    const el = new XmlElement(name, attrs, null, ns);
    if (this.#depth === this.#stanzaLevel) {
      this.#rootSeen = true;
    } else {
      this.#stack[this.#stack.length - 1]!.children.push(el);
    }
    this.#stack.push(el);
    if (selfClosing) this.#close(el);
  }

  #endTag(s: string, from: number, to: number): void {
    let k = to;
    while (k > from && isWhitespace(s.charCodeAt(k - 1))) k--;
    const name = s.slice(from, k);
    if (this.#depth === 0) throw new ParseFailure('not-well-formed', `unexpected end tag ${name}`);
    if (this.#depth < this.#stanzaLevel) {
      if (name !== this.#rootName) throw new ParseFailure('not-well-formed', `end tag ${name} does not match ${this.#rootName}`);
      this.#depth = 0;
      this.#scopes.pop();
      this.#ended = true;
      this.#handler.onStreamEnd();
      return;
    }
    const el = this.#stack[this.#stack.length - 1]!;
    if (el.name !== name) throw new ParseFailure('not-well-formed', `end tag ${name} does not match ${el.name}`);
    this.#close(el);
  }

  #close(el: XmlElement): void {
    this.#stack.pop();
    this.#scopes.pop();
    this.#depth--;
    if (this.#depth === this.#stanzaLevel - 1) {
      this.#stanzaBytes = 0;
      this.#declareInheritedPrefixes(el);
      this.#handler.onElement(el);
    }
  }

  #resolvePrefix(prefix: string): string {
    if (prefix === 'xml') return XML_NS;
    if (prefix === 'xmlns') return XMLNS_NS;
    for (let d = this.#scopes.length - 1; d >= 0; d--) {
      const p = this.#scopes[d]!.prefixes;
      if (p && prefix in p) return p[prefix]!;
    }
    throw new ParseFailure('bad-namespace-prefix', `undeclared prefix ${prefix}`);
  }

  /**
   * A stanza that uses a prefix declared on the stream root (or the root's default
   * namespace) gets the declaration copied, so it serializes on its own.
   */
  #declareInheritedPrefixes(el: XmlElement): void {
    const root = this.#scopes[0];
    if (!root?.prefixes || this.#framed) return;
    const used = new Set<string>();
    collectPrefixes(el, used);
    for (const p of used) {
      if (p in root.prefixes && !(('xmlns:' + p) in el.attrs)) el.attrs['xmlns:' + p] = root.prefixes[p]!;
    }
  }

  #checkName(name: string): void {
    if (name.length === 0) throw new ParseFailure('not-well-formed', 'empty name');
    if (name.length > this.#limits.maxNameLength) {
      throw new ParseFailure('policy-violation', `name longer than ${this.#limits.maxNameLength}`);
    }
    const c0 = name.charCodeAt(0);
    if (!isNameStart(c0)) throw new ParseFailure('not-well-formed', `bad name ${name.slice(0, 40)}`);
    for (let k = 1; k < name.length; k++) {
      if (!isNameChar(name.charCodeAt(k))) throw new ParseFailure('not-well-formed', `bad name ${name.slice(0, 40)}`);
    }
    const colon = name.indexOf(':');
    if (colon === 0 || colon === name.length - 1 || (colon > 0 && name.indexOf(':', colon + 1) > 0)) {
      throw new ParseFailure('not-well-formed', `bad qualified name ${name.slice(0, 40)}`);
    }
  }
}

// ---------------------------------------------------------------- helpers

/**
 * Attribute maps: objects whose prototype has no prototype, so `__proto__` or
 * `constructor` are plain attribute names (SECURITY), while V8 keeps them in fast mode
 * (Object.create(null) would make a dictionary per element).
 */
const Attrs = function Attrs() {} as unknown as new () => XmlAttrs;
Attrs.prototype = Object.create(null) as XmlAttrs;

/** Index after the last complete UTF-8 sequence (an unfinished one at the end is carried). */
function completeUtf8End(buf: Buffer): number {
  const len = buf.length;
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  let k = len - 1;
  const stop = Math.max(0, len - 4);
  while (k >= stop && (buf[k]! & 0xc0) === 0x80) k--;
  if (k < 0 || k < stop) return len; // no lead byte in reach: let validation reject it
  const b = buf[k]!;
  const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return k + need > len ? k : len;
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

function isNameStart(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    c === 95 ||
    c === 58 ||
    (c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && !(c >= 0x2000 && c <= 0x206f) && c < 0xfffe)
  );
}

function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 0xb7;
}

/** Rejects characters XML 1.0 §2.2 does not allow. */
function checkChars(s: string): void {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if ((c < 0x20 && c !== 0x9 && c !== 0xa && c !== 0xd) || c >= 0xfffe) {
      throw new ParseFailure('not-well-formed', 'character not allowed in XML');
    }
  }
}

/** Decodes `name` of `&name;`: a predefined entity or a character reference. */
function decodeReference(ref: string): string {
  if (ref.charCodeAt(0) === 35 /* # */) {
    const hex = ref.charCodeAt(1) === 120; /* x */
    const digits = ref.slice(hex ? 2 : 1);
    if (digits === '' || !(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) {
      throw new ParseFailure('not-well-formed', `bad character reference &${ref};`);
    }
    const cp = parseInt(digits, hex ? 16 : 10);
    if (
      !(cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff))
    ) {
      throw new ParseFailure('not-well-formed', `character reference &${ref}; is not an XML character`);
    }
    return String.fromCodePoint(cp);
  }
  const v = PREDEFINED_ENTITIES[ref];
  if (v === undefined) {
    // SECURITY: no entity beyond the five predefined (RFC 6120 §11.1).
    if (/^[A-Za-z_:][\w.:-]*$/.test(ref)) throw new ParseFailure('restricted-xml', `entity &${ref}; is not allowed`);
    throw new ParseFailure('not-well-formed', 'bad entity reference');
  }
  return v;
}

/** An attribute value: references decoded, whitespace normalized (XML 1.0 §3.3.3). */
function attrValue(raw: string): string {
  let needsWork = false;
  for (let k = 0; k < raw.length; k++) {
    const c = raw.charCodeAt(k);
    if (c === 38 || c < 0x20 || c === 60 || c >= 0xfffe) {
      needsWork = true;
      break;
    }
  }
  if (!needsWork) return raw;
  let out = '';
  let start = 0;
  for (let k = 0; k < raw.length; k++) {
    const c = raw.charCodeAt(k);
    if (c === 60) throw new ParseFailure('not-well-formed', "'<' in an attribute value");
    if (c === 38) {
      const semi = raw.indexOf(';', k + 1);
      if (semi < 0 || semi - k > MAX_ENTITY_LENGTH) throw new ParseFailure('not-well-formed', 'unterminated entity reference');
      out += raw.slice(start, k) + decodeReference(raw.slice(k + 1, semi));
      k = semi;
      start = k + 1;
    } else if (c === 0x9 || c === 0xa || c === 0xd) {
      out += raw.slice(start, k) + ' ';
      start = k + 1;
    } else if (c < 0x20 || c >= 0xfffe) {
      throw new ParseFailure('not-well-formed', 'character not allowed in XML');
    }
  }
  return out + raw.slice(start);
}

function collectPrefixes(el: XmlElement, out: Set<string>): void {
  const c = el.name.indexOf(':');
  if (c > 0) out.add(el.name.slice(0, c));
  for (const a in el.attrs) {
    const ac = a.indexOf(':');
    if (ac > 0 && !a.startsWith('xmlns:') && !a.startsWith('xml:')) out.add(a.slice(0, ac));
  }
  for (const ch of el.children) if (typeof ch !== 'string') collectPrefixes(ch, out);
}
