/**
 * XEP-0198 Stream Management, the primitives: the queue of stanzas the client has not
 * acknowledged (with its counter), `h` and `max` parsing, the elements and errors, and
 * the registry of resumable sessions (one per server, on the C2sEndpoint). The protocol
 * of one session (enable, r/a, acks, replay) is driven by sm-driver.ts; hibernation and
 * resumption, which move a session between connections, by the c2s session.
 * References: XEP-0198 §3 (enabling), §4 (acks; `h` is modulo 2^32), §5 (resumption),
 * §6 (error handling: handled-count-too-high), §8 (stream closure).
 */
import type { XmlElement } from '../xml/element.js';
import { x } from '../xml/element.js';
import { NS } from '../xmpp/ns.js';
import { StreamError } from '../xmpp/errors.js';
import type { StanzaKind } from '../core/session.js';

/** A stanza sent to the client, kept until acknowledged. */
export interface Outbound {
  xml: string;
  kind: StanzaKind;
  /** The element behind it (messages: re-routed on final loss). */
  el: XmlElement | undefined;
}

/** The result of an `<a h/>` or `<resume h/>`. */
export type AckResult = 'ok' | 'too-high';

/**
 * Stanzas sent and not acknowledged yet, with the counter of sent stanzas. `h` values
 * wrap at 2^32 (XEP-0198 §4).
 */
export class UnackedQueue {
  #items: Outbound[] = [];
  #head = 0;
  /** Stanzas sent since enable, modulo 2^32. */
  sent = 0;
  /** The last `h` the client acknowledged. */
  acked = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(o: Outbound): void {
    this.#items.push(o);
    this.sent = (this.sent + 1) >>> 0;
  }

  /**
   * The client handled every stanza up to `h`: they leave the queue. An `h` beyond what
   * was sent is 'too-high' (the queue is untouched); an `h` behind an earlier
   * acknowledgement (more than half the counter space away) is ignored.
   */
  ack(h: number): AckResult {
    const n = (h - this.acked) >>> 0;
    if (n === 0) return 'ok';
    if (n > 0x7fffffff) return 'ok'; // an old acknowledgement arriving late
    if (n > this.length) return 'too-high';
    this.#head += n;
    this.acked = h >>> 0;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return 'ok';
  }

  /** Would `ack(h)` be accepted? */
  canAck(h: number): boolean {
    const n = (h - this.acked) >>> 0;
    return n <= this.length || n > 0x7fffffff;
  }

  /** The unacknowledged stanzas, oldest first. */
  items(): Outbound[] {
    return this.#head === 0 ? this.#items.slice() : this.#items.slice(this.#head);
  }

  /** True when `el` is among the unacknowledged stanzas. */
  has(el: XmlElement): boolean {
    for (let i = this.#head; i < this.#items.length; i++) if (this.#items[i]!.el === el) return true;
    return false;
  }

  hasMessage(): boolean {
    for (let i = this.#head; i < this.#items.length; i++) if (this.#items[i]!.kind === 'message') return true;
    return false;
  }
}

/** Parses an `h` attribute: an unsigned 32-bit integer, else null. */
export function parseH(v: string | undefined): number | null {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return null;
  const n = Number(v);
  return n <= 0xffffffff ? n : null;
}

/**
 * The resumption time granted: the client's `max` (seconds) when it asks for less than
 * the server allows.
 */
export function grantedResumeMs(max: string | undefined, serverMs: number): number {
  if (max === undefined || !/^\d{1,9}$/.test(max)) return serverMs;
  const ms = Number(max) * 1000;
  return ms > 0 && ms < serverMs ? ms : serverMs;
}

export const R_XML = `<r xmlns='${NS.SM}'/>`;

export function ackXml(h: number): string {
  return `<a xmlns='${NS.SM}' h='${h}'/>`;
}

/** `<failed/>` with a stanza error condition, and the server's `h` when known (XEP-0198 §5). */
export function failed(condition: 'unexpected-request' | 'item-not-found' | 'bad-request' | 'feature-not-implemented', h?: number): XmlElement {
  return x('failed', { xmlns: NS.SM, h: h === undefined ? undefined : String(h) }, x(condition, { xmlns: NS.STANZAS }));
}

/** The stream error for an `h` that acknowledges more than was sent (XEP-0198 §6). */
export function handledCountTooHigh(h: number, sent: number): StreamError {
  return new StreamError(
    'undefined-condition',
    'you acknowledged more stanzas than were sent',
    undefined,
    x('handled-count-too-high', { xmlns: NS.SM, h: String(h), 'send-count': String(sent) }),
  );
}

/** What is remembered of a resumable session after it ended, so a late `<resume/>` learns its `h`. */
interface Stale {
  user: string;
  h: number;
}

/** Most ended sessions remembered for late resumption attempts. */
const MAX_STALE = 10_000;

/** Resumable sessions of one server, by resumption id (C2sEndpoint.resumable). */
export class SmRegistry<S> {
  readonly #live = new Map<string, S>();
  readonly #stale = new Map<string, Stale>();

  register(id: string, session: S): void {
    this.#live.set(id, session);
  }

  get(id: string): S | undefined {
    return this.#live.get(id);
  }

  /** The session is over: its id is remembered with its final inbound count. */
  retire(id: string, user: string, h: number): void {
    this.#live.delete(id);
    this.#stale.set(id, { user, h });
    if (this.#stale.size > MAX_STALE) this.#stale.delete(this.#stale.keys().next().value!);
  }

  /** The final `h` of an ended session of `user`, if remembered. */
  staleH(id: string, user: string): number | undefined {
    const s = this.#stale.get(id);
    return s && s.user === user ? s.h : undefined;
  }

  get size(): number {
    return this.#live.size;
  }
}
