/**
 * The BOSH connection manager: turns HTTP requests into BoshSession calls, creates
 * sessions (each with a c2s session behind it), ends them on inactivity, and keeps the
 * statistics.
 * References: XEP-0124 §5 (HTTP), §7 (creation), §17 (errors and HTTP status codes for
 * legacy clients); XEP-0206.
 */
import { randomBytes } from 'node:crypto';
import type { C2sCore, C2sEndpoint } from '../../c2s/c2s-endpoint.js';
import { C2sSession } from '../../c2s/session.js';
import type { XmlParserLimits } from '../../xml/parser.js';
import type { HttpExchange } from '../http/http1.js';
import { x, XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { BodyError, parseBody, responseBody, type ParsedBody } from './body.js';
import { BoshSession, type BoshRequest, type BoshSettings } from './bosh-session.js';
import { isStanzaSizeError } from '../../xml/parser.js';
import { BoshStats, type BoshStatsSnapshot, type BoshTermination } from './bosh-stats.js';

/** How long the end of a session is remembered, so the client's next request learns why. */
const TOMBSTONE_MS = 120_000;
const MAX_TOMBSTONES = 100_000;
const MAX_RID = Number.MAX_SAFE_INTEGER;

/** HTTP status for a terminate condition, for legacy clients (XEP-0124 §17.1). */
const LEGACY_STATUS: Record<string, number> = { 'bad-request': 400, 'policy-violation': 403, 'item-not-found': 404 };

export class BoshManager {
  readonly stats = new BoshStats();
  readonly #c2s: C2sEndpoint;
  readonly #core: C2sCore;
  readonly #sessions = new Map<string, BoshSession>();
  readonly #tombstones = new Map<string, { body: string; until: number }>();
  /** BOSH sessions per remote address (limits.boshSessionsPerIp). */
  readonly #perIp = new Map<string, number>();
  readonly #settings: BoshSettings;
  #limits: XmlParserLimits;
  readonly #sweeper: NodeJS.Timeout;
  #accepting = true;

  constructor(c2s: C2sEndpoint) {
    const core = c2s.core;
    this.#c2s = c2s;
    this.#core = core;
    const b = core.config.bosh;
    const l = core.config.limits;
    this.#settings = {
      domain: core.domain,
      isSecure: core.config.listen.http.secure,
      maxWaitMs: b.maxWait,
      minWaitMs: b.minWait,
      maxHold: b.maxHold,
      inactivityMs: b.inactivity,
      maxPauseMs: b.maxPause,
      pollingMs: b.polling,
      presenceDelayMs: b.presenceDelay,
      hibernateAfterMs: b.hibernateAfter,
      maxQueue: b.maxQueue,
      stats: this.stats,
      now: Date.now,
    };
    this.#limits = { maxStanzaBytes: l.maxStanzaSize, maxDepth: l.maxStanzaDepth, maxAttributes: l.maxAttributes, maxNameLength: 256 };
    this.#sweeper = setInterval(() => this.#sweep(), 1000);
    this.#sweeper.unref();
  }

  /** The stanza limits, following a live reload of `limits` (rebuilt only when they changed). */
  #parserLimits(): XmlParserLimits {
    const l = this.#core.config.limits;
    const p = this.#limits;
    if (p.maxStanzaBytes !== l.maxStanzaSize || p.maxDepth !== l.maxStanzaDepth || p.maxAttributes !== l.maxAttributes) {
      this.#limits = { maxStanzaBytes: l.maxStanzaSize, maxDepth: l.maxStanzaDepth, maxAttributes: l.maxAttributes, maxNameLength: 256 };
    }
    return this.#limits;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Stops creating sessions (shutdown); existing ones end through their c2s sessions. */
  stop(): void {
    this.#accepting = false;
    clearInterval(this.#sweeper);
  }

  snapshot(): BoshStatsSnapshot {
    let held = 0;
    let paused = 0;
    let hibernated = 0;
    let adapted = 0;
    let waitSum = 0;
    for (const s of this.#sessions.values()) {
      held += s.heldCount;
      if (s.isPaused) paused++;
      if (s.isHibernated) hibernated++;
      if (s.isAdapted) adapted++;
      waitSum += s.effectiveWaitMs;
    }
    return {
      // eslint-disable-next-line @typescript-eslint/no-misused-spread -- a plain snapshot of the counters (own fields) is wanted
      ...this.stats,
      terminations: { ...this.stats.terminations },
      sessions: this.#sessions.size,
      heldRequests: held,
      pausedSessions: paused,
      hibernatedSessions: hibernated,
      adaptedSessions: adapted,
      meanEffectiveWaitMs: this.#sessions.size ? Math.round(waitSum / this.#sessions.size) : 0,
    };
  }

  /**
   * Read-only view of one session's request window, or null when `sid` is no session:
   * requests held (waiting for data or their wait), requests that came early (waiting for
   * a lower rid), and payloads queued for the client. For operators and tests, which
   * await this state instead of sleeping.
   */
  requestsOf(sid: string): { held: number; early: number; queued: number } | null {
    const s = this.#sessions.get(sid);
    return s ? { held: s.heldCount, early: s.earlyCount, queued: s.queuedCount } : null;
  }

  /** Handles one POST to the BOSH endpoint whose body has been read. */
  handle(data: Buffer, ex: HttpExchange, cors: Record<string, string>): void {
    let parsed: ParsedBody;
    const headers = responseHeaders(cors);
    try {
      parsed = parseBody(data, this.#parserLimits());
    } catch (e) {
      if (!(e instanceof BodyError)) throw e;
      if (e.condition === 'policy-violation' && isStanzaSizeError(e.message.replace(/^policy-violation: /, ''))) this.#core.limits.hit('stanza-size');
      this.stats.terminations['bad-request']++;
      // The wrapper could not be read: no session can be trusted with it.
      ex.respond(400, headers, responseBody({ type: 'terminate', condition: e.condition }, '', false));
      return;
    }
    const a = parsed.attrs;
    const ridText = a.rid;
    const rid = ridText !== undefined && /^\d{1,16}$/.test(ridText) ? Number(ridText) : NaN;
    const sid = a.sid;
    if (sid === undefined) {
      this.#create(ex, parsed, rid, cors);
      return;
    }
    const session = this.#sessions.get(sid);
    if (!session) {
      const tomb = this.#tombstones.get(sid);
      ex.respond(200, headers, tomb?.body ?? responseBody({ type: 'terminate', condition: 'item-not-found' }, '', false));
      return;
    }
    const request = new HttpBoshRequest(rid, parsed.attrs, parsed.payload, ex, headers, session.isLegacy);
    if (!Number.isSafeInteger(rid) || rid > MAX_RID) {
      session.failBadRequest(request);
      return;
    }
    session.handle(request);
  }

  #create(ex: HttpExchange, parsed: ParsedBody, rid: number, cors: Record<string, string>): void {
    const a = parsed.attrs;
    const refuse = (condition: string) => {
      ex.respond(a.ver === undefined ? (LEGACY_STATUS[condition] ?? 200) : 200, responseHeaders(cors), responseBody({ type: 'terminate', condition }, '', false));
    };
    if (!this.#accepting) return refuse('system-shutdown');
    if (!Number.isSafeInteger(rid)) return refuse('bad-request');
    if (a.to !== undefined && a.to.toLowerCase() !== this.#core.domain) return refuse('host-unknown');
    // SECURITY: per-address limits, before anything is allocated for the session.
    const ip = ex.remoteAddress;
    const limits = this.#core.limits;
    const maxPerIp = this.#core.config.limits.boshSessionsPerIp;
    if (maxPerIp > 0 && !limits.isExempt(ip) && (this.#perIp.get(ip) ?? 0) >= maxPerIp) {
      limits.hit('bosh-sessions-per-ip');
      return refuse('policy-violation');
    }
    if (!limits.canConnect(ip)) return refuse('policy-violation');
    const sid = randomBytes(16).toString('base64url'); // 128 bits (DESIGN.md)
    const create = new HttpBoshRequest(rid, parsed.attrs, parsed.payload, ex, responseHeaders(cors), a.ver === undefined);
    const session = new BoshSession(sid, create, ip, this.#settings, this.#onEnded);
    this.#sessions.set(sid, session);
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
    this.stats.sessionsCreated++;
    this.stats.requests++;
    const c2s = new C2sSession(this.#c2s, session);
    session.start(c2s, create);
  }

  /**
   * Prebind (issue 8): creates a session for `localpart` on the server's side, as a
   * client would (creation, restart, resource binding, each a request answered in
   * memory), with authentication vouched for by the caller. The page then attaches to it
   * with `{jid, sid, rid}`, `rid` being the one its next request must carry.
   */
  async prebind(localpart: string, opts: { resource?: string; wait?: number; hold?: number } = {}): Promise<{ jid: string; sid: string; rid: number }> {
    if (!this.#accepting) throw new Error('BOSH is shutting down');
    // Counted as logins of the mechanism "PREBIND" (the portal vouched for the user).
    try {
      const r = await this.#prebind(localpart, opts);
      this.#core.stats.login('PREBIND', true);
      return r;
    } catch (e) {
      this.#core.stats.login('PREBIND', false);
      throw e;
    }
  }

  async #prebind(localpart: string, opts: { resource?: string; wait?: number; hold?: number }): Promise<{ jid: string; sid: string; rid: number }> {
    const domain = this.#core.domain;
    let rid = 1 + Math.floor(Math.random() * 2 ** 31);
    const createAttrs = { to: domain, ver: '1.6', wait: String(opts.wait ?? Math.round(this.#settings.maxWaitMs / 1000)), hold: String(opts.hold ?? 1), 'xmpp:version': '1.0' };
    const create = new LocalBoshRequest(rid, createAttrs, []);
    const sid = randomBytes(16).toString('base64url');
    const session = new BoshSession(sid, create, 'prebind', this.#settings, this.#onEnded);
    this.#sessions.set(sid, session);
    this.stats.sessionsCreated++;
    const c2s = new C2sSession(this.#c2s, session);
    session.start(c2s, create);
    const fail = (why: string): never => {
      c2s.close();
      throw new Error(`prebind for ${localpart} failed: ${why}`);
    };
    const features = await create.response;
    if (!features.includes('<stream:features') && !features.includes(':features')) fail(`no stream features (${features.slice(0, 200)})`);
    c2s.authenticateAs(localpart);
    const restart = new LocalBoshRequest(++rid, { sid, 'xmpp:restart': 'true', to: domain }, []);
    session.handle(restart);
    if (!(await restart.response).includes('urn:ietf:params:xml:ns:xmpp-bind')) fail('no resource binding offered');
    const bindEl = x('bind', { xmlns: NS.BIND });
    if (opts.resource) bindEl.append(x('resource', null, opts.resource));
    const bindIq = new XmlElement('iq', { type: 'set', id: 'prebind' }, [bindEl], NS.CLIENT);
    const bind = new LocalBoshRequest(++rid, { sid }, [bindIq]);
    session.handle(bind);
    const bound = await bind.response;
    if (!c2s.isBound) fail(`binding refused (${bound.slice(0, 300)})`);
    return { jid: c2s.jid.full, sid, rid: rid + 1 };
  }

  /** One function for every session (a closure made per session would keep its creation request). */
  readonly #onEnded = (session: BoshSession, why: BoshTermination, body: string | null): void => this.#ended(session, why, body);

  #ended(session: BoshSession, why: BoshTermination, body: string | null): void {
    if (this.#sessions.delete(session.sid)) {
      const ip = session.remoteAddress;
      const n = (this.#perIp.get(ip) ?? 0) - 1;
      if (n <= 0) this.#perIp.delete(ip);
      else this.#perIp.set(ip, n);
    }
    this.stats.terminations[why]++;
    if (body && this.#tombstones.size < MAX_TOMBSTONES) this.#tombstones.set(session.sid, { body, until: Date.now() + TOMBSTONE_MS });
  }

  #sweep(): void {
    const now = Date.now();
    for (const s of this.#sessions.values()) s.tick(now);
    for (const [sid, t] of this.#tombstones) {
      if (t.until > now) break; // inserted in time order
      this.#tombstones.delete(sid);
    }
  }
}

/**
 * A BoshRequest on an HTTP exchange. A class rather than closures: an idle session keeps
 * one of these held, so its size counts.
 */
class HttpBoshRequest implements BoshRequest {
  constructor(
    readonly rid: number,
    public attrs: Readonly<Record<string, string>>,
    public payload: readonly XmlElement[],
    readonly ex: HttpExchange,
    readonly headers: Record<string, string>,
    readonly legacy: boolean,
  ) {}

  get onAbort(): (() => void) | null {
    return this.ex.onAbort;
  }
  set onAbort(fn: (() => void) | null) {
    this.ex.onAbort = fn;
  }

  reply(body: string): void {
    let status = 200;
    if (this.legacy) {
      const m = /^<body [^>]*type='terminate'[^>]*condition='([a-z-]+)'/.exec(body);
      if (m && LEGACY_STATUS[m[1]!]) status = LEGACY_STATUS[m[1]!]!;
    }
    this.ex.respond(status, this.headers, body);
  }

  isOpen(): boolean {
    return this.ex.isOpen();
  }

  discard(): void {
    this.ex.destroy();
  }

  release(): void {
    this.attrs = NO_ATTRS;
    this.payload = NO_PAYLOAD;
  }
}

/** A request made inside the server (prebind): its response is a promise. */
class LocalBoshRequest implements BoshRequest {
  onAbort: (() => void) | null = null;
  readonly response: Promise<string>;
  #resolve!: (body: string) => void;
  #open = true;

  constructor(
    readonly rid: number,
    readonly attrs: Readonly<Record<string, string>>,
    readonly payload: readonly XmlElement[],
  ) {
    this.response = new Promise((r) => (this.#resolve = r));
  }

  reply(body: string): void {
    this.#open = false;
    this.#resolve(body);
  }

  isOpen(): boolean {
    return this.#open;
  }

  discard(): void {
    this.#open = false;
    this.#resolve('');
  }
}

const NO_ATTRS: Readonly<Record<string, string>> = Object.freeze({});
const NO_PAYLOAD: readonly XmlElement[] = Object.freeze([]);

/**
 * The one Content-Type of every BOSH response. SECURITY: the client's `content`
 * attribute (XEP-0124 §7.1) is not followed: a session asking for text/html or
 * image/svg+xml would have its queued stanzas rendered as a page on our origin (XSS).
 * XEP-0124 lets a connection manager answer with text/xml; charset=utf-8 instead.
 * nosniff and the no-page CSP come from the HTTP listener, on every response.
 */
export const BOSH_CONTENT_TYPE = 'text/xml; charset=utf-8';

/** Response headers, shared between requests with the same CORS answer. */
const headerCache = new Map<string, Record<string, string>>();
function responseHeaders(base: Record<string, string>): Record<string, string> {
  const key = base['Access-Control-Allow-Origin'] ?? '';
  let h = headerCache.get(key);
  if (!h) {
    h = Object.freeze({ ...base, 'Content-Type': BOSH_CONTENT_TYPE, 'Cache-Control': 'no-store' }) as Record<string, string>;
    if (headerCache.size < 1000) headerCache.set(key, h);
  }
  return h;
}
