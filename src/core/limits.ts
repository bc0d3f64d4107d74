/**
 * The limit machinery (issue 9, point 4), in one place: token buckets per key, sliding
 * window counters per key, and the count of unauthenticated connections per IP address.
 * Transports, the c2s session and the modules call it where a limit applies; each call
 * site gives the client its defined XMPP error and counts the hit in `core.stats`.
 *
 * Every value is read from `config.limits` at the moment of use (never copied), so a
 * live reload that writes new values into that object takes effect at once.
 *
 * Memory is bounded: every per-key map is an LRU (a JavaScript Map in insertion order,
 * refreshed on use) with a cap; when the cap is hit the least recently used key is
 * forgotten, which can only make a limit more lenient for that key, never stricter.
 * There are no timers per user: one sweep timer for the whole server drops entries that
 * have gone back to their resting state (a full bucket, an empty window).
 *
 * See docs/limits.md for every limit, its key, its default and the error it gives.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Config } from '../config/schema.js';
import type { LimitName, ServerStats } from '../support/stats.js';

/** Most keys one map of buckets or windows remembers (LRU beyond). */
export const MAX_TRACKED_KEYS = 200_000;

interface Bucket {
  tokens: number;
  /** ms timestamp of the last refill. */
  at: number;
}

/**
 * Token buckets per key: `take(key, ratePerSecond, burst)` is true when a token was
 * available (and takes it). A bucket not in the map is full; a bucket that refilled to
 * full is dropped by `sweep`. `ratePerSecond` 0 turns the limit off.
 */
export class KeyedTokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #max: number;

  constructor(maxKeys = MAX_TRACKED_KEYS) {
    this.#max = maxKeys;
  }

  get size(): number {
    return this.#buckets.size;
  }

  take(key: string, ratePerSecond: number, burst: number, now = Date.now()): boolean {
    if (ratePerSecond <= 0) return true;
    const cap = Math.max(1, burst);
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#max) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: cap, at: now };
    } else {
      this.#buckets.delete(key); // re-inserted below: most recently used last
      b.tokens = Math.min(cap, b.tokens + ((now - b.at) * ratePerSecond) / 1000);
      b.at = now;
    }
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets buckets that are full again (they behave exactly like absent ones). */
  sweep(ratePerSecond: number, burst: number, now = Date.now()): void {
    if (ratePerSecond <= 0) {
      this.#buckets.clear();
      return;
    }
    const cap = Math.max(1, burst);
    for (const [k, b] of this.#buckets) if (b.tokens + ((now - b.at) * ratePerSecond) / 1000 >= cap) this.#buckets.delete(k);
  }

  delete(key: string): void {
    this.#buckets.delete(key);
  }
}

interface Window {
  /** Start (ms) of the current fixed window. */
  start: number;
  current: number;
  previous: number;
}

/**
 * Event counts per key over a sliding window, approximated from two fixed windows (the
 * previous one weighted by how much of it still overlaps): O(1) memory per key.
 */
export class SlidingWindowCounter {
  readonly #windows = new Map<string, Window>();
  readonly #max: number;

  constructor(maxKeys = MAX_TRACKED_KEYS) {
    this.#max = maxKeys;
  }

  get size(): number {
    return this.#windows.size;
  }

