/**
 * Where every online resource is. This node's sessions are kept here; in a cluster, a
 * `RemoteSessions` view (a replica of the directory on Redis, src/cluster) adds the
 * other nodes' sessions as stand-ins whose delivery forwards to their node. Lookups
 * (`get`, `resources`, `available`) see both, so the router and the modules route
 * across nodes without knowing it; `all`, `size` and `users` are this node's only.
 */
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';

const NONE: readonly LocalSession[] = Object.freeze([]);

/** The other nodes' sessions, and where this node's changes are published. */
export interface RemoteSessions {
  /** Sessions of a user on other nodes. */
  resources(bare: string): readonly LocalSession[];
  get(full: string): LocalSession | undefined;
  /** A session of this node was bound or changed (presence, priority, flags). */
  published(session: LocalSession): void;
  /** A session of this node is gone. */
  removed(session: LocalSession): void;
  /** Writes a session's state now; resolves once the directory has it (or the write failed). */
  publishNow(session: LocalSession): Promise<void>;
  /**
   * Resolves once this node's view holds every change the other nodes made before the
   * call (bounded in time): a session another node bound and told its client about is
   * then visible here.
   */
  catchUp(): Promise<void>;
}

export class SessionRegistry {
  /** bare JID → its sessions (an array: most users have one, and a Map per user costs more). */
  readonly #byBare = new Map<string, LocalSession[]>();
  #count = 0;
  #remote: RemoteSessions | null = null;

  /** See RemoteSessions.catchUp; at once without a cluster. */
  catchUp(): Promise<void> {
    return this.#remote ? this.#remote.catchUp() : Promise.resolve();
  }

  /** Joins the registry to a cluster's view of the other nodes. */
  attach(remote: RemoteSessions | null): void {
    this.#remote = remote;
  }

  /**
   * Adds a bound session. Returns the session it replaces (same full JID), if any: a
   * local one, or another node's (whose close() ends it there).
   */
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
    if (this.#remote) {
      replaced ??= this.#remote.get(session.jid.full);
      this.#remote.published(session);
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
    this.#remote?.removed(session);
    return true;
  }

  /** A session's presence, priority or flags changed (the cluster publishes it). */
  changed(session: LocalSession): void {
    if (this.#remote && session.node === undefined && this.getLocal(session.jid) === session) this.#remote.published(session);
  }

  /**
   * Publishes a session's state and waits until the cluster's directory has it. Presence
   * broadcast calls it before reading other nodes' sessions: of two contacts coming online
   * at once on two nodes, the later write's node then sees the earlier one (Redis orders
   * the writes), so neither misses the other. Resolves at once without a cluster.
   */
  sync(session: LocalSession): Promise<void> {
    if (!this.#remote || session.node !== undefined || this.getLocal(session.jid) !== session) return Promise.resolve();
    return this.#remote.publishNow(session);
  }

  /** The session bound to a full JID, on this node or another. */
  get(full: Jid): LocalSession | undefined {
    return this.getLocal(full) ?? this.#remote?.get(full.full);
  }

  /** This node's session bound to a full JID. */
  getLocal(full: Jid): LocalSession | undefined {
    const list = this.#byBare.get(full.bare);
    if (!list) return undefined;
    for (const s of list) if (s.jid.resource === full.resource) return s;
    return undefined;
  }

  /** Every session of a user (available or not), on every node. */
  resources(bare: string): readonly LocalSession[] {
    const local = this.#byBare.get(bare) ?? NONE;
    if (this.#remote === null) return local;
    const remote = this.#remote.resources(bare);
    if (remote.length === 0) return local;
    if (local.length === 0) return remote;
    return merge(local, remote);
  }

  /** Sessions of a user that sent available presence, on every node. */
  available(bare: string): LocalSession[] {
    const list = this.resources(bare);
    if (list.length === 0) return [];
    return list.filter((s) => s.isAvailable);
  }

  /** This node's sessions. */
  get size(): number {
    return this.#count;
  }

  /** Users with a session on this node. */
  get users(): number {
    return this.#byBare.size;
  }

  /** This node's sessions. */
  *all(): IterableIterator<LocalSession> {
    for (const list of this.#byBare.values()) yield* list;
  }
}

/** Local sessions first; a remote one with the same resource (being replaced) is left out. */
function merge(local: readonly LocalSession[], remote: readonly LocalSession[]): LocalSession[] {
  const out = [...local];
  for (const r of remote) if (!local.some((l) => l.jid.resource === r.jid.resource)) out.push(r);
  return out;
}
