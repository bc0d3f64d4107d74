/**
 * XEP-0198 Stream Management, the driver of one session: from `<enable/>` on, it counts
 * what the client sent, queues what the session sends until the client acknowledges it,
 * asks for acknowledgements (and gives up on a connection that does not answer), replays
 * the queue on resumption, and says at the end which messages the client never
 * acknowledged. The session keeps the states and the connections (hibernation, taking
 * over a new connection on `<resume/>`); the primitives (queue, `h`, errors, registry) are
 * in stream-management.ts.
 * References: XEP-0198 §3 (enabling), §4 (acks: `<r/>`, `<a h/>`), §5 (resumption), §6
 * (error handling: handled-count-too-high), §8 (stream closure).
 */
import { randomBytes } from 'node:crypto';
import { x, type XmlElement } from '../xml/element.js';
import { serialize } from '../xml/serializer.js';
import { parseElement } from '../xml/parse.js';
import { NS } from '../xmpp/ns.js';
import { StreamError } from '../xmpp/errors.js';
import type { Logger } from '../support/logger.js';
import type { StanzaKind } from '../core/session.js';
import type { C2sCore } from './c2s-endpoint.js';
import type { C2sTransport } from './transport.js';
import { R_XML, UnackedQueue, ackXml, failed, grantedResumeMs, handledCountTooHigh, parseH } from './stream-management.js';

/** What the driver needs of its session. */
export interface SmHost {
  /** The session's connection now (another one after a resumption). */
  connection(): C2sTransport;
  /** Bound, with a connection (not hibernated, not closing). */
  isActive(): boolean;
  /** Sends an element of the server's own (`<enabled/>`, `<failed/>`) the way the session sends its answers. */
  send(el: XmlElement): void;
  /** Ends the session with a stream error (the close reason follows from its condition). */
  close(error: StreamError): void;
  /** Ends the session with a stream error, as a failure (close reason 'error'). */
  fail(error: StreamError): void;
  /** A resumable session's connection does not answer: let it go (closed with `error`) and wait for resumption. */
  suspend(error: StreamError): void;
}

/** Stream management of one session, from `<enable/>` on. */
export class SmDriver {
  /** The resumption id; null when the client did not ask for resumption. */
  readonly id: string | null;
  /** How long the session waits for resumption after its connection dropped. */
  readonly resumeMs: number;
  /** Stanzas received from the client since enable, modulo 2^32. */
  inbound = 0;
  /** What was sent since enable and is not acknowledged yet. */
  readonly queue = new UnackedQueue();
  /** An `<r/>` is out and not answered. */
  #awaitingAck = false;
  #ackTimer: NodeJS.Timeout | null = null;
  #resumeTimer: NodeJS.Timeout | null = null;
  readonly #core: C2sCore;
  readonly #host: SmHost;
  readonly #log: Logger;

  /**
   * Stream management as `<enable/>` asks (resumption, and its `max`). Nothing is sent:
   * the session answers `enabled()` and counts from then on.
   */
  constructor(core: C2sCore, host: SmHost, log: Logger, enable: XmlElement) {
    this.#core = core;
    this.#host = host;
    this.#log = log;
    const resume = enable.attrs.resume === 'true' || enable.attrs.resume === '1';
    this.id = resume ? randomBytes(16).toString('base64url') : null;
    this.resumeMs = grantedResumeMs(enable.attrs.max, core.config.streamManagement.resumeTimeout);
  }

  /** The answer to `<enable/>` (XEP-0198 §3). */
  enabled(): XmlElement {
    const enabled = x('enabled', { xmlns: NS.SM });
    if (this.id !== null) {
      enabled.attrs.id = this.id;
      enabled.attrs.resume = 'true';
      enabled.attrs.max = String(Math.floor(this.resumeMs / 1000));
    }
    return enabled;
  }

  get isResumable(): boolean {
    return this.id !== null;
  }

  /** XEP-0198 §4: every stanza received counts as handled, whatever its fate. */
  countInbound(): void {
    this.inbound = (this.inbound + 1) >>> 0;
  }

