/**
 * Entity capabilities (XEP-0115): the verification string of a disco#info result, and a
 * bounded cache of what each `ver` stands for, so the server asks one client per ver.
 * References: XEP-0115 §5.1 (verification string), §5.4 (processing: check the hash
 * before caching), §6.2 (security: a ver that does not verify is not cached).
 */
import { createHash } from 'node:crypto';
import type { XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';

/** The hash functions of the IANA registry that node supports, by their XEP-0115 names. */
const HASHES: Record<string, string> = { 'sha-1': 'sha1', 'sha-224': 'sha224', 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512', md5: 'md5' };

export interface CapsInfo {
  features: Set<string>;
}

/** The `<c/>` of a presence, when it has one worth querying. */
export interface CapsRef {
  node: string;
  ver: string;
  /** The hash function name (`sha-1`), or undefined for legacy caps (no verification). */
  hash: string | undefined;
}

export function capsOf(presence: XmlElement): CapsRef | null {
  const c = presence.getChild('c', NS.CAPS);
  if (!c) return null;
  const node = c.attrs.node;
  const ver = c.attrs.ver;
  if (!node || !ver || node.length > 1024 || ver.length > 256) return null;
  return { node, ver, hash: c.attrs.hash };
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * The XEP-0115 §5.1 verification string hashed with `hash`, or null when the disco#info
 * result may not be cached (§5.4: duplicate identities or features, malformed forms) or
 * the hash function is unknown.
 */
export function verificationString(query: XmlElement, hash: string): string | null {
  const algo = HASHES[hash];
  if (!algo) return null;
  const identities: string[] = [];
  for (const id of query.getChildren('identity', NS.DISCO_INFO)) {
    identities.push(`${id.attrs.category ?? ''}/${id.attrs.type ?? ''}/${id.attrs['xml:lang'] ?? ''}/${id.attrs.name ?? ''}`);
  }
  const features = query.getChildren('feature', NS.DISCO_INFO).map((f) => f.attrs.var ?? '');
  if (new Set(identities).size !== identities.length || new Set(features).size !== features.length) return null;
  const forms: Array<{ type: string; s: string }> = [];
  for (const form of query.getChildren('x', NS.X_DATA)) {
    const fields = form.getChildren('field', NS.X_DATA);
    const typeField = fields.find((f) => f.attrs.var === 'FORM_TYPE');
    if (!typeField) continue; // §5.4: forms without FORM_TYPE are ignored
    if (typeField.attrs.type !== 'hidden') return null;
    const typeValues = typeField.getChildren('value', NS.X_DATA);
    if (typeValues.length !== 1) return null;
    const type = typeValues[0]!.text();
    let s = type + '<';
    const rest = fields.filter((f) => f !== typeField);
    rest.sort((a, b) => byBytes(a.attrs.var ?? '', b.attrs.var ?? ''));
    for (const f of rest) {
      s += (f.attrs.var ?? '') + '<';
      const values = f.getChildren('value', NS.X_DATA).map((v) => v.text());
      values.sort(byBytes);
      for (const v of values) s += v + '<';
    }
    forms.push({ type, s });
  }
  if (new Set(forms.map((f) => f.type)).size !== forms.length) return null;
  identities.sort(byBytes);
  features.sort(byBytes);
  forms.sort((a, b) => byBytes(a.type, b.type));
  let s = '';
  for (const i of identities) s += i + '<';
  for (const f of features) s += f + '<';
  for (const f of forms) s += f.s;
  return createHash(algo).update(s, 'utf8').digest('base64');
}

/** ver → features, bounded, least recently used out first. */
export class CapsCache {
  readonly #map = new Map<string, CapsInfo>();
  constructor(readonly limit: number) {}

  get(hash: string, ver: string): CapsInfo | undefined {
    const key = `${hash} ${ver}`;
    const v = this.#map.get(key);
    if (v) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  set(hash: string, ver: string, info: CapsInfo): void {
    const key = `${hash} ${ver}`;
    this.#map.delete(key);
    this.#map.set(key, info);
    while (this.#map.size > this.limit) this.#map.delete(this.#map.keys().next().value!);
  }

  get size(): number {
    return this.#map.size;
  }
}
