/**
 * One BOSH session: the request window, held requests, the response buffer, and the
 * queue of data for the client. It is a C2sTransport: the c2s session behind it is the
 * same as for TCP and WebSocket.
 * References: XEP-0124 §7 (session creation), §8 (payloads, hold and wait), §9
 * (acknowledgements and reports), §10 (inactivity, pause), §11 (overactivity),
 * §13 (termination), §14 (request ids: window, in-order forwarding, broken connections);
 * XEP-0206 (XMPP over BOSH: restart, stream features, stream errors).
 *
 * The rules in one place:
 * - payloads are handed to the c2s session strictly in rid order; a request that comes
 *   before its predecessor waits (within the window), one outside the window ends the
 *   session with item-not-found;
 * - responses go out in rid order; a repeated rid gets the very same response again;
 * - at most `hold` requests are held; data for the client goes out at once on the oldest
 *   held request (presence may wait `presenceDelay` to travel with others);
 * - a session that ends hands every queued message, and every message of a response not
 *   known to have reached the client, back as undelivered (offline storage).
 */
import type { XmlElement } from '../../xml/element.js';
import { serialize } from '../../xml/serializer.js';
import { StreamError } from '../../xmpp/errors.js';
import type { ChannelBindingType } from '../../xmpp/sasl/scram.js';
import type { C2sStreamEvents, C2sTransport, OutboundKind, StreamHeader } from '../../c2s/transport.js';
import { NS_XBOSH, responseBody, withClientNamespace } from './body.js';
import type { BoshStats, BoshTermination } from './bosh-stats.js';

/** One HTTP request of the session, as the session sees it. */
export interface BoshRequest {
  readonly rid: number;
  readonly attrs: Readonly<Record<string, string>>;
  readonly payload: readonly XmlElement[];
  /** Sends the HTTP response. Called at most once. */
  reply(body: string): void;
  /** False once the client's connection is gone. */
  isOpen(): boolean;
  /** Closes the connection without a response (a request replaced by its retransmission). */
  discard(): void;
  /** The request was processed: its attributes and payload are no longer needed (a held request stays small). */
  release?(): void;
  /** Set by the session: runs if the connection closes before the reply. */
  onAbort: (() => void) | null;
}

/** Settings shared by all sessions of a manager (one object, not one per session). */
export interface BoshSettings {
  domain: string;
  isSecure: boolean;
  maxWaitMs: number;
  minWaitMs: number;
  maxHold: number;
  inactivityMs: number;
  maxPauseMs: number;
  pollingMs: number;
  presenceDelayMs: number;
  hibernateAfterMs: number;
  maxQueue: number;
  stats: BoshStats;
  now(): number;
}

interface Held {
  req: BoshRequest;
  since: number;
  timer: NodeJS.Timeout | null;
  dead: boolean;
}

interface Sent {
  body: string;
  at: number;
  /** Messages in this response: undelivered until the client is known to have it. */
  messages: XmlElement[] | null;
}

interface Queued {
  xml: string;
  kind: OutboundKind;
  el: XmlElement | undefined;
}

export const BOSH_VERSION = '1.11';
/** Most responses kept waiting for an acknowledgement. */
const MAX_UNACKED = 32;
/** Responses kept beyond the XEP's minimum of `requests`, for clients that run ahead. */
const RESEND_MARGIN = 2;

export class BoshSession implements C2sTransport {
  readonly kind = 'bosh' as const;
  readonly sid: string;
  readonly remoteAddress: string;
  readonly #s: BoshSettings;
  #events: C2sStreamEvents | null = null;
  /** Called once when the session is over, with why. */
  readonly #onEnd: (session: BoshSession, why: BoshTermination, body: string | null) => void;

  // Negotiated at creation
  readonly #hold: number;
  readonly #requests: number;
  readonly #clientWaitMs: number;
  readonly #usesAck: boolean;
  readonly #legacy: boolean;
  #waitMs: number;

  // Request window
  #nextRid: number;
  #early: Map<number, BoshRequest> | null = null;
  #held: Held[] = [];
  #highestResponded = 0;
  #clientAck = 0;
  #report: { rid: number; time: number } | null = null;

