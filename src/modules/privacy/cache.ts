/**
 * The privacy lists of users, compiled, in memory: the router's stanza filters are
 * synchronous and read them from here. Users with a session on this node are kept loaded
 * (from 'session-bound' on); other users' lists — needed for stanzas to offline accounts
 * and to accounts that do not exist — are loaded on demand through the router's `prepare`
 * step and kept in a bounded LRU cache. A list by roster group or subscription keeps the
 * user's contacts' subscription and groups next to it.
 * References: XEP-0016 §2.2 (which list applies: active, else default), XEP-0191 §4
 * (the blocklist is the default list's jid+deny items).
 */
import type { Jid } from '../../xmpp/jid.js';
import type { RosterItem } from '../roster/api.js';
import { NOT_IN_ROSTER, compileList, decide, type CompiledList, type Decision, type RosterView, type StanzaClass } from './engine.js';
import type { PrivacyList, PrivacyStore } from './store.js';

/** Offline users' lists kept in memory (LRU). */
export const CACHE_SIZE = 10_000;

/** A user's lists, compiled, in memory. */
export interface UserLists {
  defaultName: string | null;
  lists: Map<string, CompiledList>;
  /** Contacts' subscription and groups, kept while some list needs them. */
  roster: Map<string, RosterView> | null;
}

/** What the cache needs of the server. */
export interface ListCacheDeps {
  /** The user domain (accounts are on it). */
  host: string;
  store: PrivacyStore;
  /** The user has a session on this node: its lists stay loaded. */
  hasSessions(bare: string): boolean;
  /** The user's roster, for lists by roster group or subscription. */
  rosterItems(user: Jid): Promise<RosterItem[]>;
}

/** Users' privacy lists in memory, loaded on demand. */
export class PrivacyListCache {
  readonly #deps: ListCacheDeps;
  readonly #online = new Map<string, UserLists>();
  readonly #recent = new Map<string, UserLists>();
  readonly #loading = new Map<string, Promise<UserLists>>();

  constructor(deps: ListCacheDeps) {
    this.#deps = deps;
  }

  /** An account of this server (not the server itself, not another domain). */
  isAccount(jid: Jid): boolean {
    return jid.local !== '' && jid.domain === this.#deps.host;
  }

  /** The user's lists when in memory (an offline user's become the most recently used). */
  lookup(bare: string): UserLists | undefined {
    const s = this.#online.get(bare);
    if (s) return s;
    const r = this.#recent.get(bare);
    if (!r) return undefined;
    this.#recent.delete(bare);
    if (this.#deps.hasSessions(bare)) this.#online.set(bare, r);
    else this.#recent.set(bare, r); // most recently used
    return r;
  }

  /** The user's lists, loaded first when not in memory (one load at a time per user). */
  ensure(user: Jid): Promise<UserLists> {
    const bare = user.bare;
    const have = this.lookup(bare);
    if (have) return Promise.resolve(have);
    let p = this.#loading.get(bare);
    if (!p) {
      p = (async () => {
        const data = await this.#deps.store.load(this.#deps.host, user.local);
        const lists = new Map<string, CompiledList>();
        for (const l of data.lists) lists.set(l.name, compileList(l));
        const st: UserLists = { defaultName: data.defaultName, lists, roster: null };
        if ([...lists.values()].some((l) => l.needsRoster)) st.roster = await this.#loadRoster(user);
        this.#keep(bare, st);
        return st;
      })();
      this.#loading.set(bare, p);
      const done = () => this.#loading.delete(bare);
      p.then(done, done);
    }
    return p;
  }

  /** The router's prepare step: null when the lists are in memory (or not an account), else their loading. */
  prepare(user: Jid): Promise<void> | null {
    if (!this.isAccount(user) || this.lookup(user.bare)) return null;
    return this.ensure(user).then(() => undefined);
  }

  /** Forgets the user's lists: read again before the next stanza to or from the user is judged. */
  forget(bare: string): void {
    this.#online.delete(bare);
    this.#recent.delete(bare);
  }

  /** Forgets every user's lists. */
  clear(): void {
    this.#online.clear();
    this.#recent.clear();
  }

  /** A session of the user ended: with none left, the user's lists move to the LRU. */
  sessionGone(bare: string): void {
    if (this.#deps.hasSessions(bare)) return;
    const st = this.#online.get(bare);
    if (st) this.#keep(bare, st);
  }

  /** A roster item changed: the contact's view, for lists that read the roster. */
  rosterChanged(user: Jid, contact: string, item: RosterItem | null): void {
    const st = this.#online.get(user.bare) ?? this.#recent.get(user.bare);
    if (!st?.roster) return;
    const v = item ? viewOf(item) : null;
    if (v) st.roster.set(contact, v);
    else st.roster.delete(contact);
  }

  /** Puts a list (or its removal: null) in the user's lists in memory. */
  async setList(user: Jid, st: UserLists, list: PrivacyList | null, name: string): Promise<void> {
    if (list === null) st.lists.delete(name);
    else {
      const compiled = compileList(list);
      if (compiled.needsRoster && st.roster === null) st.roster = await this.#loadRoster(user);
      st.lists.set(name, compiled);
    }
    if (st.roster !== null && ![...st.lists.values()].some((l) => l.needsRoster)) st.roster = null;
  }

  #keep(bare: string, st: UserLists): void {
    if (this.#deps.hasSessions(bare)) {
      this.#online.set(bare, st);
      this.#recent.delete(bare);
      return;
    }
    this.#online.delete(bare);
    this.#recent.set(bare, st);
    while (this.#recent.size > CACHE_SIZE) this.#recent.delete(this.#recent.keys().next().value!);
  }

  async #loadRoster(user: Jid): Promise<Map<string, RosterView>> {
    const m = new Map<string, RosterView>();
    for (const item of await this.#deps.rosterItems(user)) {
      const v = viewOf(item);
      if (v) m.set(item.jid, v);
    }
    return m;
  }
}

/** The user's default list (XEP-0016 §2.2), if any. */
export function defaultOf(st: UserLists): CompiledList | undefined {
  return st.defaultName !== null ? st.lists.get(st.defaultName) : undefined;
}

/** What the user's lists say of a stanza of class `cls` to or from `contact`, with `active` as the session's active list. */
export function judge(st: UserLists, active: string | null, contact: Jid, cls: StanzaClass): Decision {
  const act = active !== null ? st.lists.get(active) : undefined;
  return decide(defaultOf(st), act, contact, cls, () => st.roster?.get(contact.bare) ?? NOT_IN_ROSTER);
}

function viewOf(item: RosterItem): RosterView | null {
  if (!item.inRoster && item.subscription === 'none') return null;
  return { subscription: item.subscription, groups: item.groups };
}
