/**
 * Tests for RFC 8264 (PRECIS framework), RFC 8265 §3.3 and §4.2 (UsernameCaseMapped,
 * OpaqueString), RFC 5892 Appendix A (contextual rules) and RFC 5893 (Bidi Rule).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PrecisError,
  bidiClass,
  derivedProperty,
  idnaProperty,
  opaqueString,
  precisProperty,
  usernameCaseMapped,
} from './precis.js';

const INVALID = { code: 'PRECIS_INVALID' };

describe('derivedProperty (RFC 8264 §8)', () => {
  const cases: Array<[string, number, string]> = [
    ['an ASCII lowercase letter is PVALID', 0x61, 'PVALID'],
    ['an ASCII uppercase letter is PVALID (ASCII7)', 0x41, 'PVALID'],
    ['U+0020 SPACE is ID_DIS or FREE_PVAL', 0x20, 'FREE_PVAL'],
    ['U+0000 is DISALLOWED', 0x00, 'DISALLOWED'],
    ['U+00DF sharp s is PVALID by exception', 0xdf, 'PVALID'],
    ['U+03C2 final sigma is PVALID by exception', 0x3c2, 'PVALID'],
    ['U+0640 tatweel is DISALLOWED by exception', 0x640, 'DISALLOWED'],
    ['U+00B7 middle dot is CONTEXTO', 0xb7, 'CONTEXTO'],
    ['U+0661 Arabic-Indic digit one is CONTEXTO', 0x661, 'CONTEXTO'],
    ['U+200C zero width non-joiner is CONTEXTJ', 0x200c, 'CONTEXTJ'],
    ['U+0378 is UNASSIGNED', 0x378, 'UNASSIGNED'],
    ['U+FFFF noncharacter is DISALLOWED', 0xffff, 'DISALLOWED'],
    ['U+1100 Hangul choseong kiyeok is DISALLOWED (OldHangulJamo)', 0x1100, 'DISALLOWED'],
    ['U+200B zero width space is DISALLOWED (default ignorable)', 0x200b, 'DISALLOWED'],
    ['U+2163 Roman numeral four is ID_DIS or FREE_PVAL (HasCompat)', 0x2163, 'FREE_PVAL'],
    ['U+01C5 titlecase dz is ID_DIS or FREE_PVAL (HasCompat)', 0x1c5, 'FREE_PVAL'],
    ['U+03A9 Greek capital omega is PVALID', 0x3a9, 'PVALID'],
    ['U+16EE runic arlaug symbol is ID_DIS or FREE_PVAL (OtherLetterDigits)', 0x16ee, 'FREE_PVAL'],
    ['U+20AC euro sign is ID_DIS or FREE_PVAL (Symbols)', 0x20ac, 'FREE_PVAL'],
    ['U+00AB guillemet is ID_DIS or FREE_PVAL (Punctuation)', 0xab, 'FREE_PVAL'],
    ['U+E000 private use is DISALLOWED', 0xe000, 'DISALLOWED'],
    ['U+D800 surrogate is DISALLOWED', 0xd800, 'DISALLOWED'],
    ['U+2028 line separator is DISALLOWED', 0x2028, 'DISALLOWED'],
  ];
  for (const [name, cp, expected] of cases) {
    test(name, () => assert.equal(derivedProperty(cp), expected));
  }

  test('ID_DIS or FREE_PVAL is disallowed in IdentifierClass and valid in FreeformClass', () => {
    assert.equal(precisProperty(0x20ac, 'identifier'), 'DISALLOWED');
    assert.equal(precisProperty(0x20ac, 'freeform'), 'PVALID');
  });

  test('the ASCII fast path agrees with the full algorithm for every printable ASCII character', () => {
    for (let cp = 0x21; cp <= 0x7e; cp++) {
      assert.equal(derivedProperty(cp), 'PVALID');
      assert.ok(!['R', 'AL', 'AN'].includes(bidiClass(cp)));
    }
  });
});

describe('idnaProperty (RFC 5892 §3)', () => {
  test('lowercase letters, digits and hyphen are PVALID', () => {
    for (const ch of 'az09-') assert.equal(idnaProperty(ch.codePointAt(0)!), 'PVALID');
  });

  test('uppercase letters and underscore are DISALLOWED', () => {
    assert.equal(idnaProperty(0x41), 'DISALLOWED');
    assert.equal(idnaProperty(0x5f), 'DISALLOWED');
    assert.equal(idnaProperty(0xc9), 'DISALLOWED');
  });

  test('accented lowercase letters and sharp s are PVALID', () => {
    assert.equal(idnaProperty(0xe9), 'PVALID');
    assert.equal(idnaProperty(0xdf), 'PVALID');
  });
});

describe('usernameCaseMapped (RFC 8265 §3.3)', () => {
  test('lowercases ASCII', () => {
    assert.equal(usernameCaseMapped('Juliet'), 'juliet');
  });

  test('maps fullwidth characters to their ASCII forms before lowercasing', () => {
    assert.equal(usernameCaseMapped('ＪＵＬＩＥＴ'), 'juliet');
  });

  test('maps halfwidth katakana to standard katakana and composes voicing marks', () => {
    assert.equal(usernameCaseMapped('\uff76\uff9e'), '\u30ac');
  });

  test('normalizes to NFC', () => {
    assert.equal(usernameCaseMapped('e\u0301'), '\u00e9');
  });

  test('composes conjoining Hangul jamo into a syllable', () => {
    assert.equal(usernameCaseMapped('\u1100\u1161'), '\uac00');
  });

  test('keeps sharp s and final sigma, which are PVALID exceptions', () => {
    assert.equal(usernameCaseMapped('fußball'), 'fußball');
    assert.equal(usernameCaseMapped('ς'), 'ς');
  });

  test('lowercases Greek capital sigma to sigma', () => {
    assert.equal(usernameCaseMapped('Σ'), 'σ');
  });

  test('rejects the empty string', () => {
    assert.throws(() => usernameCaseMapped(''), INVALID);
  });

  test('throws PrecisError', () => {
    assert.throws(() => usernameCaseMapped(''), PrecisError);
  });

  test('rejects control characters', () => {
    for (const s of ['a\u0000b', 'a\tb', 'a\nb', 'a\u007fb', 'a\u0085b']) {
      assert.throws(() => usernameCaseMapped(s), INVALID, JSON.stringify(s));
    }
  });

  test('rejects spaces, including non-ASCII ones', () => {
    for (const s of ['foo bar', 'foo\u00a0bar', 'foo\u3000bar']) {
      assert.throws(() => usernameCaseMapped(s), INVALID, JSON.stringify(s));
    }
  });

  test('rejects non-ASCII symbols and punctuation', () => {
    for (const s of ['♚', 'a€', '«a»', '😀']) assert.throws(() => usernameCaseMapped(s), INVALID, s);
  });

  test('rejects compatibility characters that imitate letters and digits', () => {
    // Roman numeral four, mathematical bold a, script h, fi ligature, superscript two
    for (const s of ['henry\u2163', '\u{1d41a}dmin', 'ad\u210emin', '\ufb01le', 'x\u00b2']) {
      assert.throws(() => usernameCaseMapped(s), INVALID, s);
    }
  });

  test('rejects invisible default-ignorable characters hidden in a name', () => {
    for (const s of ['ad\u200bmin', 'ad\u00admin', 'ad\u2060min', '\ufeffadmin', 'admin\ufe0f']) {
      assert.throws(() => usernameCaseMapped(s), INVALID, JSON.stringify(s));
    }
  });

  test('accepts a Cyrillic lookalike, as PRECIS leaves mixed-script confusables to policy', () => {
    assert.equal(usernameCaseMapped('\u0430dmin'), '\u0430dmin');
  });

  test('rejects unassigned, private-use, noncharacter and lone surrogate code points', () => {
    for (const s of ['a\u0378', 'a\ue000', 'a\uffff', 'a\ud800']) {
      assert.throws(() => usernameCaseMapped(s), INVALID, JSON.stringify(s));
    }
  });

  test('rejects a conjoining Hangul jamo that does not compose', () => {
    assert.throws(() => usernameCaseMapped('\u1100'), INVALID);
  });

  test('accepts a right-to-left name', () => {
    assert.equal(usernameCaseMapped('שלום'), 'שלום');
    assert.equal(usernameCaseMapped('مرحبا'), 'مرحبا');
  });

  test('accepts a right-to-left name ending in digits or marks', () => {
    assert.equal(usernameCaseMapped('שלום1'), 'שלום1');
    assert.equal(usernameCaseMapped('שָלוֹם'), 'שָלוֹם');
  });

  test('rejects a right-to-left name starting with a digit (Bidi Rule 1)', () => {
    assert.throws(() => usernameCaseMapped('1שלום'), INVALID);
  });

  test('rejects left-to-right letters in a right-to-left name (Bidi Rule 2)', () => {
    assert.throws(() => usernameCaseMapped('שלוםa'), INVALID);
  });

  test('rejects a right-to-left name ending in a neutral character (Bidi Rule 3)', () => {
    assert.throws(() => usernameCaseMapped('שלום!'), INVALID);
  });

  test('rejects European and Arabic digits mixed in a right-to-left name (Bidi Rule 4)', () => {
    assert.throws(() => usernameCaseMapped('ب1١'), INVALID);
  });

  test('rejects right-to-left letters in a left-to-right name (Bidi Rule 5)', () => {
    assert.throws(() => usernameCaseMapped('aשלום'), INVALID);
  });

  test('rejects Arabic digits after Latin letters (Bidi Rule 5)', () => {
    assert.throws(() => usernameCaseMapped('a١'), INVALID);
  });
});

describe('contextual rules (RFC 5892 Appendix A)', () => {
  test('rejects a zero width joiner between Latin letters', () => {
    assert.throws(() => usernameCaseMapped('a\u200db'), INVALID);
  });

  test('accepts a zero width joiner after a virama', () => {
    assert.equal(usernameCaseMapped('\u0915\u094d\u200d\u0937'), '\u0915\u094d\u200d\u0937');
  });

  test('rejects a zero width non-joiner between Latin letters', () => {
    assert.throws(() => usernameCaseMapped('a\u200cb'), INVALID);
  });

  test('accepts a zero width non-joiner after a virama', () => {
    assert.equal(usernameCaseMapped('\u0915\u094d\u200c\u0937'), '\u0915\u094d\u200c\u0937');
  });

  test('accepts a zero width non-joiner between dual-joining Persian letters', () => {
    const word = '\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645'; // "می‌خواهم"
    assert.equal(usernameCaseMapped(word), word);
  });

  test('rejects a zero width non-joiner after a right-joining letter', () => {
    assert.throws(() => usernameCaseMapped('\u0627\u200c\u0628'), INVALID);
  });

  test('rejects a zero width non-joiner at the start', () => {
    assert.throws(() => usernameCaseMapped('\u200c\u0628\u0628'), INVALID);
  });

  test('accepts a middle dot between two l', () => {
    assert.equal(usernameCaseMapped('col·lega'), 'col·lega');
  });

  test('rejects a middle dot elsewhere', () => {
    assert.throws(() => usernameCaseMapped('a·b'), INVALID);
  });

  test('accepts a Greek keraia before a Greek letter and rejects it before a Latin one', () => {
    assert.equal(usernameCaseMapped('\u0375\u03b1'), '\u0375\u03b1');
    assert.throws(() => usernameCaseMapped('\u0375a'), INVALID);
  });

  test('accepts Hebrew geresh and gershayim after Hebrew letters only', () => {
    assert.equal(usernameCaseMapped('\u05d0\u05f3'), '\u05d0\u05f3');
    assert.equal(usernameCaseMapped('\u05d0\u05f4\u05d1'), '\u05d0\u05f4\u05d1');
    assert.throws(() => usernameCaseMapped('a\u05f3'), INVALID);
  });

  test('accepts a katakana middle dot only with kana or Han in the string', () => {
    assert.equal(usernameCaseMapped('\u30ab\u30fb\u30ad'), '\u30ab\u30fb\u30ad');
    assert.throws(() => usernameCaseMapped('a\u30fbb'), INVALID);
  });

  test('accepts Arabic-Indic digits or extended Arabic-Indic digits but not both', () => {
    assert.equal(usernameCaseMapped('\u0628\u0661\u0662'), '\u0628\u0661\u0662');
    assert.equal(usernameCaseMapped('\u0628\u06f1\u06f2'), '\u0628\u06f1\u06f2');
    assert.throws(() => usernameCaseMapped('\u0628\u0661\u06f2'), INVALID);
  });
});

describe('opaqueString (RFC 8265 §4.2)', () => {
  test('returns printable ASCII unchanged, case included', () => {
    assert.equal(opaqueString('Correct Horse!'), 'Correct Horse!');
  });

  test('accepts spaces, symbols and punctuation', () => {
    assert.equal(opaqueString('correct horse ♚ «staple» €5 😀'), 'correct horse ♚ «staple» €5 😀');
  });

  test('maps non-ASCII spaces to U+0020', () => {
    assert.equal(opaqueString('a\u00a0b\u3000c\u2009d'), 'a b c d');
  });

  test('does not map fullwidth characters', () => {
    assert.equal(opaqueString('Ｆｏｏ'), 'Ｆｏｏ');
  });

  test('normalizes to NFC', () => {
    assert.equal(opaqueString('e\u0301'), '\u00e9');
  });

  test('accepts a string of spaces only', () => {
    assert.equal(opaqueString('   '), '   ');
  });

  test('rejects the empty string', () => {
    assert.throws(() => opaqueString(''), INVALID);
  });

  test('rejects control characters', () => {
    for (const s of ['a\u0000', 'a\tb', 'a\r\nb', '\u007f', 'a\u0085', 'a\u009b']) {
      assert.throws(() => opaqueString(s), INVALID, JSON.stringify(s));
    }
  });

  test('rejects default-ignorable characters such as an emoji variation selector', () => {
    for (const s of ['a\u200bb', '\u2764\ufe0f', 'a\u00adb']) assert.throws(() => opaqueString(s), INVALID, JSON.stringify(s));
  });

  test('rejects a zero width joiner outside its allowed context', () => {
    assert.throws(() => opaqueString('\u{1f468}\u200d\u{1f469}'), INVALID);
  });

  test('rejects private-use and unassigned code points', () => {
    assert.throws(() => opaqueString('\ue000'), INVALID);
    assert.throws(() => opaqueString('\u0378'), INVALID);
  });
});
