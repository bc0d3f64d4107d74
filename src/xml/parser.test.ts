import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XmlStreamParser, type XmlErrorCondition, type XmlParserLimits } from './parser.js';
import type { XmlElement } from './element.js';

interface Collected {
  starts: Array<{ name: string; attrs: Record<string, string>; ns: string }>;
  elements: XmlElement[];
  ends: number;
  errors: Array<{ condition: XmlErrorCondition; text: string }>;
}

function collector(opts?: { limits?: Partial<XmlParserLimits>; framed?: boolean }): { p: XmlStreamParser; out: Collected } {
  const out: Collected = { starts: [], elements: [], ends: 0, errors: [] };
  const p = new XmlStreamParser(
    {
      onStreamStart: (name, attrs, ns) => out.starts.push({ name, attrs: { ...attrs }, ns }),
      onElement: (el) => out.elements.push(el),
      onStreamEnd: () => out.ends++,
      onError: (condition, text) => out.errors.push({ condition, text }),
    },
    opts,
  );
  return { p, out };
}

function parse(input: string | Buffer, opts?: { limits?: Partial<XmlParserLimits>; framed?: boolean }): Collected {
  const { p, out } = collector(opts);
  p.write(typeof input === 'string' ? Buffer.from(input) : input);
  return out;
}

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>";

test('a stream header opens the stream with its attributes and namespace', () => {
  const out = parse(HEADER);
  assert.equal(out.errors.length, 0);
  assert.equal(out.starts.length, 1);
  assert.equal(out.starts[0]!.name, 'stream:stream');
  assert.equal(out.starts[0]!.ns, 'http://etherx.jabber.org/streams');
  assert.equal(out.starts[0]!.attrs.to, 'example.test');
});

test('each child of the root comes out as one element with the default namespace', () => {
  const out = parse(HEADER + "<message to='a@b'><body>hi</body></message><presence/>");
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements.length, 2);
  const [m, p] = out.elements;
  assert.equal(m!.name, 'message');
  assert.equal(m!.ns, 'jabber:client');
  assert.equal(m!.getChildText('body'), 'hi');
  assert.equal(m!.getChild('body')!.ns, 'jabber:client');
  assert.equal(p!.name, 'presence');
});

test('the end of the root element ends the stream', () => {
  const out = parse(HEADER + '<presence/></stream:stream>');
  assert.equal(out.ends, 1);
  assert.equal(out.errors.length, 0);
});

test('namespaces declared on children apply to their subtree', () => {
  const out = parse(HEADER + "<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>");
  const q = out.elements[0]!.getChild('query')!;
  assert.equal(q.ns, 'jabber:iq:roster');
  assert.equal(q.getChild('item')!.ns, 'jabber:iq:roster');
});

test('a prefix declared on the stream root is copied onto the stanza that uses it', () => {
  const out = parse(
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x'><message><x:y/></message>",
  );
  assert.equal(out.errors.length, 0);
  const m = out.elements[0]!;
  assert.equal(m.attrs['xmlns:x'], 'urn:x');
  assert.equal(m.getChild('y')!.ns, 'urn:x');
  assert.equal(m.toString(), "<message xmlns:x='urn:x'><x:y/></message>");
});

test('an undeclared prefix is a bad-namespace-prefix error', () => {
  const out = parse(HEADER + '<foo:message/>');
  assert.equal(out.errors[0]!.condition, 'bad-namespace-prefix');
});

test('the five predefined entities and character references are decoded', () => {
  const out = parse(HEADER + "<message a='&lt;&amp;&#65;&#x42;'><body>&lt;&gt;&amp;&quot;&apos;&#x263A;&#10;</body></message>");
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements[0]!.attrs.a, '<&AB');
  assert.equal(out.elements[0]!.getChildText('body'), `<>&"'\u263A\n`);
});

test('serializing a parsed stanza escapes what must be escaped', () => {
  const out = parse(HEADER + "<message a='&apos;&quot;&lt;'><body>a &amp; b &lt; c</body></message>");
  assert.equal(out.elements[0]!.toString(), "<message a='&apos;&quot;&lt;'><body>a &amp; b &lt; c</body></message>");
});

test('attribute values are normalized: tabs and newlines become spaces', () => {
  const out = parse(HEADER + "<message a='x\ty\nz'/>");
  assert.equal(out.elements[0]!.attrs.a, 'x y z');
});

