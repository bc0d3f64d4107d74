/**
 * XML escaping for the serializer (XML 1.0 §2.4, §3.1, §2.11, §3.3.3).
 * Text escapes `& < >` and CR (a parser turns a literal CR or CRLF into LF, §2.11);
 * attribute values also escape both quote characters, so a value is safe inside either
 * quote style, and TAB, LF and CR (a parser turns literal ones into spaces, §3.3.3).
 */

const TEXT_SPECIAL = /[&<>\r]/;
const ATTR_SPECIAL = /[&<>"'\t\n\r]/;

/** Escapes character data. Returns the input itself when nothing needs escaping (the common case). */
export function escapeText(s: string): string {
  if (!TEXT_SPECIAL.test(s)) return s;
  return s.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#xD;'));
}

/** Escapes an attribute value. */
export function escapeAttr(s: string): string {
  if (!ATTR_SPECIAL.test(s)) return s;
  return s.replace(/[&<>"'\t\n\r]/g, (c) => {
    switch (c) {
      case '&': return '&amp;';
      case '<': return '&lt;';
      case '>': return '&gt;';
      case '"': return '&quot;';
      case '\t': return '&#x9;';
      case '\n': return '&#xA;';
      case '\r': return '&#xD;';
      default: return '&apos;';
    }
  });
}

/** The five predefined entities (XML 1.0 §4.6): the only ones a restricted XMPP stream allows. */
export const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = Object.freeze({
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
});
