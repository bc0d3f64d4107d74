/**
 * How a user's privacy changes are made, whatever command makes them (privacy lists,
 * blocking, invisibility): one at a time per user, with presence following the new policy
 * (the presence module's `applyPolicyChange`), the other cluster nodes told to read the
 * lists again, and the pushes to the user's interested resources. Also what the IQ
 * handlers share (`PrivacyParts`).
 * References: XEP-0016 §2.6 (list pushes, to the resources that use privacy lists);
 * XEP-0191 §3.1, §3.2, §4 (block and unblock pushes, to those that asked for the
 * blocklist; the blocklist is the default list's blocks).
 */
import { x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import type { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import type { IqRequest } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import type { PresenceService } from '../presence/api.js';
import type { RosterItem } from '../roster/api.js';
import type { PrivacyListCache } from './cache.js';
import type { PrivacySessions } from './session-state.js';
import type { PrivacyStore } from './store.js';

/** What the changes need of the server. */
export interface ChangeDeps {
  sessions: PrivacySessions;
  /** The user's sessions (this node's, and stand-ins for other nodes'). */
  resources(bare: string): readonly LocalSession[];
  /** Tells the other nodes that the user's lists changed. */
  invalidate(bare: string): void;
  /** The presence service, when the presence module is loaded. */
  presence(): PresenceService | null;
}

/** Changes to users' privacy, one at a time per user. */
export class PrivacyChanges {
  readonly #deps: ChangeDeps;
  /** One change at a time per user. */
  readonly #chains = new Map<string, Promise<unknown>>();
  #pushId = 0;

  constructor(deps: ChangeDeps) {
    this.#deps = deps;
  }

  /** Runs `fn` after the user's previous change (one at a time per user). */
  serial<T>(user: Jid, fn: () => Promise<T>): Promise<T> {
    const chains = this.#chains;
    const prev = chains.get(user.bare) ?? Promise.resolve();
    // Other cluster nodes drop their copy of the user's lists once the change is in.
    const next = prev.then(fn, fn).finally(() => this.#deps.invalidate(user.bare));
    const tail = next.catch(() => undefined);
    chains.set(user.bare, tail);
    void tail.then(() => {
      if (chains.get(user.bare) === tail) chains.delete(user.bare);
    });
    return next;
  }

  /** Applies a policy change with presence following it (when the presence module is there). */
  withPresence<T>(user: Jid, change: () => Promise<T> | T, opts?: { forgetDirected?: LocalSession; republish?: LocalSession }): Promise<T> {
    const presence = this.#deps.presence();
    return presence ? presence.applyPolicyChange(user, change, opts) : Promise.resolve().then(change);
  }

  /** XEP-0016 §2.6: the list `name` changed, to the resources that use privacy lists. */
  pushPrivacy(user: Jid, name: string): void {
    for (const s of this.#deps.resources(user.bare)) {
      if (s.isClosed || !this.#deps.sessions.get(s)?.usesPrivacy) continue;
      s.deliver(x('iq', { type: 'set', id: `privacy-push-${++this.#pushId}`, to: s.jid.full }, x('query', { xmlns: NS.PRIVACY }, x('list', { name }))));
    }
  }

  /** XEP-0191 §3: blocked or unblocked JIDs (none: all unblocked), to the resources that asked for the blocklist. */
  pushBlocking(user: Jid, what: 'block' | 'unblock', jids: string[]): void {
    for (const s of this.#deps.resources(user.bare)) {
      if (s.isClosed || !this.#deps.sessions.get(s)?.wantsBlocklist) continue;
      const el = x(what, { xmlns: NS.BLOCKING });
      for (const j of jids) el.append(x('item', { jid: j }));
      s.deliver(x('iq', { type: 'set', id: `block-push-${++this.#pushId}`, to: s.jid.full }, el));
    }
  }

  /** After a change to which list is default or to its contents: blocklist pushes (XEP-0191 §4). */
  pushBlocklistDiff(user: Jid, before: string[], after: string[]): void {
    const added = after.filter((j) => !before.includes(j));
    const removed = before.filter((j) => !after.includes(j));
    if (added.length > 0) this.pushBlocking(user, 'block', added);
    if (removed.length > 0) this.pushBlocking(user, 'unblock', removed);
  }
}

/** What the IQ handlers of privacy lists, blocking and invisibility share. */
export interface PrivacyParts {
  /** The user domain. */
  host: string;
  store: PrivacyStore;
  cache: PrivacyListCache;
  sessions: PrivacySessions;
  changes: PrivacyChanges;
  /** The user's sessions (this node's, and stand-ins for other nodes'). */
  resources(bare: string): readonly LocalSession[];
  /** Publishes a session's traits (flags) to the other nodes. */
  sync(s: LocalSession): Promise<void>;
  /** The user's roster (the groups a list item may name). */
  rosterItems(user: Jid): Promise<RosterItem[]>;
}

/** The requesting session, for a request about the user's own privacy. */
export function requireSelf(req: IqRequest): LocalSession {
  // Another account's lists are nobody else's business: answered as for no account.
  if (!req.isSelf || req.session === null) throw new StanzaError('service-unavailable');
  return req.session;
}
