/**
 * PRECIS: preparation and enforcement of internationalized strings.
 * References:
 * - RFC 8264 §4.2 (IdentifierClass), §4.3 (FreeformClass), §7 (order of rules),
 *   §8 (derived property algorithm), §9 (code point categories).
 * - RFC 8265 §3.3 (UsernameCaseMapped profile), §4.2 (OpaqueString profile).
 * - RFC 5892 §2, §3 and Appendix A (IDNA2008 derived property, CONTEXTJ and CONTEXTO rules).
 * - RFC 5893 §2 (the Bidi Rule).
 *
 * The categories are computed from the Unicode tables of the running V8/ICU with `\p{…}`
 * regexes, so the accepted repertoire follows the Node.js Unicode version. ECMAScript exposes
 * neither Bidi_Class, Joining_Type nor Canonical_Combining_Class, so those three are derived
 * here: Bidi_Class from the right-to-left block ranges plus General_Category and a few listed
 * exceptions (checked to be exact, against the Unicode 14 tables, for every code point that
 * IdentifierClass admits); Joining_Type from the ArabicShaping.txt exceptions of the Arabic,
 * Syriac and Mandaic blocks with every other letter of a cursive script taken as dual-joining
 * (approximate outside those blocks); and the virama test from the canonical ordering
 * algorithm itself (see {@link isVirama}), which is exact.
 */
import { XmppError } from './errors.js';

/** A string rejected by a PRECIS profile or by the IDNA2008 label rules. */
export class PrecisError extends XmppError {
  readonly code = 'PRECIS_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'PrecisError';
  }
}

/**
 * The derived property of a code point (RFC 8264 §8). `FREE_PVAL` is the RFC's
 * "ID_DIS or FREE_PVAL": valid in FreeformClass, disallowed in IdentifierClass.
 */
export type DerivedProperty = 'PVALID' | 'CONTEXTJ' | 'CONTEXTO' | 'FREE_PVAL' | 'DISALLOWED' | 'UNASSIGNED';

/** The two PRECIS string classes (RFC 8264 §4). */
export type StringClass = 'identifier' | 'freeform';

// --- Code point categories (RFC 8264 §9) -------------------------------------------------

const RE_UNASSIGNED = /\p{Cn}/u;
const RE_NONCHARACTER = /\p{Noncharacter_Code_Point}/u;
const RE_JOIN_CONTROL = /\p{Join_Control}/u;
const RE_PRECIS_IGNORABLE = /[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]/u;
const RE_CONTROLS = /\p{Cc}/u;
const RE_LETTER_DIGITS = /[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]/u;
const RE_OTHER_LETTER_DIGITS = /[\p{Lt}\p{Nl}\p{No}\p{Me}]/u;
const RE_SPACES = /\p{Zs}/u;
const RE_SYMBOLS = /[\p{Sm}\p{Sc}\p{Sk}\p{So}]/u;
const RE_PUNCTUATION = /\p{P}/u;
const RE_IDNA_IGNORABLE = /[\p{Default_Ignorable_Code_Point}\p{White_Space}\p{Noncharacter_Code_Point}]/u;

