/**
 * Message stages: the extension point on the router's one-to-one message path, where
 * modules that act on every message a local account receives (the archive, carbons)
 * plug in without the router knowing about them.
 *
 * A message meets the stages once its fate is fixed — it passed the stanza filters and
 * goes to sessions of the recipient or into offline storage:
 *   1. `accept` on every stage (it may add to the stanza, e.g. a XEP-0359 stanza-id, and
 *      may return a promise: the archive writes the message before it is delivered);
 *   2. delivery (to sessions, or the offline store);
 *   3. `delivered` on every stage (carbon copies), or `rejected` when offline storage
 *      refused the message and it bounced.
 * Messages for one account are delivered in the order they were routed: while one of them
 * waits for its stages, the next ones wait behind it. With no stage waiting, delivery is
 * synchronous, as it is with no stages at all.
 */
import type { Logger } from 'pino';
import type { XmlElement } from '../xml/element.js';
import type { LocalSession } from './session.js';
import type { Envelope } from './envelope.js';

/**
 * One message on its way to a local account: its envelope (the stanza, sender, recipient
 * as addressed, and the archive ids the stages give it, by owner).
 */
export type StagedMessage = Envelope;

export interface MessageStage {
  /** The owning module (for logs). */
  readonly name: string;
  /**
   * A message from a local client, before it is routed (after the sender's filters).
   * For removing what a client may not claim (stanza-ids in the server's name).
   */
  fromClient?(stanza: XmlElement, session: LocalSession): void;
  /**
   * The message will be delivered to (or stored for) the local account `to`. A promise
   * holds its delivery, and the later ones to the same account, until it settles; a
   * failure is logged and the message goes on (it is never lost for the archive's sake).
   */
  accept?(msg: StagedMessage): void | Promise<void>;
  /** Delivered to `sessions`; an empty list means it went to offline storage. */
  delivered?(msg: StagedMessage, sessions: readonly LocalSession[]): void;
  /** Offline storage refused the message after `accept` (it bounced): undo what accept did. */
  rejected?(msg: StagedMessage): void | Promise<void>;
}

export class MessageStages {
  readonly #stages: MessageStage[] = [];
  /** The last held delivery per recipient (bare JID), to chain the next one on. */
  readonly #queue = new Map<string, Promise<void>>();
  readonly #log: Logger;
  readonly #track: <T>(p: Promise<T>) => Promise<T>;
  /** Hands the message to its sessions (core/delivery.ts). */
  readonly #hand: (msg: StagedMessage, sessions: readonly LocalSession[]) => void;

  constructor(log: Logger, track: <T>(p: Promise<T>) => Promise<T>, hand: (msg: StagedMessage, sessions: readonly LocalSession[]) => void) {
    this.#log = log;
    this.#track = track;
    this.#hand = hand;
  }

  get isEmpty(): boolean {
    return this.#stages.length === 0;
  }

  /** Adds a stage; returns its removal. */
  add(stage: MessageStage): () => void {
    this.#stages.push(stage);
    return () => {
      const i = this.#stages.indexOf(stage);
      if (i >= 0) this.#stages.splice(i, 1);
    };
  }

  fromClient(stanza: XmlElement, session: LocalSession): void {
    for (const s of this.#stages) {
      if (s.fromClient) s.fromClient(stanza, session);
    }
  }

  /** The pending held deliveries for a recipient (bare JID), if any. */
  pending(bare: string): Promise<void> | undefined {
    return this.#queue.get(bare);
  }

  /**
   * Delivers the message to `sessions` after the stages accepted it: at once when nothing
   * waits, else after the earlier held messages for the same account.
   */
  deliver(msg: StagedMessage, sessions: readonly LocalSession[]): void {
    const wait = this.accept(msg);
    const key = msg.to.bare;
    const prev = this.#queue.get(key);
    if (wait === undefined && prev === undefined) {
      this.#deliverNow(msg, sessions);
      return;
    }
    const done = (prev ?? Promise.resolve()).then(() => wait).then(() => this.#deliverNow(msg, sessions));
    const tail = done.catch((err: unknown) => this.#log.error({ err }, 'message delivery failed'));
    this.#queue.set(key, tail);
    void this.#track(tail).then(() => {
      if (this.#queue.get(key) === tail) this.#queue.delete(key);
    });
  }

  /**
   * Runs `accept` on every stage. Returns undefined when none of them has work in
   * flight, else a promise that settles (never rejects) when all are done.
   */
  accept(msg: StagedMessage): Promise<void> | undefined {
    let waits: Array<Promise<void>> | undefined;
    for (const s of this.#stages) {
      if (!s.accept) continue;
      let r: void | Promise<void>;
      try {
        r = s.accept(msg);
      } catch (err) {
        this.#log.error({ err, module: s.name }, 'message stage failed');
        continue;
      }
      if (r) (waits ??= []).push(r.catch((err: unknown) => this.#log.warn({ err, module: s.name }, 'message stage failed; the message goes on')));
    }
    if (!waits) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  /** After delivery (or offline storage, with no sessions). */
  delivered(msg: StagedMessage, sessions: readonly LocalSession[]): void {
    for (const s of this.#stages) {
      if (!s.delivered) continue;
      try {
        s.delivered(msg, sessions);
      } catch (err) {
        this.#log.error({ err, module: s.name }, 'message stage failed after delivery');
      }
    }
  }

  /** The message bounced after it was accepted. */
  async rejected(msg: StagedMessage): Promise<void> {
    for (const s of this.#stages) {
      if (!s.rejected) continue;
      try {
        await s.rejected(msg);
      } catch (err) {
        this.#log.error({ err, module: s.name }, 'message stage failed to undo');
      }
    }
  }

  #deliverNow(msg: StagedMessage, sessions: readonly LocalSession[]): void {
    this.#hand(msg, sessions);
    this.delivered(msg, sessions);
  }
}
