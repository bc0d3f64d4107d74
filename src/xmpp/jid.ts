/**
 * XMPP addresses (JIDs).
 * References:
 * - RFC 7622 §3.1 (fundamentals: separators, length limits), §3.2 (domainpart),
 *   §3.3 (localpart: UsernameCaseMapped plus the forbidden " & ' / : < > @),
 *   §3.4 (resourcepart: OpaqueString), §3.5 / §3.6 (examples).
 * - RFC 5890 §2.3.2 and RFC 5891 §4.2, §5.3–5.5 (IDNA2008 labels), RFC 5893 (Bidi Rule).
 * - RFC 6120 §8.1.1.1 (`jid-malformed`).
 *
 * Parsing is on the path of every stanza: printable ASCII never reaches the Unicode tables,
 * and a bounded cache maps input strings to their (immutable, shareable) Jid.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { XmppError } from './errors.js';
import { PrecisError, checkULabel, hasRtl, opaqueString, satisfiesBidiRule, usernameCaseMapped, widthMap } from './precis.js';

/** A string that is not a valid JID (RFC 6120 `jid-malformed`). */
export class JidError extends XmppError {
  readonly code = 'JID_MALFORMED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JidError';
  }
}

/** RFC 7622 §3.1: each part is at most 1023 octets of UTF-8. */
const MAX_PART_BYTES = 1023;
/** Maximum DNS label length in octets of its A-label (RFC 5890 §2.3.2.1). */
const MAX_LABEL_OCTETS = 63;
/**
 * SECURITY: raw input is refused before any Unicode work when it cannot shrink to a legal
 * JID: no PRECIS mapping shrinks a string below a quarter of its UTF-16 length in octets.
 */
const MAX_RAW_PART_UNITS = 4 * MAX_PART_BYTES;
const MAX_RAW_UNITS = 3 * MAX_RAW_PART_UNITS + 2;
/** The parse cache is cleared when it reaches this size, which bounds its memory. */
const CACHE_LIMIT = 10_000;

