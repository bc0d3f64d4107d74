/**
 * Fuzz target: the XML stream parser (src/xml/parser.ts) and the serializer.
 * Properties: arbitrary bytes in any chunking never throw and report at most one error
 * of a known condition; the same bytes split anywhere give the same events as in one read;
 * limits (stanza bytes, depth, attributes, name length) hold exactly; generated elements
 * round-trip through serialize → parse; invalid UTF-8 (overlong forms, surrogates, code
 * points above U+10FFFF, stray bytes) is rejected wherever the reads are cut.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isUtf8 } from 'node:buffer';
import { XmlElement } from '../../../src/xml/element.js';
import { serialize } from '../../../src/xml/serializer.js';
import { parseElement } from '../../../src/xml/parse.js';
import { XmlStreamParser, type XmlParserLimits } from '../../../src/xml/parser.js';
import { bytes, splitAt, type FuzzTarget } from '../harness.js';

const CONDITIONS = new Set(['not-well-formed', 'restricted-xml', 'policy-violation', 'unsupported-encoding', 'bad-namespace-prefix']);

type Event = ['start', string, string] | ['el', string, string] | ['end'] | ['error', string];

/** Feeds `chunks` to a fresh parser; returns its events (checking no event follows an error). */
export function parseEvents(chunks: Buffer[], opts: { framed?: boolean; limits?: Partial<XmlParserLimits> } = {}): Event[] {
  const events: Event[] = [];
  let failed = false;
  const note = (e: Event) => {
    assert.ok(!failed, `event ${e[0]} after an error`);
    events.push(e);
  };
  const p = new XmlStreamParser(
    {
      onStreamStart: (name, _a, ns) => note(['start', name, ns]),
      onElement: (el) => note(['el', serialize(el), el.ns]),
      onStreamEnd: () => note(['end']),
      onError: (condition, text) => {
        assert.ok(CONDITIONS.has(condition), `unknown condition ${condition}`);
        assert.equal(typeof text, 'string');
        note(['error', condition]);
        failed = true;
      },
    },
    opts,
  );
  for (const c of chunks) p.write(c);
  assert.equal(p.failed, failed);
  return events;
}

// ------------------------------------------------------------------ generators

/** XML 1.0 characters only (no controls, no U+FFFE/U+FFFF, no lone surrogates). */
function xmlChars(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || c >= 0x10000) out += ch;
  }
  return out;
}

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom('&', '<', '>', ']]>', '"', "'", '\r\n', '\t', 'é', '中', '😀', '\u200d'),
).map(xmlChars);

const nameStart = fc.constantFrom('a', 'b', 'z', 'A', 'Q', '_', 'é', 'ж', '中');
const nameRest = fc.constantFrom('a', 'm', '0', '9', '-', '.', '_', 'é', '·', '中');
const xmlName = fc
  .tuple(nameStart, fc.array(nameRest, { maxLength: 8 }))
  .map(([a, b]) => a + b.join(''))
  .filter((n) => n !== 'xmlns' && !n.startsWith('xml'));

const attrs = fc.uniqueArray(fc.tuple(xmlName, text), { maxLength: 4, selector: (t) => t[0] });

interface GenEl {
  name: string;
  attrs: Array<[string, string]>;
  children: Array<GenEl | string>;
}

const element: fc.Arbitrary<GenEl> = fc.letrec<{ el: GenEl }>((tie) => ({
  el: fc.record({
    name: xmlName,
    attrs,
    children: fc.array(fc.oneof({ depthSize: 'small', withCrossShrink: true }, text, tie('el')), { maxLength: 4 }),
  }),
})).el;

/** Builds top-down, so that each child inherits the namespace of the parent it is appended to. */
function build(g: GenEl, ns?: string, parent?: XmlElement): XmlElement {
  const a: Record<string, string> = {};
  if (ns !== undefined) a.xmlns = ns;
  for (const [k, v] of g.attrs) a[k] = v;
  const el = new XmlElement(g.name, a);
  parent?.append(el);
  for (const c of g.children) {
    if (typeof c === 'string') el.t(c);
    else build(c, undefined, el);
  }
  return el;
}

/** Adjacent text merged, empty text dropped: what a parser can give back. */
function normalize(el: XmlElement): unknown {
  const children: unknown[] = [];
  for (const c of el.children) {
    if (typeof c === 'string') {
      if (c === '') continue;
      const last = children[children.length - 1];
      if (typeof last === 'string') children[children.length - 1] = last + c;
      else children.push(c);
    } else children.push(normalize(c));
  }
  return { name: el.name, ns: el.ns, attrs: { ...el.attrs }, children };
}

function depthOf(g: GenEl): number {
  let d = 0;
  for (const c of g.children) if (typeof c !== 'string') d = Math.max(d, depthOf(c));
  return d + 1;
}
function every(g: GenEl, f: (g: GenEl) => boolean): boolean {
  return f(g) && g.children.every((c) => typeof c === 'string' || every(c, f));
}

