/**
 * The element type shared by the parser, the server and the load generator.
 *
 * An element keeps its name as written (with a prefix if it had one), its attributes
 * (including `xmlns` declarations, so it serializes the way it came in), its children,
 * and its resolved namespace in `ns`. Elements made by code get `ns` from their `xmlns`
 * attribute, or from the parent they are appended to.
 */
import { serialize } from './serializer.js';

export type XmlNode = XmlElement | string;
export type XmlAttrs = Record<string, string>;

export class XmlElement {
  name: string;
  attrs: XmlAttrs;
  children: XmlNode[];
  /** Resolved namespace URI ('' when none is known). */
  ns: string;

  constructor(name: string, attrs?: XmlAttrs | null, children?: XmlNode[] | null, ns?: string) {
    this.name = name;
    this.attrs = attrs ?? {};
    this.children = [];
    this.ns = ns ?? this.attrs.xmlns ?? '';
    if (children) for (const c of children) this.append(c);
  }

  /** The name without its prefix. */
  get localName(): string {
    const i = this.name.indexOf(':');
    return i < 0 ? this.name : this.name.slice(i + 1);
  }

  attr(name: string): string | undefined {
    return this.attrs[name];
  }

  /** True when the element has this local name and (if given) this namespace. */
  is(name: string, ns?: string): boolean {
    return nameMatches(this.name, name) && (ns === undefined || this.ns === ns);
  }

  /** Appends a child; an element without a namespace of its own inherits this one. Returns this. */
  append(child: XmlNode | null | undefined | false): this {
    if (child === null || child === undefined || child === false) return this;
    if (typeof child !== 'string' && child.ns === '' && !('xmlns' in child.attrs)) child.ns = this.ns;
    this.children.push(child);
    return this;
  }

  /** Appends a new child element and returns the child (builder style). */
  c(name: string, attrs?: XmlAttrs | null): XmlElement {
    const child = new XmlElement(name, attrs);
    this.append(child);
    return child;
  }

  /** Appends text. Returns this. */
  t(text: string): this {
    if (text !== '') this.children.push(text);
    return this;
  }

  getChild(name: string, ns?: string): XmlElement | undefined {
    for (const c of this.children) {
      if (typeof c !== 'string' && nameMatches(c.name, name) && (ns === undefined || c.ns === ns)) return c;
    }
    return undefined;
  }

  getChildren(name: string, ns?: string): XmlElement[] {
    const out: XmlElement[] = [];
    for (const c of this.children) {
      if (typeof c !== 'string' && nameMatches(c.name, name) && (ns === undefined || c.ns === ns)) out.push(c);
    }
    return out;
  }

  /** The first child element in a namespace, whatever its name (e.g. the payload of an IQ). */
  getChildByNs(ns: string): XmlElement | undefined {
    for (const c of this.children) if (typeof c !== 'string' && c.ns === ns) return c;
    return undefined;
  }

  /** Child elements only. */
  elements(): XmlElement[] {
    const out: XmlElement[] = [];
    for (const c of this.children) if (typeof c !== 'string') out.push(c);
    return out;
  }

  firstElement(): XmlElement | undefined {
    for (const c of this.children) if (typeof c !== 'string') return c;
    return undefined;
  }

  /** The concatenated text children (not descendants). */
  text(): string {
    let s = '';
    for (const c of this.children) if (typeof c === 'string') s += c;
    return s;
  }

  getChildText(name: string, ns?: string): string | undefined {
    return this.getChild(name, ns)?.text();
  }

  removeChildren(name: string, ns?: string): this {
    this.children = this.children.filter(
      (c) => typeof c === 'string' || !(nameMatches(c.name, name) && (ns === undefined || c.ns === ns)),
    );
    return this;
  }

  /** A deep copy. */
  clone(): XmlElement {
    const copy = new XmlElement(this.name, { ...this.attrs }, null, this.ns);
    for (const c of this.children) copy.children.push(typeof c === 'string' ? c : c.clone());
    return copy;
  }

  toString(): string {
    return serialize(this);
  }
}

function nameMatches(written: string, wanted: string): boolean {
  if (written === wanted) return true;
  const n = written.length - wanted.length;
  return n > 1 && written.charCodeAt(n - 1) === 58 /* : */ && written.endsWith(wanted);
}

/**
 * Builds an element: `x('message', { to, type: 'chat' }, x('body', null, 'hi'))`.
 * Strings become text, `null`/`false` children are skipped.
 */
export function x(
  name: string,
  attrs?: Record<string, string | undefined> | null,
  ...children: Array<XmlNode | null | undefined | false>
): XmlElement {
  const el = new XmlElement(name, attrs ? dropUndefined(attrs) : null);
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (typeof c === 'string') el.t(c);
    else el.append(c);
  }
  return el;
}

function dropUndefined(attrs: Record<string, string | undefined>): XmlAttrs {
  const out: XmlAttrs = {};
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