  /** A stream management element from the client on a bound stream with stream management on. */
  command(el: XmlElement): void {
    switch (el.name) {
      case 'enable':
      case 'resume':
        // Enabled once; resumption only instead of binding, on a new stream.
        this.#host.send(failed('unexpected-request'));
        return;
      case 'r':
        this.#host.connection().send(ackXml(this.inbound), 'nonza');
        return;
      case 'a': {
        const h = parseH(el.attrs.h);
        if (h === null) {
          this.#host.close(new StreamError('bad-format', 'h must be an integer from 0 to 4294967295'));
          return;
        }
        if (this.queue.ack(h) === 'too-high') {
          this.#host.fail(handledCountTooHigh(h, this.queue.sent));
          return;
        }
        this.#awaitingAck = false;
        if (this.#ackTimer) clearTimeout(this.#ackTimer);
        this.#ackTimer = null;
        // Stanzas sent after our request are still out: ask again (one request per round trip).
        if (this.queue.length > 0) this.#requestAck();
        return;
      }
      default:
        this.#host.close(new StreamError('unsupported-stanza-type', `<${el.name}/> is not a stream management element`));
    }
  }

  /**
   * A stanza for the client: counted and queued until acknowledged, and written unless the
   * session has no connection (hibernated). Bounded: a client that does not acknowledge
   * (or does not come back) loses the session; its unacknowledged messages go to offline
   * storage.
   */
  push(xml: string, kind: StanzaKind, el: XmlElement | undefined): void {
    const queue = this.queue;
    queue.push({ xml, kind, el });
    const cfg = this.#core.config.streamManagement;
    if (this.#host.isActive()) {
      this.#host.connection().send(xml, kind, el);
      // Ask soon for what matters (a message), otherwise every `ackAfter` stanzas.
      if (!this.#awaitingAck && (kind === 'message' || queue.length >= cfg.ackAfter)) this.#requestAck();
    }
    if (queue.length > cfg.maxQueue) this.#host.fail(new StreamError('resource-constraint', 'too many unacknowledged stanzas'));
  }

  /** Sends `<r/>`; a connection that does not answer within ackTimeout counts as dead. */
  #requestAck(): void {
    this.#awaitingAck = true;
    this.#host.connection().send(R_XML, 'nonza');
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = setTimeout(() => this.#ackTimedOut(), this.#core.config.streamManagement.ackTimeout);
    this.#ackTimer.unref();
  }

  /**
   * The client did not answer an ack request: the connection is likely half-open (a
   * mobile that lost its network). A resumable session lets go of it and waits for the
   * client to come back; otherwise the session ends.
   */
  #ackTimedOut(): void {
    this.#ackTimer = null;
    if (!this.#host.isActive()) return;
    const error = new StreamError('connection-timeout', 'no acknowledgement from the client');
    if (this.id === null) this.#host.close(error);
    else this.#host.suspend(error);
  }

  /** The connection is gone: the session waits `resumeMs`, then `expired` runs. */
  awaitResumption(expired: () => void): void {
    this.stop();
    this.#resumeTimer = setTimeout(() => {
      this.#resumeTimer = null;
      expired();
    }, this.resumeMs);
    this.#resumeTimer.unref();
  }

  /**
   * Can the client resume with this `h`? Claiming more than was sent, it cannot be trusted
   * to: the error that ends both streams, else null.
   */
  refusal(h: number): StreamError | null {
    return this.queue.canAck(h) ? null : handledCountTooHigh(h, this.queue.sent);
  }

  /**
   * XEP-0198 §5: the session resumed on `connection`, whose client handled up to `h`:
   * `<resumed/>` and everything still unacknowledged, in order.
   */
  resumedOn(connection: C2sTransport, h: number): void {
    this.stop();
    this.queue.ack(h);
    connection.send(serialize(x('resumed', { xmlns: NS.SM, previd: this.id!, h: String(this.inbound) })), 'nonza');
    for (const q of this.queue.items()) connection.send(q.xml, q.kind, q.el);
  }

  /** Asks for an acknowledgement when something is unacknowledged (after a resumption). */
  askIfUnacknowledged(): void {
    if (this.queue.length > 0) this.#requestAck();
  }

  /**
   * XEP-0198 §8, on an active stream the server closes: tells the client what was handled
   * and, when something is unacknowledged, asks what it handled. True when an answer is
   * awaited (`lateAck` reads it until the connection ends).
   */
  sayGoodbye(): boolean {
    const connection = this.#host.connection();
    const askAck = this.queue.length > 0;
    if (askAck) connection.send(R_XML, 'nonza');
    connection.send(ackXml(this.inbound), 'nonza');
    return askAck;
  }

  /**
   * After the server closed the stream, the client's answer to the last `<r/>` may still
   * come before its closing tag: what it acknowledges reached it and is not stored offline
   * again. Anything else is ignored.
   */
  lateAck(el: XmlElement): void {
    if (el.ns !== NS.SM || el.name !== 'a') return;
    const h = parseH(el.attrs.h);
    if (h !== null && this.queue.canAck(h)) this.queue.ack(h);
  }

  /** Of `messages` (taken back from a connection), those not in the queue: the queue hands its own back. */
  notQueued(messages: XmlElement[]): XmlElement[] {
    return messages.filter((m) => !this.queue.has(m));
  }

  /** Unacknowledged messages, oldest first, as elements. */
  unackedMessages(): XmlElement[] {
    const out: XmlElement[] = [];
    for (const q of this.queue.items()) {
      if (q.kind !== 'message') continue;
      if (q.el) out.push(q.el);
      else {
        try {
          out.push(parseElement(q.xml));
        } catch (err) {
          this.#log.error({ err }, 'unacknowledged message could not be parsed back');
        }
      }
    }
    return out;
  }

  /** No more acknowledgement requests or resumption wait (the session ends, hibernates or resumes). */
  stop(): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    if (this.#resumeTimer) clearTimeout(this.#resumeTimer);
    this.#ackTimer = this.#resumeTimer = null;
    this.#awaitingAck = false;
  }
}