/** Raw XML text content: plain text, references and CDATA sections (the forms the serializer never writes). */
const rawContent = fc
  .array(
    fc.oneof(
      text.map((t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/]]>/g, ']]&gt;')),
      fc.constantFrom('&amp;', '&lt;', '&gt;', '&quot;', '&apos;', '&#65;', '&#x4e2d;', '&#x1F600;', '&#10;'),
      text.map((t) => `<![CDATA[${t.replace(/]]>/g, '')}]]>`),
    ),
    { maxLength: 5 },
  )
  .map((a) => a.join(''));

/** A stream: header, stanzas (some with raw content, double quotes, whitespace), maybe the end. */
const streamDoc = fc
  .record({
    decl: fc.boolean(),
    stanzas: fc.array(
      fc.oneof(
        element.map((g) => serialize(build(g))),
        fc.tuple(xmlName, rawContent).map(([n, c]) => `<${n} a="x&amp;y" b='1'>${c}</${n}>`),
        fc.constantFrom(' ', '\n', '\r\n\t'),
      ),
      { maxLength: 6 },
    ),
    close: fc.boolean(),
  })
  .map(
    (d) =>
      (d.decl ? "<?xml version='1.0' encoding='UTF-8'?>" : '') +
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>" +
      d.stanzas.join('') +
      (d.close ? '</stream:stream>' : ''),
  );

/** Mutations of a well-formed document: a byte replaced, inserted or removed. */
const mutatedDoc = fc
  .tuple(streamDoc, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 3 }))
  .map(([doc, muts]) => {
    const b = [...Buffer.from(doc)];
    for (const [at, v, op] of muts) {
      const i = at % (b.length + 1);
      if (op === 'set' && i < b.length) b[i] = v;
      else if (op === 'insert') b.splice(i, 0, v);
      else if (op === 'delete' && i < b.length) b.splice(i, 1);
    }
    return b;
  });

/** XML-looking token soup: reaches deeper into the tag and reference code than random bytes. */
const tokenSoup = fc
  .array(
    fc.oneof(
      fc.constantFrom('<', '>', '/', '/>', '</', '<?', '?>', '<!', '<![CDATA[', ']]>', '<!--', '-->', '<!DOCTYPE x [<!ENTITY e "x">]>', '&', ';', '&#', '&#x', '&amp;', '&e;', '=', '"', "'", ' ', ':', 'xmlns', 'xmlns:p', 'p:', 'xml:lang', 'a', 'stream:stream', 'message', 'body', '\u00e9', '\ufffe', '\u0000', '\ud800', '\uffff', '\u{10ffff}'),
      fc.string({ maxLength: 4 }),
    ),
    { maxLength: 40 },
  )
  .map((a) => [...Buffer.from(a.join(''))]);

const cuts = fc.array(fc.nat(), { maxLength: 8 });

// Invalid UTF-8 sequences (RFC 3629 §3, §10).
const BAD_UTF8: number[][] = [
  [0xc0, 0x80], // overlong NUL
  [0xc1, 0xbf], // overlong
  [0xe0, 0x80, 0x80], // overlong 3-byte
  [0xe0, 0x9f, 0xbf],
  [0xf0, 0x80, 0x80, 0x80], // overlong 4-byte
  [0xf0, 0x8f, 0xbf, 0xbf],
  [0xed, 0xa0, 0x80], // UTF-16 surrogate D800
  [0xed, 0xbf, 0xbf], // DFFF
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf5, 0x80, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
  [0xfe],
  [0xff],
  [0x80], // stray continuation
  [0xbf, 0xbf],
  [0xc3, 0x41], // lead byte without its continuation
  [0xe4, 0xb8, 0x41],
  [0xf0, 0x9f, 0x98, 0x41],
];

const limitsArb = fc.record({
  maxStanzaBytes: fc.integer({ min: 16, max: 400 }),
  maxDepth: fc.integer({ min: 1, max: 6 }),
  maxAttributes: fc.integer({ min: 0, max: 5 }),
  maxNameLength: fc.integer({ min: 1, max: 10 }),
});

// ------------------------------------------------------------------ properties