/** RFC 5892 §2.6 Exceptions (F), shared by PRECIS (RFC 8264 §9.6) and IDNA2008. */
function exception(cp: number): DerivedProperty | undefined {
  switch (cp) {
    case 0x00df: // LATIN SMALL LETTER SHARP S
    case 0x03c2: // GREEK SMALL LETTER FINAL SIGMA
    case 0x06fd: // ARABIC SIGN SINDHI AMPERSAND
    case 0x06fe: // ARABIC SIGN SINDHI POSTPOSITION MEN
    case 0x0f0b: // TIBETAN MARK INTERSYLLABIC TSHEG
    case 0x3007: // IDEOGRAPHIC NUMBER ZERO
      return 'PVALID';
    case 0x00b7: // MIDDLE DOT
    case 0x0375: // GREEK LOWER NUMERAL SIGN (KERAIA)
    case 0x05f3: // HEBREW PUNCTUATION GERESH
    case 0x05f4: // HEBREW PUNCTUATION GERSHAYIM
    case 0x30fb: // KATAKANA MIDDLE DOT
      return 'CONTEXTO';
    case 0x0640: // ARABIC TATWEEL
    case 0x07fa: // NKO LAJANYALAN
    case 0x302e: // HANGUL SINGLE DOT TONE MARK
    case 0x302f: // HANGUL DOUBLE DOT TONE MARK
    case 0x303b: // VERTICAL IDEOGRAPHIC ITERATION MARK
      return 'DISALLOWED';
  }
  if (cp >= 0x0660 && cp <= 0x0669) return 'CONTEXTO'; // ARABIC-INDIC DIGITS
  if (cp >= 0x06f0 && cp <= 0x06f9) return 'CONTEXTO'; // EXTENDED ARABIC-INDIC DIGITS
  if (cp >= 0x3031 && cp <= 0x3035) return 'DISALLOWED'; // VERTICAL KANA REPEAT MARKS
  return undefined;
}

/** RFC 8264 §9.10 / RFC 5892 §2.9: Hangul_Syllable_Type L, V or T (conjoining jamo). */
function isOldHangulJamo(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x11ff) || // L 1100–115F, V 1160–11A7, T 11A8–11FF
    (cp >= 0xa960 && cp <= 0xa97c) || // L
    (cp >= 0xd7b0 && cp <= 0xd7c6) || // V
    (cp >= 0xd7cb && cp <= 0xd7fb) // T
  );
}

function isUnassigned(ch: string): boolean {
  return RE_UNASSIGNED.test(ch) && !RE_NONCHARACTER.test(ch);
}

/**
 * The PRECIS derived property of one code point (RFC 8264 §8), independent of the string
 * class: `FREE_PVAL` means "ID_DIS or FREE_PVAL".
 */
export function derivedProperty(cp: number): DerivedProperty {
  const ex = exception(cp);
  if (ex !== undefined) return ex;
  // BackwardCompatible (RFC 8264 §9.7) is empty.
  if (cp >= 0x21 && cp <= 0x7e) return 'PVALID'; // ASCII7; Unassigned never matches ASCII
  if (cp < 0x80) return cp === 0x20 ? 'FREE_PVAL' : 'DISALLOWED'; // space (Zs) or Cc
  const ch = String.fromCodePoint(cp);
  if (isUnassigned(ch)) return 'UNASSIGNED';
  if (RE_JOIN_CONTROL.test(ch)) return 'CONTEXTJ';
  if (isOldHangulJamo(cp)) return 'DISALLOWED';
  if (RE_PRECIS_IGNORABLE.test(ch)) return 'DISALLOWED';
  if (RE_CONTROLS.test(ch)) return 'DISALLOWED';
  if (ch.normalize('NFKC') !== ch) return 'FREE_PVAL'; // HasCompat
  if (RE_LETTER_DIGITS.test(ch)) return 'PVALID';
  if (RE_OTHER_LETTER_DIGITS.test(ch)) return 'FREE_PVAL';
  if (RE_SPACES.test(ch)) return 'FREE_PVAL';
  if (RE_SYMBOLS.test(ch)) return 'FREE_PVAL';
  if (RE_PUNCTUATION.test(ch)) return 'FREE_PVAL';
  return 'DISALLOWED'; // Cs, Co, Zl, Zp, non-ignorable Cf
}

/** The property of a code point within one string class (RFC 8264 §4.2.1–4.2.3, §4.3.1–4.3.3). */
export function precisProperty(cp: number, cls: StringClass): DerivedProperty {
  const p = derivedProperty(cp);
  if (p === 'FREE_PVAL') return cls === 'freeform' ? 'PVALID' : 'DISALLOWED';
  return p;
}

/**
 * The IDNA2008 derived property of one code point (RFC 5892 §3). Unstable is
 * NFKC(CaseFold(NFKC(cp))) ≠ cp, with CaseFold approximated by toLowerCase plus the Cherokee
 * small letters, the only lowercase letters that full case folding maps to uppercase.
 */