test('CDATA sections become text', () => {
  const out = parse(HEADER + '<message><body><![CDATA[<b>&amp;</b>]]></body></message>');
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements[0]!.getChildText('body'), '<b>&amp;</b>');
});

test('whitespace between stanzas is a keep-alive and is ignored', () => {
  const out = parse(HEADER + ' \n <presence/> \t\r\n <presence/>');
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements.length, 2);
});

test('a byte-order mark at the start is accepted', () => {
  const out = parse('\uFEFF' + HEADER);
  assert.equal(out.errors.length, 0);
  assert.equal(out.starts.length, 1);
});

// ----------------------------------------------------------- restricted XML

for (const [what, input] of [
  ['a DTD', "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY a 'b'>]><stream:stream/>"],
  ['a DTD inside a stanza', HEADER + '<message><!DOCTYPE x></message>'],
  ['a comment', HEADER + '<!-- hello -->'],
  ['a comment inside a stanza', HEADER + '<message><!-- x --></message>'],
  ['a processing instruction', HEADER + "<?php echo 'x'; ?>"],
  ['an XML declaration in the middle of a stream', HEADER + "<message/><?xml version='1.0'?>"],
  ['an entity that is not predefined', HEADER + '<message><body>&nbsp;</body></message>'],
  ['an external entity reference', HEADER + '<message><body>&xxe;</body></message>'],
  ['an entity in an attribute', HEADER + "<message a='&lol;'/>"],
] as const) {
  test(`${what} ends the stream with restricted-xml`, () => {
    const out = parse(input);
    assert.equal(out.errors.length, 1);
    assert.equal(out.errors[0]!.condition, 'restricted-xml');
  });
}

test('the billion laughs document is refused at its DTD', () => {
  const lol =
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>';
  const out = parse(lol);
  assert.equal(out.errors[0]!.condition, 'restricted-xml');
  assert.equal(out.elements.length, 0);
});

test('an XML declaration with an encoding other than UTF-8 is unsupported-encoding', () => {
  const out = parse("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>");
  assert.equal(out.errors[0]!.condition, 'unsupported-encoding');
});

// ----------------------------------------------------------- not well-formed

for (const [what, input] of [
  ['mismatched end tag', HEADER + '<message><body></message>'],
  ['an unquoted attribute', HEADER + '<message to=a/>'],
  ['a duplicate attribute', HEADER + "<message to='a' to='b'/>"],
  ['a bad name', HEADER + '<1message/>'],
  ['a < in an attribute value', HEADER + "<message to='<'/>"],
  ['a control character in text', HEADER + '<message><body>\u0001</body></message>'],
  ['a control character in an attribute', HEADER + "<message to='\u0007'/>"],
  ['a character reference to a non-XML character', HEADER + '<message><body>&#0;</body></message>'],
  ['an unterminated entity reference', HEADER + '<message><body>&amp amp amp amp amp</body></message>'],
  [']]> in text', HEADER + '<message><body>a]]>b</body></message>'],
  ['text before the root', 'hello' + HEADER],
  ['a wrong end tag for the root', HEADER + '</stream:streams>'],
  ['data after the end of the stream', HEADER + '</stream:stream><message/>'],
  ['attributes not separated by whitespace', HEADER + "<message a='1'b='2'/>"],
] as const) {
  test(`${what} ends the stream with not-well-formed`, () => {
    const out = parse(input);
    assert.equal(out.errors.length, 1, JSON.stringify(out.errors));
    assert.equal(out.errors[0]!.condition, 'not-well-formed');
  });
}

test('nothing is parsed after an error', () => {
  const { p, out } = collector();
  p.write(Buffer.from(HEADER + '<message><!-- x -->'));
  p.write(Buffer.from('<presence/>'));
  assert.equal(out.errors.length, 1);
  assert.equal(out.elements.length, 0);
});

// ----------------------------------------------------------- UTF-8

test('invalid UTF-8 ends the stream with not-well-formed', () => {
  const out = parse(Buffer.concat([Buffer.from(HEADER + '<message><body>'), Buffer.from([0xff, 0xfe]), Buffer.from('</body></message>')]));
  assert.equal(out.errors[0]!.condition, 'not-well-formed');
});

