/**
 * Where every online resource of this node is. The embedded default keeps it in
 * process; the cluster issue adds a directory shared through Redis behind the same calls.
 */
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';

const NONE: readonly LocalSession[] = Object.freeze([]);

export class SessionRegistry {
  /** bare JID → its sessions (an array: most users have one, and a Map per user costs more). */
  readonly #byBare = new Map<string, LocalSession[]>();
  #count = 0;

  /** Adds a bound session. Returns the session it replaces (same full JID), if any. */
  add(session: LocalSession): LocalSession | undefined {
    const bare = session.jid.bare;
    let list = this.#byBare.get(bare);
    if (!list) this.#byBare.set(bare, (list = []));
    const i = list.findIndex((s) => s.jid.resource === session.jid.resource);
    let replaced: LocalSession | undefined;
    if (i >= 0) {
      replaced = list[i];
      list[i] = session;
    } else {
      list.push(session);
      this.#count++;
    }
    return replaced;
  }

  /** Removes a session if it is still the registered one for its full JID. */
  remove(session: LocalSession): boolean {
    const bare = session.jid.bare;
    const list = this.#byBare.get(bare);
    if (!list) return false;
    const i = list.indexOf(session);
    if (i < 0) return false;
    list.splice(i, 1);
    this.#count--;
    if (list.length === 0) this.#byBare.delete(bare);
    return true;
  }

  get(full: Jid): LocalSession | undefined {
    const list = this.#byBare.get(full.bare);
    if (!list) return undefined;
    for (const s of list) if (s.jid.resource === full.resource) return s;
    return undefined;
  }

  /** Every session of a user (available or not). */
  resources(bare: string): readonly LocalSession[] {
    return this.#byBare.get(bare) ?? NONE;
  }

  /** Sessions of a user that sent available presence. */
  available(bare: string): LocalSession[] {
    const list = this.#byBare.get(bare);
    if (!list) return [];
    return list.filter((s) => s.isAvailable);
  }

  get size(): number {
    return this.#count;
  }

  get users(): number {
    return this.#byBare.size;
  }

  *all(): IterableIterator<LocalSession> {
    for (const list of this.#byBare.values()) yield* list;
  }
}