export function idnaProperty(cp: number): DerivedProperty {
  const ex = exception(cp);
  if (ex !== undefined) return ex;
  if (cp < 0x80) {
    const isLdh = (cp >= 0x61 && cp <= 0x7a) || (cp >= 0x30 && cp <= 0x39) || cp === 0x2d;
    return isLdh ? 'PVALID' : 'DISALLOWED';
  }
  const ch = String.fromCodePoint(cp);
  if (isUnassigned(ch)) return 'UNASSIGNED';
  if (RE_JOIN_CONTROL.test(ch)) return 'CONTEXTJ';
  if (ch.normalize('NFKC').toLowerCase().normalize('NFKC') !== ch) return 'DISALLOWED';
  if ((cp >= 0xab70 && cp <= 0xabbf) || (cp >= 0x13f8 && cp <= 0x13fd)) return 'DISALLOWED';
  if (RE_IDNA_IGNORABLE.test(ch)) return 'DISALLOWED';
  // IgnorableBlocks: Combining Diacritical Marks for Symbols, Musical Symbols, Ancient Greek Musical Notation.
  if ((cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0x1d100 && cp <= 0x1d24f)) return 'DISALLOWED';
  if (isOldHangulJamo(cp)) return 'DISALLOWED';
  if (RE_LETTER_DIGITS.test(ch)) return 'PVALID';
  return 'DISALLOWED';
}

// --- Bidi_Class (for the Bidi Rule, RFC 5893 §2) ------------------------------------------

export type BidiClass = 'L' | 'R' | 'AL' | 'EN' | 'ES' | 'ET' | 'CS' | 'ON' | 'BN' | 'NSM' | 'AN' | 'WS' | 'B' | 'S';

/**
 * Blocks whose unlisted code points default to R or AL (the `@missing` lines of
 * DerivedBidiClass.txt); letters, digits and most marks of those scripts take the default.
 */
const RTL_RANGES: ReadonlyArray<readonly [number, number, 'R' | 'AL']> = [
  [0x0590, 0x05ff, 'R'],
  [0x0600, 0x07bf, 'AL'],
  [0x07c0, 0x085f, 'R'],
  [0x0860, 0x08ff, 'AL'],
  [0xfb1d, 0xfb4f, 'R'],
  [0xfb50, 0xfdcf, 'AL'],
  [0xfdf0, 0xfdff, 'AL'],
  [0xfe70, 0xfeff, 'AL'],
  [0x10800, 0x10cff, 'R'],
  [0x10d00, 0x10d3f, 'AL'],
  [0x10d40, 0x10ebf, 'R'],
  [0x10ec0, 0x10eff, 'AL'],
  [0x10f00, 0x10f2f, 'R'],
  [0x10f30, 0x10f6f, 'AL'],
  [0x10f70, 0x10fff, 'R'],
  [0x1e800, 0x1ec6f, 'R'],
  [0x1ec70, 0x1ecbf, 'AL'],
  [0x1ecc0, 0x1ecff, 'R'],
  [0x1ed00, 0x1ed4f, 'AL'],
  [0x1ed50, 0x1edff, 'R'],
  [0x1ee00, 0x1eeff, 'AL'],
  [0x1ef00, 0x1efff, 'R'],
];

/** ASCII Bidi_Class, indexed by code point. */
const ASCII_BIDI: readonly BidiClass[] = (() => {
  const t: BidiClass[] = [];
  for (let cp = 0; cp < 0x80; cp++) {
    const ch = String.fromCharCode(cp);
    let c: BidiClass = 'ON';
    if (/[A-Za-z]/.test(ch)) c = 'L';
    else if (/[0-9]/.test(ch)) c = 'EN';
    else if (ch === '+' || ch === '-') c = 'ES';
    else if (ch === '#' || ch === '$' || ch === '%') c = 'ET';
    else if (ch === ',' || ch === '.' || ch === '/' || ch === ':') c = 'CS';
    else if (ch === ' ' || ch === '\f') c = 'WS';
    else if (ch === '\t' || ch === '\v' || ch === '\x1f') c = 'S';
    else if (ch === '\n' || ch === '\r' || (cp >= 0x1c && cp <= 0x1e)) c = 'B';
    else if (cp < 0x20 || cp === 0x7f) c = 'BN';
    t.push(c);
  }
  return t;
})();