test('an overlong UTF-8 encoding of < is rejected', () => {
  const out = parse(Buffer.concat([Buffer.from(HEADER + '<message><body>'), Buffer.from([0xc0, 0xbc]), Buffer.from('</body></message>')]));
  assert.equal(out.errors[0]!.condition, 'not-well-formed');
  assert.equal(out.elements.length, 0);
});

test('a UTF-8 encoded surrogate is rejected', () => {
  const out = parse(Buffer.concat([Buffer.from(HEADER + '<message><body>'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('</body></message>')]));
  assert.equal(out.errors[0]!.condition, 'not-well-formed');
});

test('a multibyte character split at every byte offset decodes the same', () => {
  // 2-, 3- and 4-byte characters, in text, in an attribute and in a name.
  const doc = HEADER + "<message to='żółw@example.test'><body>ż€😀 zażółć gęślą jaźń 𝄞</body><ünï xmlns='urn:u'/></message>";
  const bytes = Buffer.from(doc);
  const expected = parse(bytes).elements[0]!.toString();
  assert.ok(expected.includes('😀'));
  for (let cut = 1; cut < bytes.length; cut++) {
    const { p, out } = collector();
    p.write(bytes.subarray(0, cut));
    p.write(bytes.subarray(cut));
    assert.equal(out.errors.length, 0, `cut at ${cut}: ${JSON.stringify(out.errors)}`);
    assert.equal(out.elements.length, 1, `cut at ${cut}`);
    assert.equal(out.elements[0]!.toString(), expected, `cut at ${cut}`);
  }
});

test('a stream fed one byte at a time parses like one read', () => {
  const doc =
    HEADER +
    "<message to='a@b' type='chat'><body>x &amp; y &#x263A; ü</body><![CDATA[c<d]]></message>\n <iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>";
  const bytes = Buffer.from(doc);
  const whole = parse(bytes);
  const { p, out } = collector();
  for (let k = 0; k < bytes.length; k++) p.write(bytes.subarray(k, k + 1));
  assert.deepEqual(out.errors, []);
  assert.equal(out.ends, 1);
  assert.deepEqual(
    out.elements.map((e) => e.toString()),
    whole.elements.map((e) => e.toString()),
  );
});

test('a stream split into two reads at every offset parses like one read', () => {
  const doc = "<?xml version='1.0'?>" + HEADER.slice(21) + "<message a='1'><body>é&lt;</body><![CDATA[]]<!-- -->x]]></message></stream:stream>";
  // The comment lives inside CDATA, so it is text, not a comment.
  const bytes = Buffer.from(doc);
  const whole = parse(bytes);
  assert.deepEqual(whole.errors, []);
  for (let cut = 1; cut < bytes.length; cut++) {
    const { p, out } = collector();
    p.write(bytes.subarray(0, cut));
    p.write(bytes.subarray(cut));
    assert.deepEqual(out.errors, [], `cut at ${cut}`);
    assert.deepEqual(
      out.elements.map((e) => e.toString()),
      whole.elements.map((e) => e.toString()),
      `cut at ${cut}`,
    );
  }
});

test('a comment split across reads right after < is still restricted-xml', () => {
  const { p, out } = collector();
  p.write(Buffer.from(HEADER + '<'));
  p.write(Buffer.from('!-- x -->'));
  assert.equal(out.errors[0]!.condition, 'restricted-xml');
});

// ----------------------------------------------------------- limits

test('a stanza larger than the limit is a policy-violation', () => {
  const out = parse(HEADER + `<message><body>${'a'.repeat(2000)}</body></message>`, { limits: { maxStanzaBytes: 1000 } });
  assert.equal(out.errors[0]!.condition, 'policy-violation');
  assert.equal(out.elements.length, 0);
});

test('a stanza just under the limit passes and the count restarts for the next one', () => {
  const stanza = `<message><body>${'a'.repeat(900)}</body></message>`;
  assert.ok(stanza.length < 1000);
  const out = parse(HEADER + stanza + stanza + stanza, { limits: { maxStanzaBytes: 1000 } });
  assert.deepEqual(out.errors, []);
  assert.equal(out.elements.length, 3);
});

test('the stanza limit counts bytes, not characters', () => {
  // 400 three-byte characters: 400 chars, 1200 bytes.
  const out = parse(HEADER + `<message><body>${'€'.repeat(400)}</body></message>`, { limits: { maxStanzaBytes: 1000 } });
  assert.equal(out.errors[0]?.condition, 'policy-violation');
});

test('an oversized stanza trickled in small reads is cut off before it is complete', () => {
  const { p, out } = collector({ limits: { maxStanzaBytes: 1000 } });
  p.write(Buffer.from(HEADER + '<message><body>'));
  let fed = 0;
  while (out.errors.length === 0 && fed < 100_000) {
    p.write(Buffer.from('a'.repeat(100)));
    fed += 100;
  }
  assert.equal(out.errors[0]!.condition, 'policy-violation');
  assert.ok(fed <= 1100, `fed ${fed}`);
});

test('a start tag that never ends is bounded by the stanza limit', () => {
  const { p, out } = collector({ limits: { maxStanzaBytes: 1000 } });
  p.write(Buffer.from(HEADER + "<message a='"));
  let fed = 0;
  while (out.errors.length === 0 && fed < 100_000) {
    p.write(Buffer.from('b'.repeat(50)));
    fed += 50;
  }
  assert.equal(out.errors[0]!.condition, 'policy-violation');
  assert.ok(fed <= 1100, `fed ${fed}`);
});

test('a stream header that never ends is bounded', () => {
  const { p, out } = collector({ limits: { maxStanzaBytes: 1000 } });
  p.write(Buffer.from("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='"));
  let fed = 0;
  while (out.errors.length === 0 && fed < 100_000) {
    p.write(Buffer.from('b'.repeat(50)));
    fed += 50;
  }
  assert.equal(out.errors[0]!.condition, 'policy-violation');
});

test('nesting deeper than the limit is a policy-violation', () => {
  const deep = '<a>'.repeat(20) + '</a>'.repeat(20);
  assert.equal(parse(HEADER + `<message>${deep}</message>`, { limits: { maxDepth: 10 } }).errors[0]!.condition, 'policy-violation');
  assert.deepEqual(parse(HEADER + `<message>${'<a>'.repeat(9) + '</a>'.repeat(9)}</message>`, { limits: { maxDepth: 10 } }).errors, []);
});

test('10,000 nested elements are refused without a stack overflow', () => {
  const out = parse(HEADER + '<message>' + '<a>'.repeat(10_000));
  assert.equal(out.errors[0]!.condition, 'policy-violation');
});

test('more attributes than the limit is a policy-violation', () => {
  let attrs = '';
  for (let k = 0; k < 100; k++) attrs += ` a${k}='x'`;
  assert.equal(parse(HEADER + `<message${attrs}/>`, { limits: { maxAttributes: 50 } }).errors[0]!.condition, 'policy-violation');
});

test('a name longer than the limit is a policy-violation', () => {
  assert.equal(parse(HEADER + `<${'m'.repeat(300)}/>`).errors[0]!.condition, 'policy-violation');
});

test('an attribute named __proto__ is just an attribute', () => {
  const out = parse(HEADER + "<message __proto__='x' constructor='y'/>");
  assert.deepEqual(out.errors, []);
  assert.equal(out.elements[0]!.attrs['__proto__'], 'x');
  assert.equal(out.elements[0]!.attrs['constructor'], 'y');
});

// ----------------------------------------------------------- restart and framing

test('reset from a callback parses the rest of the read as a new stream', () => {
  const out: string[] = [];
  const p: XmlStreamParser = new XmlStreamParser({
    onStreamStart: (name) => out.push('start:' + name),
    onElement: (el) => {
      out.push('el:' + el.name);
      if (el.name === 'success') p.reset();
    },
    onStreamEnd: () => out.push('end'),
    onError: (c) => out.push('error:' + c),
  });
  p.write(Buffer.from(HEADER + "<success/><?xml version='1.0'?>" + HEADER.slice(21) + '<iq/>'));
  assert.deepEqual(out, ['start:stream:stream', 'el:success', 'start:stream:stream', 'el:iq']);
});

test('halt drops the rest of the read (no STARTTLS command injection)', () => {
  const out: string[] = [];
  const p: XmlStreamParser = new XmlStreamParser({
    onStreamStart: (name) => out.push('start:' + name),
    onElement: (el) => {
      out.push('el:' + el.name);
      if (el.name === 'starttls') {
        p.halt();
        p.reset();
      }
    },
    onStreamEnd: () => out.push('end'),
    onError: (c) => out.push('error:' + c),
  });
  p.write(Buffer.from(HEADER + "<starttls/><iq type='set'><injected/></iq>"));
  assert.deepEqual(out, ['start:stream:stream', 'el:starttls']);
  p.write(Buffer.from(HEADER + '<presence/>'));
  assert.deepEqual(out, ['start:stream:stream', 'el:starttls', 'start:stream:stream', 'el:presence']);
});

test('framed mode hands over each top-level element', () => {
  const out = parse(
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.test' version='1.0'/><message xmlns='jabber:client'><body>x</body></message>",
    { framed: true },
  );
  assert.deepEqual(out.errors, []);
  assert.equal(out.starts.length, 0);
  assert.deepEqual(
    out.elements.map((e) => [e.name, e.ns]),
    [
      ['open', 'urn:ietf:params:xml:ns:xmpp-framing'],
      ['message', 'jabber:client'],
    ],
  );
});

// ------------------------------------------------------------------ found by fuzzing (test/fuzz)

test('the stanza limit counts the bytes of a non-ASCII start tag cut by a read', () => {
  // 21 bytes, 19 characters: the part of the tag before the cut was counted as characters.
  const stanza = "<a 中='&#xD;&#xA;'/>";
  assert.equal(Buffer.byteLength(stanza), 21);
  const doc = Buffer.from(`<s>${stanza}<x/>`);
  for (let cut = 1; cut < doc.length; cut++) {
    const { p, out } = collector({ limits: { maxStanzaBytes: 20 } });
    p.write(doc.subarray(0, cut));
    p.write(doc.subarray(cut));
    assert.deepEqual(out.errors.map((e) => e.condition), ['policy-violation'], `cut at ${cut}`);
    assert.equal(out.elements.length, 0, `cut at ${cut}`);
  }
});

test("']]>' in character data is refused when the reads split it", () => {
  const doc = Buffer.from(HEADER + '<message>a]]>b</message>');
  for (let cut = HEADER.length + 9; cut <= HEADER.length + 12; cut++) {
    const { p, out } = collector();
    p.write(doc.subarray(0, cut));
    p.write(doc.subarray(cut));
    assert.deepEqual(out.errors.map((e) => e.condition), ['not-well-formed'], `cut at ${cut}`);
  }
  const { p, out } = collector();
  for (const b of Buffer.from(HEADER + '<message>]]]x]]</message><message>]]]&gt;]</message>')) p.write(Buffer.from([b]));
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements.length, 2);
});

