/**
 * Fuzz target: JID parsing and PRECIS (src/xmpp/jid.ts, src/xmpp/precis.ts).
 * Properties: parse throws nothing but JidError; a parsed JID parses back to itself from
 * its string (and from its parts with Jid.of); each part is within 1023 octets and the
 * localpart holds none of the forbidden characters; the PRECIS profiles throw nothing but
 * PrecisError and are idempotent.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Jid, JidError } from '../../../src/xmpp/jid.js';
import { PrecisError, opaqueString, usernameCaseMapped } from '../../../src/xmpp/precis.js';
import type { FuzzTarget } from '../harness.js';

/** Characters that stress the mappings: case, width, compatibility, Bidi, joiners, marks, separators. */
const tricky = fc.constantFrom(
  'a', 'Z', '0', '-', '.', '@', '/', '_', ' ', '\u00a0', '\u3000', 'ß', 'ẞ', 'ﬀ', 'Ⅻ', 'Ａ', '．', '。', '｡', 'ǅ', 'ς', 'Σ', 'İ', 'ı', 'K', 'Å',
  'é', 'e\u0301', '\u0301', '\u200c', '\u200d', '\u00b7', '\u0375', '\u05f3', '\u30fb', 'ا', 'ب', '\u0660', '\u06f0', 'א', '\u05d0\u05b0', '1',
  '\u094d', 'क', '\ufb01', '\u2126', '\u212b', 'xn--', 'bcher-kva', 'xn--bcher-kva', 'xn--a', 'XN--', '\ud800', '\udfff', '😀', '\u{e0001}',
  '\u0000', '\t', '\u2028', '\ufeff', '\u{10ffff}', '[', ']', '::1', '127.0.0.1', '"', '&', "'", ':', '<', '>',
);
const piece = fc.oneof({ weight: 4, arbitrary: tricky }, fc.string({ maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 3 }));
const part = fc.array(piece, { maxLength: 8 }).map((a) => a.join(''));
/** Long parts around the 1023-octet limit, in 1-, 2-, 3- and 4-byte characters. */
const longPart = fc
  .tuple(fc.constantFrom('a', 'é', '中', '😀', 'A', 'a.'), fc.integer({ min: 250, max: 1030 }))
  .map(([c, n]) => c.repeat(n));

const jidString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.tuple(fc.option(part), part, fc.option(part)).map(([l, d, r]) => (l === null ? '' : l + '@') + d + (r === null ? '' : '/' + r)),
  fc.tuple(fc.option(fc.oneof(part, longPart)), fc.oneof(fc.constantFrom('example.test', 'EXAMPLE.test.', 'xn--bcher-kva.example', 'bücher.example', '[::1]', '127.0.0.1'), longPart), fc.option(fc.oneof(part, longPart))).map(
    ([l, d, r]) => (l === null ? '' : l + '@') + d + (r === null ? '' : '/' + r),
  ),
);

const utf8 = (s: string) => Buffer.byteLength(s);

export const jidTarget: FuzzTarget = {
  name: 'jid',
  properties: [
    {
      name: 'parse throws only JidError, and a parsed JID is canonical, within limits and parses back to itself',
      arbitrary: jidString,
      check(s: string) {
        let jid: Jid;
        try {
          jid = Jid.parse(s);
        } catch (e) {
          assert.ok(e instanceof JidError, `not a JidError: ${String((e as Error)?.stack ?? e)}`);
          return;
        }
        const again = Jid.parse(jid.toString());
        assert.equal(again.full, jid.full, 'parse(toString(parse(s))) differs');
        assert.equal(Jid.parse(again.full).full, again.full);
        assert.equal(Jid.of(jid.local, jid.domain, jid.resource).full, jid.full, 'Jid.of of the parts differs');
        assert.ok(jid.domain !== '');
        for (const p of [jid.local, jid.domain, jid.resource]) assert.ok(utf8(p) <= 1023, `part of ${utf8(p)} octets`);
        assert.ok(!/["&'/:<>@]/.test(jid.local), `forbidden character in localpart ${jid.local}`);
        assert.equal(jid.toBare().full, jid.bare);
      },
      runs: 1500,
    },
    {
      name: 'UsernameCaseMapped and OpaqueString throw only PrecisError and are idempotent',
      arbitrary: fc.tuple(part, fc.constantFrom('username', 'opaque')),
      check([s, profile]: [string, string]) {
        const f = profile === 'username' ? usernameCaseMapped : opaqueString;
        let once: string;
        try {
          once = f(s);
        } catch (e) {
          assert.ok(e instanceof PrecisError, `not a PrecisError: ${String((e as Error)?.stack ?? e)}`);
          return;
        }
        let twice: string;
        try {
          twice = f(once);
        } catch (e) {
          assert.fail(`${profile}(${JSON.stringify(once)}) rejects its own output: ${(e as Error).message}`);
        }
        assert.equal(twice, once, `${profile} is not idempotent on ${JSON.stringify(s)}`);
      },
      runs: 1500,
    },
  ],
};