const RE_MODIFIER_ON = /[\u02b9\u02ba\u02c6-\u02cf\u02ec\u2e2f\ua67f\ua717-\ua71f\ua788]/u;
const RE_LT_NL = /[\p{Lt}\p{Nl}]/u;
const RE_NSM = /[\p{Mn}\p{Me}]/u;
const RE_BN = /[\p{Cf}\p{Cc}\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]/u;
const RE_EN_COMPAT = /[\u00b2\u00b3\u00b9\u2070-\u2079\u2080-\u2089\u2488-\u249b\uff10-\uff19\u{1d7ce}-\u{1d7ff}\u{1f100}-\u{1f10a}\u{1fbf0}-\u{1fbf9}]/u;
const RE_ES = /[\u207a\u207b\u208a\u208b\u2212\ufb29\ufe62\ufe63\uff0b\uff0d]/u;
const RE_CS = /[\u00a0\u060c\u202f\u2044\ufe50\ufe52\ufe55\uff0c\uff0e\uff0f\uff1a]/u;
const RE_ET = /[\p{Sc}\u00b0\u00b1\u0609\u060a\u066a\u2030-\u2034\u2213\ufe5f\ufe69\ufe6a\uff03\uff05]/u;

/** The Bidi_Class of a code point, derived as described in the file header. */
export function bidiClass(cp: number): BidiClass {
  if (cp < 0x80) return ASCII_BIDI[cp]!;
  // Arabic number forms and digits, which sit inside AL blocks but are AN or EN.
  if ((cp >= 0x0600 && cp <= 0x0605) || (cp >= 0x0660 && cp <= 0x0669) || cp === 0x066b || cp === 0x066c) return 'AN';
  if (cp === 0x06dd || cp === 0x0890 || cp === 0x0891 || cp === 0x08e2) return 'AN';
  if ((cp >= 0x10d30 && cp <= 0x10d39) || (cp >= 0x10e60 && cp <= 0x10e7e)) return 'AN';
  if (cp >= 0x06f0 && cp <= 0x06f9) return 'EN';
  // Letters and marks whose Bidi_Class is not the one their General_Category suggests.
  if (cp === 0x0f0b || cp === 0x0cbf || cp === 0x0cc6 || cp === 0x11a07 || cp === 0x11a08 || cp === 0x11c3f) return 'L';
  if (cp === 0x1171e) return 'NSM';
  const ch = String.fromCodePoint(cp);
  if (RE_MODIFIER_ON.test(ch)) return 'ON';
  if (cp === 0x200e) return 'L'; // LRM
  if (cp === 0x200f) return 'R'; // RLM
  if (cp === 0x061c) return 'AL'; // ALM
  if (cp === 0x2028) return 'WS';
  if (cp === 0x2029 || cp === 0x0085) return 'B';
  if (RE_NSM.test(ch)) return 'NSM';
  if (RE_BN.test(ch)) return 'BN';
  if (RE_CS.test(ch)) return 'CS';
  if (RE_ES.test(ch)) return 'ES';
  if (RE_ET.test(ch)) return 'ET';
  if (RE_EN_COMPAT.test(ch)) return 'EN';
  if (RE_SPACES.test(ch)) return 'WS';
  for (const [lo, hi, dir] of RTL_RANGES) {
    if (cp < lo) break;
    if (cp <= hi) return dir;
  }
  if (RE_LETTER_DIGITS.test(ch) || RE_LT_NL.test(ch)) return 'L';
  return 'ON';
}