test('a large start tag trickled in small reads is parsed in linear time and quotes are followed', () => {
  // Each read used to copy the whole pending tag: 256 KiB in 4-byte reads took minutes.
  const value = 'x"y>'.padEnd(256 * 1024, 'v');
  const doc = Buffer.from(`${HEADER}<message a='${value.replace(/>/g, '&gt;')}' b="it's >"/>`);
  const { p, out } = collector({ limits: { maxStanzaBytes: 1024 * 1024 } });
  for (let i = 0; i < doc.length; i += 4) p.write(doc.subarray(i, i + 4));
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements.length, 1);
  assert.equal(out.elements[0]!.attrs.a, value);
  assert.equal(out.elements[0]!.attrs.b, "it's >");
});

test('a trickled start tag over the limit is still cut off', () => {
  const { p, out } = collector({ limits: { maxStanzaBytes: 2000 } });
  p.write(Buffer.from(HEADER + "<message a='"));
  for (let i = 0; i < 3000 && out.errors.length === 0; i++) p.write(Buffer.from('é'));
  assert.deepEqual(out.errors.map((e) => e.condition), ['policy-violation']);
});

test('tabs, newlines and carriage returns in attribute values and CR in text survive serialize and parse', async () => {
  const { x } = await import('./element.js');
  const el = x('message', { a: 'x\ty\nz\r\n' }, 'line\r\nnext\r');
  const out = parse(`${HEADER}${el.toString()}`);
  assert.equal(out.errors.length, 0);
  assert.equal(out.elements[0]!.attrs.a, 'x\ty\nz\r\n');
  assert.equal(out.elements[0]!.text(), 'line\r\nnext\r');
});