  // Responses
  #sent: Map<number, Sent> | null = null;
  #queue: Queued[] | null = null;
  #presenceTimer: NodeJS.Timeout | null = null;
  #flushScheduled = false;

  // Life
  #creation: Record<string, string | undefined> | null = null;
  #queueSince = 0;
  #lastEmptyPoll = 0;
  #lastResponseEmpty = false;
  #header: StreamHeader | null = null;
  #lastActivity: number;
  #lastPayload: number;
  #pauseUntil = 0;
  #hibernated = false;
  #adapted = false;
  #closed = false;

  constructor(
    sid: string,
    create: BoshRequest,
    remoteAddress: string,
    settings: BoshSettings,
    onEnd: (session: BoshSession, why: BoshTermination, body: string | null) => void,
  ) {
    this.sid = sid;
    this.remoteAddress = remoteAddress;
    this.#s = settings;
    this.#onEnd = onEnd;
    const a = create.attrs;
    const wantHold = Number(a.hold ?? 1);
    this.#hold = Number.isInteger(wantHold) && wantHold >= 0 ? Math.min(wantHold, settings.maxHold) : 1;
    this.#requests = this.#hold + 1;
    const wantWait = Number(a.wait ?? settings.maxWaitMs / 1000);
    this.#clientWaitMs = Number.isFinite(wantWait) && wantWait >= 0 ? Math.min(wantWait * 1000, settings.maxWaitMs) : settings.maxWaitMs;
    this.#waitMs = this.#clientWaitMs;
    this.#usesAck = a.ack === '1';
    this.#legacy = a.ver === undefined;
    this.#nextRid = create.rid + 1;
    this.#lastActivity = this.#lastPayload = settings.now();
    this.#creation = {
      sid,
      wait: String(Math.round(this.#clientWaitMs / 1000)),
      requests: String(this.#requests),
      hold: String(this.#hold),
      inactivity: String(Math.round(settings.inactivityMs / 1000)),
      polling: String(Math.round(settings.pollingMs / 1000)),
      maxpause: String(Math.round(settings.maxPauseMs / 1000)),
      ver: lowerVersion(a.ver, BOSH_VERSION),
      from: settings.domain,
      secure: settings.isSecure ? 'true' : undefined,
      ack: this.#usesAck ? String(create.rid) : undefined,
      'xmpp:version': '1.0',
      'xmlns:xmpp': NS_XBOSH,
      'xmpp:restartlogic': 'true',
    };
    this.#held.push({ req: create, since: settings.now(), timer: null, dead: false });
    this.#watch(this.#held[0]!);
  }

  /** Connects the c2s session and opens its stream from the creation request. */
  start(events: C2sStreamEvents, create: BoshRequest): void {
    this.#events = events;
    this.#payloadTouch();
    events.onStreamOpen(streamAttrs(create.attrs), 'jabber:client');
    this.#pump();
  }

  get isLegacy(): boolean {
    return this.#legacy;
  }
  get isSecure(): boolean {
    return this.#s.isSecure;
  }
  get canStartTls(): boolean {
    return false;
  }
  get isClosed(): boolean {
    return this.#closed;
  }
  get heldCount(): number {
    return this.#held.length;
  }
  /** Requests that arrived before their predecessors and wait for them (XEP-0124 §14.2). */
  get earlyCount(): number {
    return this.#early?.size ?? 0;
  }
  /** Payloads waiting for a request to carry them to the client. */
  get queuedCount(): number {
    return this.#queue?.length ?? 0;
  }
  get isPaused(): boolean {
    return this.#pauseUntil > this.#s.now();
  }
  get isHibernated(): boolean {
    return this.#hibernated;
  }
  get effectiveWaitMs(): number {
    return this.#waitMs;
  }
  get isAdapted(): boolean {
    return this.#adapted;
  }

  // ------------------------------------------------------------------ requests

  /** A request for this session (creation excepted). */
  handle(req: BoshRequest): void {
    if (this.#closed) {
      req.reply(this.#terminateBody('item-not-found'));
      return;
    }
    this.#s.stats.requests++;
    this.#lastActivity = this.#s.now();
    const rid = req.rid;
    if (rid < this.#nextRid) {
      this.#repeat(req);
      return;
    }
    // XEP-0124 §14.2: the window; one more is allowed for pause and terminate (§11).
    const extra = req.attrs.type === 'terminate' || req.attrs.pause !== undefined ? 1 : 0;
    const limit = this.#nextRid - 1 + this.#requests + extra;
    if (rid > limit) {
      // Just past the window: one request too many at once (§11); further: a bad rid (§14.2).
      this.#fail(req, rid === limit + 1 ? 'policy-violation' : 'item-not-found');
      return;
    }
    if (rid > this.#nextRid) {
      // Early: wait for the requests before it.
      this.#s.stats.outOfOrder++;
      const early = (this.#early ??= new Map<number, BoshRequest>());
      const before = early.get(rid);
      if (before) {
        this.#s.stats.retransmissions++;
        before.onAbort = null;
        before.discard();
      }
      early.set(rid, req);
      req.onAbort = () => {
        if (this.#early?.get(rid) === req) this.#early.delete(rid);
      };
      return;
    }
    if (this.#hold === 0 && req.payload.length === 0 && req.attrs.type === undefined && req.attrs.pause === undefined) {
      // XEP-0124 §12: a polling client may not poll faster than `polling` with empty requests.
      const now = this.#s.now();
      if (this.#lastResponseEmpty && now - this.#lastEmptyPoll < this.#s.pollingMs) {
        this.#fail(req, 'policy-violation');
        return;
      }
      this.#lastEmptyPoll = now;
    }
    this.#process(req);
    while (this.#early?.has(this.#nextRid)) {
      const next = this.#early.get(this.#nextRid)!;
      this.#early.delete(this.#nextRid);
      if (this.#early.size === 0) this.#early = null;
      this.#process(next);
      if (this.#closed) return;
    }
    // XEP-0124 §11: more new requests than allowed while none was answered.
    if (this.#held.length > this.#requests + extra) {
      this.#fail(req, 'policy-violation');
      return;
    }
    this.#pump();
  }

  /** A request whose rid was seen already: the buffered response, or the new connection for a held one. */
  #repeat(req: BoshRequest): void {
    const held = this.#held.find((h) => h.req.rid === req.rid);
    if (held) {
      // The client gave up on the connection holding this rid: the new one takes its place.
      this.#s.stats.retransmissions++;
      held.req.onAbort = null;
      held.req.discard();
      held.req = req;
      held.since = this.#s.now();
      held.dead = false;
      // The new connection waits the (possibly learned) wait from now.
      if (held.timer) clearTimeout(held.timer);
      held.timer = null;
      this.#watch(held);
      this.#pump();
      return;
    }
    const sent = this.#sent?.get(req.rid);
    if (sent) {
      this.#s.stats.retransmissions++;
      req.reply(sent.body);
      return;
    }
    // XEP-0124 §14.3: not in the buffer (or never seen): item-not-found, same as a rid too large.
    this.#fail(req, 'item-not-found');
  }

  /** Handles one request in rid order. */
  #process(req: BoshRequest): void {
    this.#nextRid = req.rid + 1;
    const a = req.attrs;
    this.#acknowledge(req);
    const entry: Held = { req, since: this.#s.now(), timer: null, dead: false };
    this.#held.push(entry);
    this.#watch(entry);
    if (this.#pauseUntil !== 0) this.#pauseUntil = 0; // any request ends a pause

    if (req.payload.length > 0) this.#payloadTouch();
    if (a['xmpp:restart'] === 'true') {
      this.#events?.onStreamOpen(streamAttrs(a), 'jabber:client');
    }
    for (const el of req.payload) {
      if (this.#closed) return;
      this.#events?.onStanza(el);
    }
    if (this.#closed) return;
    if (a.type === 'terminate') {
      this.#events?.onStreamClose();
      return;
    }
    if (a.pause !== undefined) this.#pause(Number(a.pause));
    req.release?.();
  }

  /** XEP-0124 §9.2: what the client says it has received. */
  #acknowledge(req: BoshRequest): void {
    let known: number;
    if (this.#usesAck && req.attrs.ack !== undefined) {
      const ack = Number(req.attrs.ack);
      if (!Number.isSafeInteger(ack)) return;
      known = ack;
      // The client missed a response we sent: tell it on the next response.
      if (ack < this.#highestResponded) {
        const missing = this.#sent?.get(ack + 1);
        if (missing) {
          this.#report = { rid: ack + 1, time: this.#s.now() - missing.at };
          this.#s.stats.reports++;
        }
      }
    } else if (this.#usesAck) {
      // No ack attribute: every earlier response arrived.
      known = req.rid - 1;
    } else {
      // Without acks a client has at most `requests` requests out, so older responses
      // arrived; a margin covers clients that run a little ahead of a lost response.
      known = req.rid - this.#requests - RESEND_MARGIN;
    }
    if (known > this.#clientAck) this.#clientAck = known;
    this.#trim();
  }

  /**
   * The response buffer: the last `requests` responses stay for retransmission (§14.3);
   * with acknowledgements, also every response not acknowledged yet (bounded). Messages
   * of responses the client is known to have are no longer undelivered.
   */
  #trim(): void {
    const sent = this.#sent;
    if (!sent) return;
    const keepFrom = this.#highestResponded - this.#requests - RESEND_MARGIN;
    for (const [rid, s] of sent) {
      if (rid <= this.#clientAck) s.messages = null;
      const needed = rid > keepFrom || (this.#usesAck && rid > this.#clientAck && sent.size <= MAX_UNACKED);
      if (!needed) sent.delete(rid);
    }
    if (sent.size === 0) this.#sent = null;
  }

  /** XEP-0124 §10: answer everything at once and allow a longer silence. */
  #pause(seconds: number): void {
    const ms = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, this.#s.maxPauseMs) : this.#s.maxPauseMs;
    this.#pauseUntil = this.#s.now() + ms;
    this.#s.stats.pauses++;
    // The pause response carries no payloads: everything held gets an empty body.
    while (this.#held.length > 0) this.#respondOldest(false);
  }

  // ------------------------------------------------------------------ responses

  /** Answers what must be answered now, and arms timers for the rest. */
  #pump(): void {
    if (this.#closed) return;
    while (this.#held.length > this.#hold) this.#respondOldest(true);
    if (this.#held.length > 0 && this.#queue !== null) {
      if (this.#report || !this.#onlyDelayable()) this.#respondOldest(true);
      else this.#armPresenceDelay();
    } else if (this.#held.length > 0 && this.#report) {
      this.#respondOldest(true);
    }
    for (const h of this.#held) {
      if (h.timer === null) {
        h.timer = setTimeout(() => this.#waitExpired(h), this.#waitMs);
        h.timer.unref();
      }
    }
  }

  #waitExpired(h: Held): void {
    h.timer = null;
    if (this.#closed || !this.#held.includes(h)) return;
    // Responses go in rid order: this one and any older.
    while (this.#held.length > 0) {
      const oldest = this.#held[0]!;
      this.#respondOldest(true);
      if (oldest === h) break;
    }
  }

  #armPresenceDelay(): void {
    if (this.#presenceTimer) return;
    // Presence waits at most presenceDelay from when the first of it was queued.
    const left = Math.max(0, this.#queueSince + this.#s.presenceDelayMs - this.#s.now());
    this.#presenceTimer = setTimeout(() => {
      this.#presenceTimer = null;
      if (this.#closed || this.#held.length === 0 || this.#queue === null) return;
      this.#s.stats.groupedPresences += this.#queue.length;
      this.#respondOldest(true);
      this.#pump();
    }, left);
    this.#presenceTimer.unref();
  }

  /** True when all queued data may wait a little (presence only). */
  #onlyDelayable(): boolean {
    if (this.#s.presenceDelayMs <= 0 || this.#queue === null) return false;
    for (const q of this.#queue) if (q.kind !== 'presence') return false;
    return true;
  }

  /** Answers the oldest held request, with the queued data if `withData`. */
  #respondOldest(withData: boolean): void {
    const h = this.#held.shift();
    if (!h) return;
    if (h.timer) clearTimeout(h.timer);
    h.req.onAbort = null;
    let payload = '';
    let messages: XmlElement[] | null = null;
    let streamPrefix = false;
    if (withData && this.#queue !== null) {
      for (const q of this.#queue) {
        payload += q.xml;
        if (q.kind === 'message' && q.el) (messages ??= []).push(q.el);
        if (q.kind === 'nonza' && q.xml.startsWith('<stream:')) streamPrefix = true;
      }
      this.#queue = null;
      if (this.#presenceTimer) {
        clearTimeout(this.#presenceTimer);
        this.#presenceTimer = null;
      }
    }
    const attrs: Record<string, string | undefined> = this.#creation ?? {};
    this.#creation = null;
    if (this.#header && attrs.authid === undefined && attrs.sid !== undefined) attrs.authid = this.#header.id;
    if (this.#usesAck && h.req.rid !== this.#nextRid - 1) attrs.ack = String(this.#nextRid - 1);
    if (this.#report && withData) {
      attrs.report = String(this.#report.rid);
      attrs.time = String(this.#report.time);
      this.#report = null;
    }
    if (attrs.sid !== undefined) streamPrefix = true;
    const body = responseBody(attrs, payload, streamPrefix);
    this.#lastResponseEmpty = payload === '';
    this.#remember(h.req.rid, body, messages);
    this.#lastActivity = this.#s.now();
    h.req.reply(body);
  }

  #remember(rid: number, body: string, messages: XmlElement[] | null): void {
    if (rid > this.#highestResponded) this.#highestResponded = rid;
    (this.#sent ??= new Map()).set(rid, { body, at: this.#s.now(), messages });
    this.#trim();
  }

  /** Follows a held request's connection: a cut before its response teaches the wait. */
  #watch(h: Held): void {
    const req = h.req;
    req.onAbort = () => {
      if (h.req !== req || this.#closed) return;
      h.dead = true;
      this.#s.stats.cutRequests++;
      const lived = this.#s.now() - h.since;
      // Adaptive wait: something between us and the client cuts requests after `lived`
      // ms; answer comfortably before that from now on.
      if (lived < this.#waitMs) {
        const learned = Math.max(this.#s.minWaitMs, Math.floor(lived * 0.8));
        if (learned < this.#waitMs) {
          this.#waitMs = learned;
          this.#adapted = true;
        }
      }
    };
  }

  // ------------------------------------------------------------------ C2sTransport

  channelBinding(_type: ChannelBindingType): Buffer | null {
    return null; // TLS, if any, ends before us (or in front of us)
  }

  startTls(): void {
    throw new Error('BOSH has no STARTTLS');
  }

  open(header: StreamHeader, features: XmlElement): void {
    this.#header = header;
    if (this.#creation) this.#creation.authid = header.id;
    this.#enqueue(serialize(features), 'nonza', undefined);
  }

  send(xml: string, kind: OutboundKind, el?: XmlElement): void {
    if (this.#closed) return;
    this.#enqueue(kind === 'nonza' ? xml : withClientNamespace(xml), kind, el);
  }

  #enqueue(xml: string, kind: OutboundKind, el: XmlElement | undefined): void {
    if (this.#queue === null) {
      this.#queue = [];
      this.#queueSince = this.#s.now();
    }
    const q = this.#queue;
    if (kind === 'presence' && el && (el.attrs.type === undefined || el.attrs.type === 'unavailable')) {
      // A newer presence from the same sender replaces one still waiting.
      const from = el.attrs.from;
      const i = q.findIndex((e) => e.kind === 'presence' && e.el?.attrs.from === from && (e.el.attrs.type === undefined || e.el.attrs.type === 'unavailable'));
      if (i >= 0) {
        q[i] = { xml, kind, el };
        return;
      }
    }
    q.push({ xml, kind, el });
    if (kind !== 'presence') this.#payloadTouch();
    if (q.length > this.#s.maxQueue) {
      // SECURITY: a client that stops asking cannot make the server queue without bound.
      this.#events?.onStreamError(new StreamError('policy-violation', 'too much data waiting for the client'));
      return;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => {
        this.#flushScheduled = false;
        this.#pump();
      });
    }
  }

  restart(): void {
    // The client restarts with a body carrying xmpp:restart='true'.
  }

  /** The c2s session ends the stream. */
  close(error?: StreamError): void {
    if (this.#closed) return;
    let why: BoshTermination = 'client';
    let condition: string | undefined;
    let extra = '';
    if (error) {
      if (error.condition === 'system-shutdown') {
        why = 'shutdown';
        condition = 'system-shutdown';
      } else {
        why = error.condition === 'conflict' ? 'conflict' : error.condition === 'policy-violation' ? 'policy-violation' : 'error';
        condition = 'remote-stream-error';
        extra = serialize(error.toElement());
      }
    }
    this.#finish(why, condition, extra);
  }

  takeUndelivered(): XmlElement[] {
    const out: XmlElement[] = [];
    if (this.#sent) {
      for (const [rid, s] of this.#sent) if (rid > this.#clientAck && s.messages) out.push(...s.messages);
    }
    if (this.#queue) for (const q of this.#queue) if (q.kind === 'message' && q.el) out.push(q.el);
    this.#sent = null;
    this.#queue = null;
    return out;
  }

  // ------------------------------------------------------------------ ending

  /** Ends the session: every held request gets a terminate body; the c2s session is told. */
  #finish(why: BoshTermination, condition: string | undefined, extra: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#presenceTimer) clearTimeout(this.#presenceTimer);
    this.#presenceTimer = null;
    const body = this.#terminateBody(condition, extra);
    for (const h of this.#held) {
      if (h.timer) clearTimeout(h.timer);
      h.req.onAbort = null;
      h.req.reply(body);
    }
    this.#held = [];
    if (this.#early) for (const r of this.#early.values()) r.reply(body);
    this.#early = null;
    this.#onEnd(this, why, body);
    this.#events?.onDisconnect();
  }

  /** Terminates because of a bad request (window, overactivity, ...). */
  #fail(req: BoshRequest, condition: 'item-not-found' | 'policy-violation' | 'bad-request'): void {
    if (!this.#held.some((h) => h.req === req)) req.reply(this.#terminateBody(condition));
    this.#finish(condition, condition, '');
  }

  /** Ends a session over a request that could not be read (malformed rid...). */
  failBadRequest(req: BoshRequest): void {
    this.#fail(req, 'bad-request');
  }

  #terminateBody(condition?: string, extra = ''): string {
    return responseBody({ type: 'terminate', condition }, extra, extra !== '');
  }

  /** Called about once a second by the manager: inactivity and hibernation. */
  tick(now: number): void {
    if (this.#closed) return;
    // SECURITY: early requests do not keep a session alive: their predecessor may never
    // come (found by fuzzing: one request with rid+2 pinned a session and its connection).
    if (this.#held.length === 0) {
      const limit = this.#pauseUntil > 0 ? this.#pauseUntil : this.#lastActivity + this.#s.inactivityMs;
      if (now > limit) {
        this.#finish('inactivity', undefined, '');
        return;
      }
    }
    if (!this.#hibernated && now - this.#lastPayload > this.#s.hibernateAfterMs) this.#hibernate();
  }

  /** Drops what an idle session does not need: responses known delivered, empty containers. */
  #hibernate(): void {
    this.#hibernated = true;
    this.#s.stats.hibernations++;
    if (this.#sent) {
      for (const [rid, s] of this.#sent) if (rid <= this.#clientAck || !s.messages) this.#sent.delete(rid);
      if (this.#sent.size === 0) this.#sent = null;
    }
    if (this.#early?.size === 0) this.#early = null;
  }

  #payloadTouch(): void {
    this.#lastPayload = this.#s.now();
    this.#hibernated = false;
  }
}

/** The stream-open attributes a BOSH creation or restart request stands for (XEP-0206 §5). */
function streamAttrs(a: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  if (a.to !== undefined) out.to = a.to;
  out.version = a['xmpp:version'] ?? '1.0';
  if (a['xml:lang'] !== undefined) out['xml:lang'] = a['xml:lang'];
  return out;
}

/** XEP-0124 §7.2: the server's version or the client's, whichever is lower. */
function lowerVersion(client: string | undefined, server: string): string {
  const m = client === undefined ? null : /^(\d+)\.(\d+)$/.exec(client);
  if (!m) return server;
  const [sMaj, sMin] = server.split('.').map(Number) as [number, number];
  const cMaj = Number(m[1]);
  const cMin = Number(m[2]);
  return cMaj < sMaj || (cMaj === sMaj && cMin < sMin) ? client! : server;
}