/** True when the string holds a code point that makes the Bidi Rule apply (R, AL or AN; RFC 5893 §1.4). */
export function hasRtl(cps: readonly number[]): boolean {
  for (const cp of cps) {
    if (cp < 0x0590) continue;
    const c = bidiClass(cp);
    if (c === 'R' || c === 'AL' || c === 'AN') return true;
  }
  return false;
}

const RTL_ALLOWED = new Set<BidiClass>(['R', 'AL', 'AN', 'EN', 'ES', 'CS', 'ET', 'ON', 'BN', 'NSM']);
const LTR_ALLOWED = new Set<BidiClass>(['L', 'EN', 'ES', 'CS', 'ET', 'ON', 'BN', 'NSM']);

/** RFC 5893 §2: the six conditions of the Bidi Rule, for one label or string. */
export function satisfiesBidiRule(cps: readonly number[]): boolean {
  if (cps.length === 0) return false;
  const classes = cps.map(bidiClass);
  const first = classes[0]!;
  // 1. The first character must be L, R or AL.
  if (first !== 'L' && first !== 'R' && first !== 'AL') return false;
  let last = classes.length - 1;
  while (last > 0 && classes[last] === 'NSM') last--;
  const end = classes[last]!;
  if (first === 'L') {
    // 5. Only LTR-compatible classes; 6. ends with L or EN (then NSM*).
    if (!classes.every((c) => LTR_ALLOWED.has(c))) return false;
    return end === 'L' || end === 'EN';
  }
  // 2. Only RTL-compatible classes; 3. ends with R, AL, EN or AN (then NSM*); 4. not both EN and AN.
  if (!classes.every((c) => RTL_ALLOWED.has(c))) return false;
  if (end !== 'R' && end !== 'AL' && end !== 'EN' && end !== 'AN') return false;
  return !(classes.includes('EN') && classes.includes('AN'));
}

// --- Contextual rules (RFC 5892 Appendix A) -----------------------------------------------

/**
 * Canonical_Combining_Class(cp) = Virama (9), read off the canonical ordering algorithm:
 * a mark with 7 < ccc < 10 sorts after U+093C (ccc 7) and before U+05B0 (ccc 10); the only
 * code points with ccc 8 are the kana voicing marks. Exact for the runtime's Unicode version.
 */
export function isVirama(cp: number): boolean {
  // The probes themselves (U+05B0, U+093C) and the kana voicing marks (ccc 8) are excluded.
  if (cp < 0x0300 || cp === 0x05b0 || cp === 0x093c || cp === 0x3099 || cp === 0x309a) return false;
  const m = String.fromCodePoint(cp);
  return ('a' + m + '\u093c').normalize('NFD') === 'a\u093c' + m && ('a\u05b0' + m).normalize('NFD') === 'a' + m + '\u05b0';
}

type JoiningType = 'U' | 'L' | 'R' | 'D' | 'T' | 'C';

/**
 * Non-dual-joining letters of the Arabic, Syriac and Mandaic blocks (ArabicShaping.txt).
 * Every other letter of a cursive script is taken as dual-joining.
 */
