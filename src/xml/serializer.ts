/**
 * Serializer: element → string, escaping per XML 1.0. Attributes are written with single
 * quotes, in insertion order. Empty elements are self-closed.
 */
import { escapeAttr, escapeText } from './escape.js';

/**
 * What the serializer reads of an element (XmlElement is one). Declared here, not imported,
 * so that element.ts (which serializes itself) and this file do not import each other.
 */
export interface SerializableElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string | undefined>>;
  readonly children: ReadonlyArray<string | SerializableElement>;
}

export function serialize(el: SerializableElement): string {
  let s = '<' + el.name;
  const attrs = el.attrs;
  for (const k in attrs) s += ' ' + k + "='" + escapeAttr(attrs[k]!) + "'";
  return s + serializeRest(el);
}

/** Everything after the attributes: `/>`, or `>children</name>`. */
function serializeRest(el: SerializableElement): string {
  const children = el.children;
  if (children.length === 0) return '/>';
  let s = '>';
  for (const c of children) s += typeof c === 'string' ? escapeText(c) : serialize(c);
  return s + '</' + el.name + '>';
}

/**
 * A stanza serialized once for a fan-out where only one attribute changes per recipient
 * (presence broadcast: `to`). `render(value)` costs one concatenation per recipient.
 */
export class SplitStanza {
  readonly #head: string;
  readonly #tail: string;
  readonly #attr: string;

  constructor(el: SerializableElement, attr: string) {
    let head = '<' + el.name;
    for (const k in el.attrs) if (k !== attr) head += ' ' + k + "='" + escapeAttr(el.attrs[k]!) + "'";
    this.#head = head;
    this.#tail = serializeRest(el);
    this.#attr = attr;
  }

  render(value: string | undefined): string {
    if (value === undefined) return this.#head + this.#tail;
    return this.#head + ' ' + this.#attr + "='" + escapeAttr(value) + "'" + this.#tail;
  }
}

/** The opening tag only, not self-closed (stream headers). */
export function openTag(name: string, attrs: Record<string, string | undefined>): string {
  let s = '<' + name;
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined) s += ' ' + k + "='" + escapeAttr(v) + "'";
  }
  return s + '>';
}