/** RFC 7622 §3.3.1: code points a localpart must not contain, besides what PRECIS rejects. */
const RE_LOCAL_FORBIDDEN = /["&'/:<>@]/;
const RE_ASCII_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
// eslint-disable-next-line no-control-regex -- \x00 is the bottom of the ASCII range, not a control character looked for
const RE_NON_ASCII = /[^\x00-\x7f]/;

const cache = new Map<string, Jid>();

function utf8Length(s: string): number {
  return RE_NON_ASCII.test(s) ? Buffer.byteLength(s, 'utf8') : s.length;
}

function checkLength(part: string, what: string): void {
  if (utf8Length(part) > MAX_PART_BYTES) throw new JidError(`${what} longer than ${MAX_PART_BYTES} octets`);
}

/** Runs one PRECIS step, turning its error into a JidError that keeps the cause. */
function precis(fn: (s: string) => string, raw: string, what: string): string {
  try {
    return fn(raw);
  } catch (err) {
    if (err instanceof PrecisError) throw new JidError(`${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** RFC 7622 §3.3.2: enforcement of the localpart. */
function prepareLocal(raw: string): string {
  if (raw.length === 0) throw new JidError('empty localpart');
  if (raw.length > MAX_RAW_PART_UNITS) throw new JidError('localpart too long');
  const local = precis(usernameCaseMapped, raw, 'localpart');
  // SECURITY: these would let a localpart be read back as another JID or break XML/URIs.
  if (RE_LOCAL_FORBIDDEN.test(local)) throw new JidError('localpart contains a forbidden character');
  checkLength(local, 'localpart');
  return local;
}

/** RFC 7622 §3.4.2: enforcement of the resourcepart. */
function prepareResource(raw: string): string {
  if (raw.length === 0) throw new JidError('empty resourcepart');
  if (raw.length > MAX_RAW_PART_UNITS) throw new JidError('resourcepart too long');
  const resource = precis(opaqueString, raw, 'resourcepart');
  checkLength(resource, 'resourcepart');
  return resource;
}

/**
 * One label of a domain name, lowercased and NFC: returns its U-label form and checks the
 * octet length of its A-label form.
 */
function prepareLabel(label: string): { uLabel: string; cps: number[] | null } {
  if (label.length === 0) throw new JidError('domainpart has an empty label');
  if (!RE_NON_ASCII.test(label)) {
    if (label.length > MAX_LABEL_OCTETS) throw new JidError('domain label longer than 63 octets');
    if (label.startsWith('xn--')) {
      // SECURITY: an A-label must decode, hold only IDNA2008 code points and re-encode to itself.
      const uLabel = domainToUnicode(label);
      if (uLabel === '' || uLabel.includes('.') || domainToASCII(uLabel) !== label) {
        throw new JidError(`domainpart: invalid A-label ${label}`);
      }
      return { uLabel, cps: precisLabel(uLabel) };
    }
    if (!RE_ASCII_LABEL.test(label)) throw new JidError(`domainpart: ${label} is not a letter-digit-hyphen label`);
    if (label[2] === '-' && label[3] === '-') throw new JidError(`domainpart: ${label} is a reserved label`);
    return { uLabel: label, cps: null };
  }
  const cps = precisLabel(label);
  const aLabel = domainToASCII(label);
  if (aLabel === '' || aLabel.includes('.')) throw new JidError(`domainpart: ${label} has no A-label form`);
  if (aLabel.length > MAX_LABEL_OCTETS) throw new JidError('domain label longer than 63 octets');
  return { uLabel: label, cps };
}

function precisLabel(label: string): number[] {
  try {
    return checkULabel(label);
  } catch (err) {
    if (err instanceof PrecisError) throw new JidError(`domainpart: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * RFC 7622 §3.2: the domainpart. IP literals and IPv4 addresses are kept as they are
 * (lowercased); a domain name is mapped (width, lowercase, NFC, one trailing dot removed),
 * its A-labels are turned into U-labels, and each label is checked against IDNA2008.
 */
function prepareDomain(raw: string): string {
  if (raw.length === 0) throw new JidError('empty domainpart');
  if (raw.length > MAX_RAW_PART_UNITS) throw new JidError('domainpart too long');
  const isAscii = !RE_NON_ASCII.test(raw);
  let domain = isAscii ? raw.toLowerCase() : widthMap(raw).toLowerCase().normalize('NFC');
  if (domain.startsWith('[')) {
    // RFC 3986 IP-literal; IPvFuture is not supported.
    if (!domain.endsWith(']') || !isIPv6(domain.slice(1, -1))) throw new JidError('domainpart: invalid IP literal');
    return domain;
  }
  if (domain.endsWith('.')) domain = domain.slice(0, -1);
  if (domain.length === 0) throw new JidError('empty domainpart');
  if (isIPv4(domain)) return domain;
  const labels = domain.split('.');
  let changed = false;
  let isBidiDomain = false;
  const prepared = labels.map((label) => {
    const { uLabel, cps } = prepareLabel(label);
    if (uLabel !== label) changed = true;
    if (cps !== null && hasRtl(cps)) isBidiDomain = true;
    return { uLabel, cps };
  });
  if (isBidiDomain) {
    // RFC 5893 §2: in a domain name with any right-to-left label, every label obeys the Bidi Rule.
    for (const { uLabel, cps } of prepared) {
      if (!satisfiesBidiRule(cps ?? Array.from(uLabel, (c) => c.codePointAt(0)!))) {
        throw new JidError(`domainpart: label ${uLabel} violates the Bidi Rule`);
      }
    }
  }
  if (changed) domain = prepared.map((p) => p.uLabel).join('.');
  checkLength(domain, 'domainpart');
  return domain;
}

/**
 * An XMPP address: `localpart@domainpart/resourcepart` (RFC 7622). Every part is stored in
 * its enforced (canonical) form, so two Jids are equal exactly when their strings are.
 * Instances are frozen and may be shared.
 *
 * @example
 * const jid = Jid.parse('Juliet@Example.COM/Balcony');
 * jid.bare; // 'juliet@example.com'
 * jid.full; // 'juliet@example.com/Balcony'
 */
export class Jid {
  /** The localpart, `''` when absent. */
  readonly local: string;
  readonly domain: string;
  /** The resourcepart, `''` when absent. */
  readonly resource: string;
  readonly #bare: string;
  readonly #full: string;

  private constructor(local: string, domain: string, resource: string) {
    this.local = local;
    this.domain = domain;
    this.resource = resource;
    this.#bare = local ? `${local}@${domain}` : domain;
    this.#full = resource ? `${this.#bare}/${resource}` : this.#bare;
    Object.freeze(this);
  }

  /**
   * Parses and enforces a JID string. The first `/` starts the resourcepart (which may
   * itself hold `@` and `/`); the first `@` before it ends the localpart.
   *
   * @throws JidError when any part is empty, too long or rejected by its profile.
   * @example
   * Jid.parse('a.example.com/b@example.net').resource; // 'b@example.net'
   */
  static parse(s: string): Jid {
    const hit = cache.get(s);
    if (hit !== undefined) return hit;
    const jid = Jid.#parseUncached(s);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(s, jid);
    return jid;
  }

  /** Like {@link Jid.parse}, but returns `null` for a missing or malformed JID. */
  static tryParse(s: string | undefined | null): Jid | null {
    if (s === undefined || s === null || s === '') return null;
    try {
      return Jid.parse(s);
    } catch (err) {
      if (err instanceof JidError) return null;
      throw err;
    }
  }

  /**
   * Builds a JID from separate parts, enforcing each; `''` means an absent local or
   * resource part.
   *
   * @throws JidError when a part is rejected.
   * @example
   * Jid.of('Romeo', 'example.net', 'orchard').full; // 'romeo@example.net/orchard'
   */
  static of(local: string, domain: string, resource?: string): Jid {
    return new Jid(
      local === '' ? '' : prepareLocal(local),
      prepareDomain(domain),
      resource === undefined || resource === '' ? '' : prepareResource(resource),
    );
  }

  static #parseUncached(s: string): Jid {
    if (s.length === 0) throw new JidError('empty JID');
    if (s.length > MAX_RAW_UNITS) throw new JidError('JID too long');
    const slash = s.indexOf('/');
    const head = slash === -1 ? s : s.slice(0, slash);
    const at = head.indexOf('@');
    const local = at === -1 ? '' : prepareLocal(head.slice(0, at));
    const domain = prepareDomain(at === -1 ? head : head.slice(at + 1));
    const resource = slash === -1 ? '' : prepareResource(s.slice(slash + 1));
    return new Jid(local, domain, resource);
  }

  /** `local@domain`, or `domain` without a localpart. */
  get bare(): string {
    return this.#bare;
  }

  /** The whole JID; the same as {@link Jid.toString}. */
  get full(): string {
    return this.#full;
  }

  get isBare(): boolean {
    return this.resource === '';
  }

  /** This JID without its resourcepart (itself when already bare). */
  toBare(): Jid {
    return this.isBare ? this : new Jid(this.local, this.domain, '');
  }

  /**
   * This JID with another resourcepart.
   *
   * @throws JidError when the resource is empty or rejected by OpaqueString.
   */
  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, prepareResource(resource));
  }

  equals(other: Jid): boolean {
    return this === other || this.#full === other.#full;
  }

  toString(): string {
    return this.#full;
  }

  toJSON(): string {
    return this.#full;
  }
}