const JOINING_EXCEPTIONS: ReadonlyArray<readonly [number, number, JoiningType]> = [
  [0x0621, 0x0621, 'U'],
  [0x0622, 0x0625, 'R'],
  [0x0627, 0x0627, 'R'],
  [0x0629, 0x0629, 'R'],
  [0x062f, 0x0632, 'R'],
  [0x0640, 0x0640, 'C'],
  [0x0648, 0x0648, 'R'],
  [0x0671, 0x0673, 'R'],
  [0x0674, 0x0674, 'U'],
  [0x0675, 0x0677, 'R'],
  [0x0688, 0x0699, 'R'],
  [0x06c0, 0x06c0, 'R'],
  [0x06c3, 0x06cb, 'R'],
  [0x06cd, 0x06cd, 'R'],
  [0x06cf, 0x06cf, 'R'],
  [0x06d2, 0x06d3, 'R'],
  [0x06d5, 0x06d5, 'R'],
  [0x06ee, 0x06ef, 'R'],
  [0x0710, 0x0710, 'R'],
  [0x0715, 0x0719, 'R'],
  [0x071e, 0x071e, 'R'],
  [0x0728, 0x0728, 'R'],
  [0x072a, 0x072a, 'R'],
  [0x072c, 0x072c, 'R'],
  [0x072f, 0x072f, 'R'],
  [0x074d, 0x074d, 'R'],
  [0x0759, 0x075b, 'R'],
  [0x076b, 0x076c, 'R'],
  [0x0771, 0x0771, 'R'],
  [0x0773, 0x0774, 'R'],
  [0x0778, 0x0779, 'R'],
  [0x07fa, 0x07fa, 'C'],
  [0x0840, 0x0840, 'R'],
  [0x0846, 0x0847, 'R'],
  [0x0849, 0x0849, 'R'],
  [0x0854, 0x0854, 'R'],
  [0x0856, 0x0858, 'R'],
  [0x0861, 0x0861, 'U'],
  [0x0866, 0x0866, 'U'],
  [0x0867, 0x0867, 'R'],
  [0x0869, 0x086a, 'R'],
  [0x0870, 0x0882, 'R'],
  [0x0883, 0x0885, 'C'],
  [0x088e, 0x088e, 'R'],
  [0x08aa, 0x08ac, 'R'],
  [0x08ad, 0x08ad, 'U'],
  [0x08ae, 0x08ae, 'R'],
  [0x08b1, 0x08b2, 'R'],
  [0x08b9, 0x08b9, 'R'],
  [0x180a, 0x180a, 'C'],
  [0xa872, 0xa872, 'L'],
];

const RE_JOINING_SCRIPT =
  /[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mandaic}\p{Script=Mongolian}\p{Script=Phags_Pa}\p{Script=Manichaean}\p{Script=Psalter_Pahlavi}\p{Script=Hanifi_Rohingya}\p{Script=Sogdian}\p{Script=Old_Uyghur}\p{Script=Chorasmian}\p{Script=Adlam}]/u;
const RE_TRANSPARENT = /[\p{Mn}\p{Me}\p{Cf}]/u;
const RE_LETTER = /\p{L}/u;

/** Joining_Type (ArabicShaping.txt), derived as described in the file header. */
function joiningType(cp: number): JoiningType {
  if (cp < 0x0300) return 'U';
  if (cp === 0x200c) return 'U';
  if (cp === 0x200d) return 'C';
  if ((cp >= 0x0600 && cp <= 0x0605) || cp === 0x06dd || cp === 0x08e2) return 'U'; // prepended marks
  for (const [lo, hi, t] of JOINING_EXCEPTIONS) {
    if (cp < lo) break;
    if (cp <= hi) return t;
  }
  const ch = String.fromCodePoint(cp);
  if (RE_TRANSPARENT.test(ch)) return 'T';
  return RE_LETTER.test(ch) && RE_JOINING_SCRIPT.test(ch) ? 'D' : 'U';
}

/** RFC 5892 A.1: ZERO WIDTH NON-JOINER. */
function zwnjAllowed(cps: readonly number[], i: number): boolean {
  if (i > 0 && isVirama(cps[i - 1]!)) return true;
  let j = i - 1;
  while (j >= 0 && joiningType(cps[j]!) === 'T') j--;
  if (j < 0) return false;
  const left = joiningType(cps[j]!);
  if (left !== 'L' && left !== 'D') return false;
  let k = i + 1;
  while (k < cps.length && joiningType(cps[k]!) === 'T') k++;
  if (k >= cps.length) return false;
  const right = joiningType(cps[k]!);
  return right === 'R' || right === 'D';
}

const RE_GREEK = /\p{Script=Greek}/u;
const RE_HEBREW = /\p{Script=Hebrew}/u;
const RE_KANA_HAN = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u;

