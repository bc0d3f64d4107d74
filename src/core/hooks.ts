/**
 * Every hook in one typed map (after MongooseIM's mongoose_hooks): the core's hooks here,
 * a module's own hooks added by declaration merging in its `api.ts`. Two kinds:
 * - notify hooks: every handler runs; one failing handler is logged and does not stop
 *   the others;
 * - handler hooks: handlers run in priority order (highest first) until one returns
 *   true ("handled"); the caller does the default when none does.
 */
import type { Logger } from 'pino';
import type { XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';
import type { DropRule } from '../support/stats.js';

/** Why a session ended (a stats and log label). */
export type CloseReason = 'client' | 'error' | 'conflict' | 'shutdown' | 'timeout' | 'kicked' | 'transport';

export interface NotifyHooks {
  /** A resource was bound. */
  'session-bound': (session: LocalSession) => void | Promise<void>;
  /** The session sent its first available presence (initial) or a later one. */
  'session-available': (session: LocalSession, initial: boolean) => void | Promise<void>;
  /**
   * The session is gone. `undelivered` holds messages sent to it that are not known to
   * have reached the client: the core routes them again (core/delivery.ts), after the
   * handlers ran.
   */
  'session-closed': (session: LocalSession, info: { reason: CloseReason; undelivered: XmlElement[] }) => void | Promise<void>;
  /** An account was deleted: modules drop what they keep for it. */
  'user-deleted': (user: Jid) => void | Promise<void>;
}

/** What the offline store did with a message (the `message-offline` hook's answer). */
export type OfflineVerdict = 'stored' | { dropped: DropRule };

export interface MessageToOffline {
  /** The recipient (bare). */
  to: Jid;
  stanza: XmlElement;
}

export interface HandlerHooks {
  /**
   * A presence from a local client: broadcast (no `to`), directed or a subscription
   * command. The presence module handles it.
   */
  'presence-from-client': (session: LocalSession, stanza: XmlElement, to: Jid | null) => boolean | Promise<boolean>;
  /** A subscription or probe presence for a local user's bare JID. */
  'presence-to-user': (from: Jid, to: Jid, stanza: XmlElement) => boolean | Promise<boolean>;
  /**
   * A message for a local account with no available resource. A handler that stores it
   * returns 'stored'; one that declines it by a rule returns `{ dropped: rule }`; one that
   * fails throws StanzaError (bounced to the sender); false lets the next handler try.
   * When no handler takes it, the sender gets service-unavailable (core/delivery.ts).
   */
  'message-offline': (msg: MessageToOffline) => false | OfflineVerdict | Promise<false | OfflineVerdict>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any[]: every hook signature must be assignable to it (unknown[] is not, by parameter contravariance)
type AnyFn = (...args: any[]) => unknown;

interface Entry {
  fn: AnyFn;
  priority: number;
  owner: string;
}

export class HookBus {
  readonly #hooks = new Map<string, Entry[]>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  on<K extends keyof NotifyHooks>(name: K, fn: NotifyHooks[K], opts?: { priority?: number; owner?: string }): () => void;
  on<K extends keyof HandlerHooks>(name: K, fn: HandlerHooks[K], opts?: { priority?: number; owner?: string }): () => void;
  on(name: string, fn: AnyFn, opts?: { priority?: number; owner?: string }): () => void {
    const list = this.#hooks.get(name) ?? [];
    const entry: Entry = { fn, priority: opts?.priority ?? 0, owner: opts?.owner ?? 'core' };
    list.push(entry);
    list.sort((a, b) => b.priority - a.priority);
    this.#hooks.set(name, list);
    return () => {
      const l = this.#hooks.get(name);
      if (!l) return;
      const i = l.indexOf(entry);
      if (i >= 0) l.splice(i, 1);
    };
  }

  has(name: keyof NotifyHooks | keyof HandlerHooks): boolean {
    return (this.#hooks.get(name)?.length ?? 0) > 0;
  }

  /** Runs every handler of a notify hook; resolves when all have finished. */
  async notify<K extends keyof NotifyHooks>(name: K, ...args: Parameters<NotifyHooks[K]>): Promise<void> {
    const list = this.#hooks.get(name);
    if (!list) return;
    await Promise.all(
      list.map(async (e) => {
        try {
          await e.fn(...args);
        } catch (err) {
          this.#log.error({ err, hook: name, module: e.owner }, 'hook handler failed');
        }
      }),
    );
  }

  /**
   * Runs the handlers of a handler hook in priority order until one returns a value
   * other than false; resolves with that value, or undefined when none did. Errors
   * propagate to the caller.
   */
  async first<K extends keyof HandlerHooks>(name: K, ...args: Parameters<HandlerHooks[K]>): Promise<Exclude<Awaited<ReturnType<HandlerHooks[K]>>, false> | undefined> {
    const list = this.#hooks.get(name);
    if (!list) return undefined;
    for (const e of list) {
      const r = (await e.fn(...args)) as Awaited<ReturnType<HandlerHooks[K]>>;
      if (r !== false) return r as Exclude<Awaited<ReturnType<HandlerHooks[K]>>, false>;
    }
    return undefined;
  }

  /**
   * Runs the handlers of a handler hook in priority order until one returns true.
   * Errors propagate to the caller (a StanzaError becomes the sender's error).
   */
  async handle<K extends keyof HandlerHooks>(name: K, ...args: Parameters<HandlerHooks[K]>): Promise<boolean> {
    const list = this.#hooks.get(name);
    if (!list) return false;
    for (const e of list) {
      if (await e.fn(...args)) return true;
    }
    return false;
  }
}
