/**
 * Tests for RFC 7622: JID syntax (§3.1), domainpart (§3.2), localpart (§3.3),
 * resourcepart (§3.4), and the examples of §3.5 and §3.6.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Jid, JidError } from './jid.js';

const MALFORMED = { code: 'JID_MALFORMED' };

function parts(s: string): [string, string, string] {
  const jid = Jid.parse(s);
  return [jid.local, jid.domain, jid.resource];
}

describe('RFC 7622 §3.5 examples of valid JIDs', () => {
  const valid: Array<[string, [string, string, string]]> = [
    ['juliet@example.com', ['juliet', 'example.com', '']],
    ['juliet@example.com/foo', ['juliet', 'example.com', 'foo']],
    ['juliet@example.com/foo bar', ['juliet', 'example.com', 'foo bar']],
    ['juliet@example.com/foo@bar', ['juliet', 'example.com', 'foo@bar']],
    ['foo\\20bar@example.com', ['foo\\20bar', 'example.com', '']],
    ['fussball@example.com', ['fussball', 'example.com', '']],
    ['fußball@example.com', ['fußball', 'example.com', '']],
    ['π@example.com', ['π', 'example.com', '']],
    ['Σ@example.com/foo', ['σ', 'example.com', 'foo']],
    ['σ@example.com/foo', ['σ', 'example.com', 'foo']],
    ['ς@example.com/foo', ['ς', 'example.com', 'foo']],
    ['king@example.com/♚', ['king', 'example.com', '♚']],
    ['example.com', ['', 'example.com', '']],
    ['example.com/foobar', ['', 'example.com', 'foobar']],
    ['a.example.com/b@example.net', ['', 'a.example.com', 'b@example.net']],
  ];
  for (const [input, expected] of valid) {
    test(`parses ${input}`, () => assert.deepEqual(parts(input), expected));
  }

  test('keeps sharp s distinct from ss', () => {
    assert.ok(!Jid.parse('fußball@example.com').equals(Jid.parse('fussball@example.com')));
  });
});

describe('RFC 7622 §3.6 examples of invalid JIDs', () => {
  const invalid: Array<[string, string]> = [
    ['"juliet"@example.com', 'quotation marks in the localpart'],
    ['foo bar@example.com', 'a space in the localpart'],
    ['juliet@example.com/', 'an empty resourcepart'],
    ['@example.com/', 'an empty localpart and resourcepart'],
    ['@example.com', 'an empty localpart'],
    ['henry\u2163@example.com', 'a Roman numeral, a compatibility character, in the localpart'],
    ['♚@example.com', 'a symbol in the localpart'],
    ['juliet@', 'no domainpart'],
    ['/foobar', 'no domainpart before a resourcepart'],
    ['', 'the empty string'],
  ];
  for (const [input, why] of invalid) {
    test(`rejects ${JSON.stringify(input)} (${why})`, () => assert.throws(() => Jid.parse(input), MALFORMED));
  }

  test('throws JidError', () => {
    assert.throws(() => Jid.parse('juliet@'), JidError);
  });
});

describe('separators', () => {
  test('the first slash starts the resourcepart, which may hold more slashes', () => {
    assert.deepEqual(parts('a@b.example/c/d@e'), ['a', 'b.example', 'c/d@e']);
  });

  test('an @ after the first slash belongs to the resourcepart', () => {
    assert.deepEqual(parts('example.com/a@b'), ['', 'example.com', 'a@b']);
  });

  test('a second @ before the slash ends up in the domainpart and is rejected', () => {
    assert.throws(() => Jid.parse('a@b@example.com'), MALFORMED);
  });
});

describe('localpart (RFC 7622 §3.3)', () => {
  test('is case-folded', () => {
    assert.equal(Jid.parse('JuLiEt@example.com').local, 'juliet');
  });

  test('is width-mapped', () => {
    assert.equal(Jid.parse('ｊｕｌｉｅｔ@example.com').local, 'juliet');
  });

  test('is normalized to NFC', () => {
    assert.equal(Jid.parse('jose\u0301@example.com').local, 'jos\u00e9');
  });

  test('rejects each character RFC 7622 forbids', () => {
    for (const ch of ['"', '&', "'", '/', ':', '<', '>', '@']) {
      assert.throws(() => Jid.of(`a${ch}b`, 'example.com'), MALFORMED, ch);
    }
  });

  test('accepts XEP-0106 escapes', () => {
    assert.equal(Jid.parse('d\\27artagnan@example.com').local, 'd\\27artagnan');
  });

  test('rejects a zero width joiner outside its allowed context', () => {
    assert.throws(() => Jid.parse('ro\u200dmeo@example.com'), MALFORMED);
  });

  test('keeps the PRECIS error as the cause', () => {
    try {
      Jid.parse('♚@example.com');
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(err instanceof JidError);
      assert.equal((err.cause as { code?: string }).code, 'PRECIS_INVALID');
    }
  });

  test('accepts 1023 octets', () => {
    assert.equal(Jid.parse(`${'a'.repeat(1023)}@example.com`).local.length, 1023);
  });

  test('rejects 1024 octets', () => {
    assert.throws(() => Jid.parse(`${'a'.repeat(1024)}@example.com`), MALFORMED);
  });

  test('counts octets of UTF-8, not characters', () => {
    assert.ok(Jid.parse(`${'é'.repeat(511)}@example.com`));
    assert.throws(() => Jid.parse(`${'é'.repeat(512)}@example.com`), MALFORMED);
  });
});

describe('domainpart (RFC 7622 §3.2)', () => {
  test('is lowercased', () => {
    assert.equal(Jid.parse('juliet@EXAMPLE.Com').domain, 'example.com');
  });

  test('is width-mapped', () => {
    assert.equal(Jid.parse('juliet@ｅｘａｍｐｌｅ．ｃｏｍ').domain, 'example.com');
  });

  test('is normalized to NFC', () => {
    assert.equal(Jid.parse('juliet@cafe\u0301.example').domain, 'caf\u00e9.example');
  });

  test('loses one trailing dot', () => {
    assert.equal(Jid.parse('juliet@example.com./r').full, 'juliet@example.com/r');
  });

  test('rejects two trailing dots', () => {
    assert.throws(() => Jid.parse('juliet@example.com..'), MALFORMED);
  });

  test('rejects empty labels', () => {
    for (const d of ['.', '.example.com', 'a..example.com']) assert.throws(() => Jid.parse(`juliet@${d}`), MALFORMED, d);
  });

  test('accepts a 63-octet label and rejects a 64-octet one', () => {
    assert.ok(Jid.parse(`${'a'.repeat(63)}.example`));
    assert.throws(() => Jid.parse(`${'a'.repeat(64)}.example`), MALFORMED);
  });

  test('measures the length of a U-label as its A-label', () => {
    // 60 × ü encodes to far more than 63 octets of punycode.
    assert.throws(() => Jid.parse(`${'ü'.repeat(60)}.example`), MALFORMED);
  });

  test('rejects a domainpart longer than 1023 octets', () => {
    const domain = Array.from({ length: 17 }, () => 'a'.repeat(63)).join('.');
    assert.ok(domain.length > 1023);
    assert.throws(() => Jid.parse(domain), MALFORMED);
  });

  test('converts A-labels to U-labels', () => {
    assert.equal(Jid.parse('juliet@xn--fuball-cta.example').domain, 'fußball.example');
    assert.equal(Jid.parse('XN--FUBALL-CTA.example').domain, 'fußball.example');
  });

  test('compares A-label and U-label spellings as equal', () => {
    assert.ok(Jid.parse('a@xn--fuball-cta.example').equals(Jid.parse('a@fußball.example')));
  });

  test('rejects an A-label that does not decode', () => {
    assert.throws(() => Jid.parse('juliet@xn--zz.example'), MALFORMED);
  });

  test('rejects an A-label that decodes to a disallowed code point', () => {
    assert.throws(() => Jid.parse('juliet@xn--ls8h.example'), MALFORMED); // U+1F4A9
  });

  test('rejects labels with leading or trailing hyphens or hyphens in positions 3 and 4', () => {
    for (const d of ['-a.example', 'a-.example', 'ab--c.example']) assert.throws(() => Jid.parse(d), MALFORMED, d);
  });

  test('rejects ASCII that is not letters, digits or hyphen', () => {
    for (const d of ['a_b.example', 'a b.example', 'a!b.example', 'a:5222']) assert.throws(() => Jid.parse(d), MALFORMED, d);
  });

  test('rejects symbols in a U-label', () => {
    assert.throws(() => Jid.parse('♚.example'), MALFORMED);
  });

  test('accepts a right-to-left domain name', () => {
    assert.equal(Jid.parse('xn--mgbh0fb.xn--kgbechtv').domain, 'مثال.إختبار');
  });

  test('applies the Bidi Rule to every label of a right-to-left domain name', () => {
    assert.throws(() => Jid.parse('1a.مثال'), MALFORMED);
  });

  test('accepts an IPv6 literal', () => {
    assert.deepEqual(parts('juliet@[::1]/r'), ['juliet', '[::1]', 'r']);
    assert.equal(Jid.parse('[2001:DB8::1]').domain, '[2001:db8::1]');
  });

  test('rejects a malformed IP literal', () => {
    for (const d of ['[::g]', '[::1', '[]', '[1.2.3.4]']) assert.throws(() => Jid.parse(d), MALFORMED, d);
  });

  test('accepts an IPv4 address', () => {
    assert.equal(Jid.parse('juliet@192.0.2.1').domain, '192.0.2.1');
  });
});

describe('resourcepart (RFC 7622 §3.4)', () => {
  test('is not case-folded', () => {
    assert.equal(Jid.parse('JULIET@EXAMPLE.COM/Balcony').full, 'juliet@example.com/Balcony');
  });

  test('is not width-mapped', () => {
    assert.equal(Jid.parse('juliet@example.com/Ｂａｌｃｏｎｙ').resource, 'Ｂａｌｃｏｎｙ');
  });

  test('maps non-ASCII spaces to U+0020', () => {
    assert.equal(Jid.parse('juliet@example.com/a\u00a0b').resource, 'a b');
  });

  test('is normalized to NFC', () => {
    assert.equal(Jid.parse('juliet@example.com/cafe\u0301').resource, 'caf\u00e9');
  });

  test('rejects control characters', () => {
    assert.throws(() => Jid.parse('juliet@example.com/a\nb'), MALFORMED);
  });

  test('rejects 1024 octets', () => {
    assert.ok(Jid.parse(`example.com/${'r'.repeat(1023)}`));
    assert.throws(() => Jid.parse(`example.com/${'r'.repeat(1024)}`), MALFORMED);
  });
});

describe('Jid', () => {
  test('rejects a huge input before doing Unicode work', () => {
    assert.throws(() => Jid.parse('ä'.repeat(1_000_000)), MALFORMED);
  });

  test('returns the cached instance for a repeated input', () => {
    assert.equal(Jid.parse('romeo@example.net/orchard'), Jid.parse('romeo@example.net/orchard'));
  });

  test('gives equal JIDs for differently spelled inputs', () => {
    const a = Jid.parse('Romeo@Example.NET/orchard');
    const b = Jid.parse('romeo@example.net/orchard');
    assert.ok(a.equals(b));
    assert.equal(a.toString(), b.toString());
  });

  test('keeps working after the cache has been cleared by many entries', () => {
    for (let i = 0; i < 10_050; i++) Jid.parse(`user${i}@example.com`);
    assert.equal(Jid.parse('user0@example.com').bare, 'user0@example.com');
  });

  test('is frozen', () => {
    const jid = Jid.parse('romeo@example.net');
    assert.ok(Object.isFrozen(jid));
    assert.throws(() => {
      (jid as { local: string }).local = 'mallory';
    }, TypeError);
  });

  test('does not equal a JID with another resource', () => {
    assert.ok(!Jid.parse('romeo@example.net/a').equals(Jid.parse('romeo@example.net/b')));
  });

  test('does not equal a domain JID of the same text', () => {
    assert.ok(!Jid.parse('example.net').equals(Jid.parse('romeo@example.net')));
  });

  test('bare, full and toString give the canonical forms', () => {
    const jid = Jid.parse('Romeo@Example.net/Orchard');
    assert.equal(jid.bare, 'romeo@example.net');
    assert.equal(jid.full, 'romeo@example.net/Orchard');
    assert.equal(String(jid), 'romeo@example.net/Orchard');
    assert.equal(JSON.stringify({ jid }), '{"jid":"romeo@example.net/Orchard"}');
  });

  test('isBare tells whether a resourcepart is present', () => {
    assert.equal(Jid.parse('romeo@example.net').isBare, true);
    assert.equal(Jid.parse('romeo@example.net/orchard').isBare, false);
  });

  test('toBare drops the resourcepart', () => {
    const bare = Jid.parse('romeo@example.net/orchard').toBare();
    assert.equal(bare.full, 'romeo@example.net');
    assert.ok(bare.isBare);
  });

  test('toBare returns the same instance for a bare JID', () => {
    const jid = Jid.parse('romeo@example.net');
    assert.equal(jid.toBare(), jid);
  });

  test('withResource replaces and prepares the resourcepart', () => {
    const jid = Jid.parse('romeo@example.net/orchard').withResource('balcony\u00a01');
    assert.equal(jid.full, 'romeo@example.net/balcony 1');
  });

  test('withResource rejects an empty or invalid resource', () => {
    const jid = Jid.parse('romeo@example.net');
    assert.throws(() => jid.withResource(''), MALFORMED);
    assert.throws(() => jid.withResource('a\u0000'), MALFORMED);
  });

  test('of prepares each part', () => {
    assert.equal(Jid.of('Romeo', 'EXAMPLE.net', 'Orchard').full, 'romeo@example.net/Orchard');
  });

  test('of treats an empty localpart or resourcepart as absent', () => {
    assert.equal(Jid.of('', 'example.net').full, 'example.net');
    assert.equal(Jid.of('romeo', 'example.net', '').full, 'romeo@example.net');
  });

  test('of rejects separators inside the domainpart', () => {
    assert.throws(() => Jid.of('romeo', 'example.net/x'), MALFORMED);
    assert.throws(() => Jid.of('romeo', 'a@example.net'), MALFORMED);
  });

  test('of accepts a resourcepart holding separators', () => {
    assert.equal(Jid.of('romeo', 'example.net', 'a/b@c').resource, 'a/b@c');
  });

  test('tryParse returns null for missing or malformed input', () => {
    assert.equal(Jid.tryParse(undefined), null);
    assert.equal(Jid.tryParse(null), null);
    assert.equal(Jid.tryParse(''), null);
    assert.equal(Jid.tryParse('juliet@'), null);
  });

  test('tryParse returns the JID for valid input', () => {
    assert.equal(Jid.tryParse('juliet@example.com')?.bare, 'juliet@example.com');
  });
});