  #roll(w: Window, windowMs: number, now: number): void {
    const elapsed = now - w.start;
    if (elapsed < windowMs) return;
    if (elapsed < 2 * windowMs) {
      w.previous = w.current;
      w.start += windowMs;
    } else {
      w.previous = 0;
      w.start = now;
    }
    w.current = 0;
  }

  /** Events of `key` within the last `windowMs`. */
  count(key: string, windowMs: number, now = Date.now()): number {
    const w = this.#windows.get(key);
    if (w === undefined) return 0;
    this.#roll(w, windowMs, now);
    const overlap = Math.max(0, 1 - (now - w.start) / windowMs);
    return w.current + w.previous * overlap;
  }

  /** Records one event; returns the count including it. */
  add(key: string, windowMs: number, now = Date.now()): number {
    let w = this.#windows.get(key);
    if (w === undefined) {
      if (this.#windows.size >= this.#max) this.#windows.delete(this.#windows.keys().next().value!);
      w = { start: now, current: 0, previous: 0 };
    } else this.#windows.delete(key);
    this.#windows.set(key, w);
    this.#roll(w, windowMs, now);
    w.current++;
    return this.count(key, windowMs, now);
  }

  reset(key: string): void {
    this.#windows.delete(key);
  }

  /** Forgets keys with nothing left in their window. */
  sweep(windowMs: number, now = Date.now()): void {
    for (const [k, w] of this.#windows) if (now - w.start >= 2 * windowMs || (w.current === 0 && now - w.start >= windowMs)) this.#windows.delete(k);
  }
}

/** What a login attempt may do, given the recent failures of its IP address and account. */
export type LoginVerdict = { refuse: true; limit: LimitName } | { refuse: false; delayMs: number; limit: LimitName | null };

/**
 * The server's limits: one object on the core (`core.limits`).
 */
export class Limits {
  readonly #config: Config;
  readonly #stats: ServerStats;
  readonly messages = new KeyedTokenBuckets();
  readonly presences = new KeyedTokenBuckets();
  readonly loginFailuresByIp = new SlidingWindowCounter();
  /** Failures of an account from anywhere: they slow its logins down, never refuse them. */
  readonly loginFailuresByAccount = new SlidingWindowCounter();
  /** Failures of an account from one address (bucket): they refuse that account from there. */
  readonly loginFailuresByAccountIp = new SlidingWindowCounter();
  /** Credential checks started per address (bucket), whatever their outcome. */
  readonly credentialChecksByIp = new SlidingWindowCounter();
  /** Unauthenticated connections (TCP, WebSocket, BOSH) per remote address. */
  readonly #unauthenticated = new Map<string, number>();
  #sweeper: NodeJS.Timeout | null = null;

  constructor(config: Config, stats: ServerStats) {
    this.#config = config;
    this.#stats = stats;
  }

  /** Starts the one sweep timer (idle buckets and windows are forgotten). */
  start(intervalMs = 10_000): void {
    if (this.#sweeper) return;
    this.#sweeper = setInterval(() => this.sweep(), intervalMs);
    this.#sweeper.unref();
  }

  stop(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }

  sweep(now = Date.now()): void {
    const l = this.#config.limits;
    this.messages.sweep(l.messagesPerSecond, l.messageBurst, now);
    this.presences.sweep(l.presencePerMinute / 60, l.presencePerMinute, now);
    this.loginFailuresByIp.sweep(l.loginWindow, now);
    this.loginFailuresByAccount.sweep(l.loginWindow, now);
    this.loginFailuresByAccountIp.sweep(l.loginWindow, now);
    this.credentialChecksByIp.sweep(l.loginWindow, now);
  }

  hit(name: LimitName): void {
    this.#stats.limitHit(name);
  }

  /** Is this address exempt from the per-IP limits (`limits.exemptAddresses`)? */
  isExempt(ip: string): boolean {
    const list = this.#config.limits.exemptAddresses;
    if (list.length === 0) return false;
    return list.includes(ip) || (ip.startsWith('::ffff:') && list.includes(ip.slice(7)));
  }

  // ---------------------------------------------------------------- rates

  /** One message from the account `bare` (all its resources on this node share the bucket). */
  allowMessage(bare: string): boolean {
    const l = this.#config.limits;
    if (this.messages.take(bare, l.messagesPerSecond, l.messageBurst)) return true;
    this.hit('message-rate');
    return false;
  }

  /** One broadcast presence from the account `bare`. */
  allowPresence(bare: string): boolean {
    const n = this.#config.limits.presencePerMinute;
    if (this.presences.take(bare, n / 60, n)) return true;
    this.hit('presence-rate');
    return false;
  }

  // ---------------------------------------------------------------- unauthenticated connections

  /**
   * May a new connection (or BOSH session) from `ip` start? Counts the hit when not.
   * The c2s session registers itself with `enterUnauthenticated` right after.
   */
  canConnect(ip: string): boolean {
    const max = this.#config.limits.unauthenticatedPerIp;
    if (max <= 0 || this.isExempt(ip)) return true;
    if ((this.#unauthenticated.get(ip) ?? 0) < max) return true;
    this.hit('unauthenticated-per-ip');
    return false;
  }

  enterUnauthenticated(ip: string): void {
    this.#unauthenticated.set(ip, (this.#unauthenticated.get(ip) ?? 0) + 1);
  }

  leaveUnauthenticated(ip: string): void {
    const n = (this.#unauthenticated.get(ip) ?? 0) - 1;
    if (n <= 0) this.#unauthenticated.delete(ip);
    else this.#unauthenticated.set(ip, n);
  }

  unauthenticated(ip: string): number {
    return this.#unauthenticated.get(ip) ?? 0;
  }

  // ---------------------------------------------------------------- login attempts

  /** The key of `ip` for the per-address login limits (IPv6 grouped by `limits.ipv6Prefix`). */
  #bucket(ip: string): string {
    return addressBucket(ip, this.#config.limits.ipv6Prefix);
  }

  /**
   * Before checking credentials: refuse (too many recent failures of this account from
   * this address, or of the address: nothing is checked) or go on, after `delayMs` (a
   * growing delay past the slow-down thresholds). `account` is null while the username
   * is not known yet.
   *
   * SECURITY: failures of an account from everywhere only slow its logins down, they never
   * refuse them: a stranger sending wrong passwords must not lock the owner out. Refusal is
   * per (account, address) and per address (IPv6 per `ipv6Prefix` network, so one host
   * cannot spread over its /64).
   */
  loginVerdict(ip: string, account: string | null, now = Date.now()): LoginVerdict {
    const l = this.#config.limits;
    const exempt = this.isExempt(ip);
    const bucket = this.#bucket(ip);
    const byIp = exempt ? 0 : this.loginFailuresByIp.count(bucket, l.loginWindow, now);
    const byAccount = account === null ? 0 : this.loginFailuresByAccount.count(account, l.loginWindow, now);
    const byAccountIp = account === null ? 0 : this.loginFailuresByAccountIp.count(accountIpKey(account, bucket), l.loginWindow, now);
    if (l.loginFailuresPerAccount > 0 && byAccountIp >= l.loginFailuresPerAccount) return { refuse: true, limit: 'login-attempts-per-account' };
    if (l.loginFailuresPerIp > 0 && byIp >= l.loginFailuresPerIp) return { refuse: true, limit: 'login-attempts-per-ip' };
    // 1 for the first attempt after the threshold's number of failures, 2 for the next...
    const overAccount = account === null ? 0 : Math.floor(byAccount) - l.loginSlowDownAfter + 1;
    const overIp = l.loginFailuresPerIp > 0 ? Math.floor(byIp) - Math.ceil(l.loginFailuresPerIp / 2) + 1 : 0;
    const over = Math.max(overAccount, overIp);
    if (over <= 0 || l.loginDelay <= 0) return { refuse: false, delayMs: 0, limit: null };
    // Doubles with every failure past the threshold, up to loginDelayMax.
    const delayMs = Math.min(l.loginDelayMax, l.loginDelay * 2 ** Math.min(over - 1, 20));
    return { refuse: false, delayMs, limit: overAccount >= overIp ? 'login-attempts-per-account' : 'login-attempts-per-ip' };
  }

  loginFailed(ip: string, account: string | null, now = Date.now()): void {
    const w = this.#config.limits.loginWindow;
    const bucket = this.#bucket(ip);
    if (!this.isExempt(ip)) this.loginFailuresByIp.add(bucket, w, now);
    if (account !== null) {
      this.loginFailuresByAccount.add(account, w, now);
      this.loginFailuresByAccountIp.add(accountIpKey(account, bucket), w, now);
    }
  }

  /** A successful login clears the account's failures, global and from this address (not the address's own). */
  loginSucceeded(ip: string, account: string): void {
    this.loginFailuresByAccount.reset(account);
    this.loginFailuresByAccountIp.reset(accountIpKey(account, this.#bucket(ip)));
  }

  /**
   * A credential check (a PBKDF2 derivation, a database or portal read) is about to start
   * for a connection from `ip`, whatever its outcome will be: true when it may (and it is
   * counted), false when the address already started `limits.saslAttemptsPerIp` of them
   * within `loginWindow` (the hit is counted; nothing is checked).
   */
  startCredentialCheck(ip: string, now = Date.now()): boolean {
    const l = this.#config.limits;
    if (l.saslAttemptsPerIp <= 0 || this.isExempt(ip)) return true;
    const bucket = this.#bucket(ip);
    // SECURITY: refused before the work starts, so a flood from one address (or one IPv6
    // network) cannot keep the thread pool and the database busy for everyone.
    if (this.credentialChecksByIp.count(bucket, l.loginWindow, now) >= l.saslAttemptsPerIp) {
      this.hit('sasl-attempts-per-ip');
      return false;
    }
    this.credentialChecksByIp.add(bucket, l.loginWindow, now);
    return true;
  }
}

/** The key of an (account, address bucket) pair: NUL cannot occur in either. */
function accountIpKey(account: string, bucket: string): string {
  return `${account}\0${bucket}`;
}

/**
 * The key of an address for per-address limits: an IPv4 address (also IPv4-mapped,
 * `::ffff:a.b.c.d`) as it is; an IPv6 address cut to its first `ipv6Prefix` bits and
 * written `group:…:group/prefix` (one host usually has a whole /64 to pick addresses
 * from); anything else (not an address) as it is.
 *
 * @example
 * addressBucket('2001:db8::1', 64); // '2001:db8:0:0:0:0:0:0/64'
 * addressBucket('::ffff:192.0.2.7', 64); // '192.0.2.7'
 */
export function addressBucket(ip: string, ipv6Prefix: number): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIPv4(ip)) return ip;
  const bare = ip.replace(/%.*$/, ''); // a zone index (fe80::1%eth0) is not part of the address
  if (!isIPv6(bare)) return ip;
  const groups = ipv6Groups(bare);
  const bits = Math.max(0, Math.min(128, Math.floor(ipv6Prefix)));
  const masked = groups.map((g, i) => {
    const keep = Math.max(0, Math.min(16, bits - 16 * i));
    return keep === 0 ? 0 : g & (0xffff << (16 - keep)) & 0xffff;
  });
  return `${masked.map((g) => g.toString(16)).join(':')}/${bits}`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail converted). */
function ipv6Groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, null];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  if (tail === null) return h;
  const t = parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}