/** RFC 5892 A.1–A.9, evaluated for the code point at `i`. */
function contextAllowed(cps: readonly number[], i: number): boolean {
  const cp = cps[i]!;
  const before = i > 0 ? cps[i - 1] : undefined;
  const after = i + 1 < cps.length ? cps[i + 1] : undefined;
  switch (cp) {
    case 0x200c:
      return zwnjAllowed(cps, i);
    case 0x200d: // A.2 ZERO WIDTH JOINER
      return before !== undefined && isVirama(before);
    case 0x00b7: // A.3 MIDDLE DOT: only in Catalan "l·l"
      return before === 0x6c && after === 0x6c;
    case 0x0375: // A.4 GREEK LOWER NUMERAL SIGN
      return after !== undefined && RE_GREEK.test(String.fromCodePoint(after));
    case 0x05f3: // A.5 HEBREW PUNCTUATION GERESH
    case 0x05f4: // A.6 HEBREW PUNCTUATION GERSHAYIM
      return before !== undefined && RE_HEBREW.test(String.fromCodePoint(before));
    case 0x30fb: // A.7 KATAKANA MIDDLE DOT
      return cps.some((c) => c !== 0x30fb && RE_KANA_HAN.test(String.fromCodePoint(c)));
  }
  if (cp >= 0x0660 && cp <= 0x0669) return !cps.some((c) => c >= 0x06f0 && c <= 0x06f9); // A.8
  if (cp >= 0x06f0 && cp <= 0x06f9) return !cps.some((c) => c >= 0x0660 && c <= 0x0669); // A.9
  return false; // CONTEXTJ/CONTEXTO without a rule is not allowed
}

/** Applies a per-code-point property and the contextual rules; throws on the first failure. */
function checkCodePoints(cps: readonly number[], property: (cp: number) => DerivedProperty, what: string): void {
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i]!;
    const p = property(cp);
    if (p === 'PVALID') continue;
    if ((p === 'CONTEXTJ' || p === 'CONTEXTO') && contextAllowed(cps, i)) continue;
    const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    const why = p === 'CONTEXTJ' || p === 'CONTEXTO' ? 'not allowed in this context' : p === 'UNASSIGNED' ? 'unassigned' : 'disallowed';
    throw new PrecisError(`${what}: ${hex} is ${why}`);
  }
}

function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!);
  return out;
}

// --- Mappings ------------------------------------------------------------------------------

/** Targets of the <wide> mappings of U+FFE0–FFE6 (FFE3 has no single-code-point NFKC form). */
const FULLWIDTH_SIGNS = [0x00a2, 0x00a3, 0x00ac, 0x00af, 0x00a6, 0x00a5, 0x20a9];

/**
 * The <wide>/<narrow> decomposition mapping of one code point. NFKC gives it for most of
 * them; the halfwidth Hangul letters and U+FFE3 would be decomposed further, so they are
 * mapped by table (U+FFA0 → U+3164, U+FFA1… → U+3131…).
 */
function widthMapChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (cp === 0x3000) return ' ';
  if (cp >= 0xff01 && cp <= 0xff5e) return String.fromCharCode(cp - 0xfee0);
  if (cp >= 0xffe0 && cp <= 0xffe6) return String.fromCharCode(FULLWIDTH_SIGNS[cp - 0xffe0]!);
  if (cp === 0xffa0) return '\u3164';
  if (cp >= 0xffa1 && cp <= 0xffbe) return String.fromCharCode(cp - 0xce70);
  if (cp >= 0xffc2 && cp <= 0xffc7) return String.fromCharCode(cp - 0xce73);
  if (cp >= 0xffca && cp <= 0xffcf) return String.fromCharCode(cp - 0xce75);
  if (cp >= 0xffd2 && cp <= 0xffd7) return String.fromCharCode(cp - 0xce77);
  if (cp >= 0xffda && cp <= 0xffdc) return String.fromCharCode(cp - 0xce79);
  return ch.normalize('NFKC'); // FF5F–FF9F, FFE8–FFEE; code points without a mapping are unchanged
}