export const parserTarget: FuzzTarget = {
  name: 'parser',
  properties: [
    {
      name: 'arbitrary bytes in any chunking never throw and end in at most one known error',
      arbitrary: fc.record({ input: fc.oneof(bytes(300), tokenSoup, mutatedDoc), cuts, framed: fc.boolean() }),
      check({ input, cuts: c, framed }) {
        parseEvents(splitAt(Buffer.from(input), c), { framed, limits: { maxStanzaBytes: 512, maxDepth: 8, maxAttributes: 8, maxNameLength: 32 } });
      },
      runs: 1500,
    },
    {
      name: 'a document split at any points gives the same events as in one read',
      arbitrary: fc.record({ input: fc.oneof(streamDoc.map((d) => [...Buffer.from(d)]), mutatedDoc, tokenSoup), cuts, framed: fc.boolean() }),
      check({ input, cuts: c, framed }) {
        const buf = Buffer.from(input);
        const whole = parseEvents([buf], { framed });
        const split = parseEvents(splitAt(buf, c), { framed });
        const oneByOne = parseEvents(splitAt(buf, Array.from({ length: buf.length }, (_, i) => i)), { framed });
        if (isValidUtf8Prefix(buf)) {
          assert.deepEqual(split, whole);
          assert.deepEqual(oneByOne, whole);
        } else if (isUtf8(buf.subarray(0, carriedFrom(buf)))) {
          // Only the last bytes are bad, and they look like the start of a sequence: the
          // parser waits for more (and refuses them when it comes).
        } else {
          // Invalid UTF-8 is refused before the read it is in is parsed: a split read may
          // first emit what came before it, or hit another error in it first.
          for (const ev of [split, oneByOne]) assert.equal(ev.at(-1)?.[0], 'error', 'invalid UTF-8 was not refused');
          assert.equal(whole.at(-1)?.[0], 'error');
        }
      },
      runs: 400,
    },
    {
      name: 'a well-formed stream parses without error and gives back every stanza',
      arbitrary: fc.record({ doc: streamDoc, cuts }),
      check({ doc, cuts: c }) {
        const ev = parseEvents(splitAt(Buffer.from(doc), c));
        assert.ok(!ev.some((e) => e[0] === 'error'), `error on a well-formed stream: ${JSON.stringify(ev.at(-1))}`);
        assert.equal(ev[0]?.[0], 'start');
      },
      runs: 300,
    },
    {
      name: 'generated elements round-trip through serialize and parse',
      arbitrary: fc.tuple(element, fc.option(fc.constantFrom('jabber:client', 'urn:x', 'a&b<c'), { nil: undefined })),
      check([g, ns]) {
        const el = build(g, ns);
        const back = parseElement(serialize(el));
        assert.deepEqual(normalize(back), normalize(el));
        assert.equal(serialize(back), serialize(el));
      },
      runs: 500,
    },
    {
      name: 'limits on stanza bytes, depth, attributes and name length hold exactly in any chunking',
      arbitrary: fc.record({ g: element, limits: limitsArb, cuts }),
      check({ g, limits, cuts: c }) {
        const stanza = serialize(build(g));
        const exceeds =
          Buffer.byteLength(stanza) > limits.maxStanzaBytes ||
          depthOf(g) > limits.maxDepth ||
          !every(g, (e) => e.attrs.length <= limits.maxAttributes) ||
          !every(g, (e) => e.name.length <= limits.maxNameLength && e.attrs.every(([k]) => k.length <= limits.maxNameLength));
        const ev = parseEvents(splitAt(Buffer.from(`<s>${stanza} <x/>`), c), { limits });
        const last = ev.at(-1)!;
        if (exceeds) {
          assert.deepEqual(last, ['error', 'policy-violation']);
          assert.ok(!ev.some((e) => e[0] === 'el'), 'a stanza over the limits was handed over');
        } else {
          assert.deepEqual(ev[1], ['el', stanza, '']);
        }
      },
      runs: 500,
    },
    {
      name: 'invalid UTF-8 anywhere in a stanza is refused in any chunking',
      arbitrary: fc.record({ before: text, bad: fc.constantFrom(...BAD_UTF8), after: text, cuts, framed: fc.boolean() }),
      check({ before, bad, after, cuts: c, framed }) {
        const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
        const buf = Buffer.concat([
          Buffer.from(`${framed ? '' : '<stream:stream xmlns:stream="http://etherx.jabber.org/streams">'}<message><body>${esc(before)}`),
          Buffer.from(bad),
          Buffer.from(`${esc(after)}</body></message><x/>`),
        ]);
        const ev = parseEvents(splitAt(buf, c), { framed });
        assert.deepEqual(ev.at(-1), ['error', 'not-well-formed']);
        assert.ok(!ev.some((e) => e[0] === 'el'), 'an element with invalid UTF-8 was handed over');
      },
      runs: 400,
    },
  ],
};

/** Where the bytes a parser carries to the next read start (as `completeUtf8End` in parser.ts). */
function carriedFrom(buf: Buffer): number {
  let k = buf.length - 1;
  const stop = Math.max(0, buf.length - 4);
  while (k >= stop && (buf[k]! & 0xc0) === 0x80) k--;
  if (k < 0 || k < stop) return buf.length;
  const b = buf[k]!;
  const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return k + need > buf.length ? k : buf.length;
}

/** True when the buffer is UTF-8, allowing an unfinished (so far valid) sequence at its very end. */
function isValidUtf8Prefix(buf: Buffer): boolean {
  if (isUtf8(buf)) return true;
  for (let k = 1; k <= 3 && k <= buf.length; k++) {
    if (!isUtf8(buf.subarray(0, buf.length - k))) continue;
    const tail = buf.subarray(buf.length - k);
    for (const second of [0x80, 0x90, 0xa0, 0xbf]) {
      for (let more = 1; more <= 3; more++) {
        const completion = [second, 0x80, 0x80].slice(0, more);
        if (isUtf8(Buffer.concat([tail, Buffer.from(completion)])) && tail.length + more <= 4) return true;
      }
    }
  }
  return false;
}