const RE_WIDTH = /[\u3000\uff01-\uffee]/g;

/** RFC 8264 §5.2.1 Width Mapping Rule (RFC 8265 §3.3.2 step 1): fullwidth and halfwidth forms to their decomposition mappings. */
export function widthMap(s: string): string {
  return s.replace(RE_WIDTH, widthMapChar);
}

/** Every Zs code point; mapping U+0020 to itself is harmless. */
const RE_SPACE_SEPARATOR = /\p{Zs}/gu;

/** True when every code unit is in [lo, hi]; the ASCII fast path. */
function allCodeUnitsIn(s: string, lo: number, hi: number): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < lo || c > hi) return false;
  }
  return true;
}

// --- Profiles ------------------------------------------------------------------------------

/**
 * RFC 8265 §3.3: the UsernameCaseMapped profile (width mapping, toLowerCase, NFC, Bidi Rule,
 * IdentifierClass). Returns the enforced string.
 *
 * @throws PrecisError when the string is empty or holds a code point the profile rejects.
 * @example
 * usernameCaseMapped('Juliet'); // 'juliet'
 * usernameCaseMapped('ＪＵＬＩＥＴ'); // 'juliet'
 */
export function usernameCaseMapped(s: string): string {
  if (s.length === 0) throw new PrecisError('username: empty');
  // Printable ASCII is all PVALID in IdentifierClass, has no RTL and is already NFC.
  if (allCodeUnitsIn(s, 0x21, 0x7e)) return s.toLowerCase();
  const prepared = widthMap(s).toLowerCase().normalize('NFC');
  const cps = codePoints(prepared);
  if (cps.length === 0) throw new PrecisError('username: empty');
  checkCodePoints(cps, (cp) => precisProperty(cp, 'identifier'), 'username');
  if (hasRtl(cps) && !satisfiesBidiRule(cps)) throw new PrecisError('username: violates the Bidi Rule');
  return prepared;
}

/**
 * RFC 8265 §4.2: the OpaqueString profile (non-ASCII spaces to U+0020, NFC, FreeformClass).
 * Used for passwords and JID resourceparts. Returns the enforced string.
 *
 * @throws PrecisError when the string is empty or holds a code point the profile rejects.
 * @example
 * opaqueString('correct horse ♚'); // unchanged
 * opaqueString('a\u00a0b'); // 'a b'
 */
export function opaqueString(s: string): string {
  if (s.length === 0) throw new PrecisError('opaque string: empty');
  if (allCodeUnitsIn(s, 0x20, 0x7e)) return s;
  const prepared = s.replace(RE_SPACE_SEPARATOR, ' ').normalize('NFC');
  const cps = codePoints(prepared);
  if (cps.length === 0) throw new PrecisError('opaque string: empty');
  checkCodePoints(cps, (cp) => precisProperty(cp, 'freeform'), 'opaque string');
  return prepared;
}

const RE_MARK = /\p{M}/u;

/**
 * RFC 5891 §4.2.3 and §5.4: checks one U-label (already lowercased and NFC) against the
 * IDNA2008 code point, hyphen, leading-mark and contextual rules. The Bidi Rule is checked
 * over the whole domain name by the caller, since it applies to every label once any label
 * is right-to-left. Returns the label's code points for that check.
 *
 * @throws PrecisError naming the first violation.
 */
export function checkULabel(label: string): number[] {
  const cps = codePoints(label);
  if (cps.length === 0) throw new PrecisError('domain label: empty');
  if (label.startsWith('-') || label.endsWith('-')) throw new PrecisError('domain label: leading or trailing hyphen');
  if (cps[2] === 0x2d && cps[3] === 0x2d) throw new PrecisError('domain label: hyphens in positions 3 and 4');
  if (RE_MARK.test(String.fromCodePoint(cps[0]!))) throw new PrecisError('domain label: leading combining mark');
  checkCodePoints(cps, idnaProperty, 'domain label');
  return cps;
}
