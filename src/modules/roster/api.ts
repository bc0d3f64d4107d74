/**
 * The roster module's contract: roster items (RFC 6121 §2), friendships, and the
 * port where the portal's friend lists plug in (`FriendSource`).
 * Other modules see this contract only (through `ctx.service`), never the module itself.
 */
import type { Jid } from '../../xmpp/jid.js';

export type Subscription = 'none' | 'to' | 'from' | 'both';

/** One roster item (RFC 6121 §2.1.2), plus the pending-request state the server keeps. */
export interface RosterItem {
  /** Bare JID of the contact. */
  jid: string;
  name: string | null;
  subscription: Subscription;
  groups: string[];
  /** The user asked to subscribe to the contact and has no answer yet. */
  askOut: boolean;
  /** The contact asked to subscribe to the user and has no answer yet. */
  askIn: boolean;
  /** The stored inbound subscribe request (XML), re-delivered at login. */
  askInStanza: string | null;
  /** The user pre-approved a subscription from the contact (RFC 6121 §3.4). */
  approved: boolean;
  /** Shown in the roster (false: only a stored inbound request). */
  inRoster: boolean;
}

export interface RosterService {
  /** All items of a user, including stored inbound requests not in the roster. */
  getItems(user: Jid): Promise<RosterItem[]>;
  getItem(user: Jid, contact: string): Promise<RosterItem | null>;
  /**
   * Changes one item atomically and pushes the result to the user's interested
   * resources when the visible item changed. `change` gets the current item (or null)
   * and returns the new one (null removes it).
   * A change that adds an item to a roster of `limits.maxRosterSize` items throws
   * StanzaError `not-allowed` (cancel) and changes nothing.
   */
  update(user: Jid, contact: string, change: (item: RosterItem | null) => RosterItem | null): Promise<RosterItem | null>;
  /**
   * Rosters come from the portal (`portal.roster.source` http or sql): clients may not
   * change them, and subscription presence from clients is refused (`not-allowed`).
   */
  readonly readOnly: boolean;
}

/** One friend from the portal's friend list. */
export interface Friend {
  /** Bare JID of the friend (a local user). */
  jid: string;
  name: string | null;
  groups: string[];
}

/** The portal's friend lists (src/portal/friend-sources.ts), given to the core by the composition root. */
export interface FriendSource {
  readonly kind: 'http' | 'sql';
  /** How long a friend list read from the portal is used before it is read again (ms; `portal.roster.cacheTtl`). */
  readonly cacheTtl: number;
  /**
   * The friends of a local user (localpart). Rejects when the portal did not answer:
   * the caller keeps what it has (never an empty roster because the portal blipped).
   */
  friends(user: string): Promise<Friend[]>;
}

/**
 * Friendships, for the portal's events API and the portal roster source (roster module).
 * Works in every roster mode: a friendship is a mutual subscription (`both`).
 */
export interface FriendshipService {
  /**
   * Makes `a` and `b` friends: each gets an item for the other with subscription `both`
   * (pushed to their interested resources), and each side's available resources send
   * their presence to the other side (those that did not see each other already).
   * `a` sees `b` under `opts.nameOfB`/`groupsOfB` (kept as they are when undefined), and
   * `b` sees `a` under `nameOfA`/`groupsOfA`. Idempotent.
   */
  befriend(a: Jid, b: Jid, opts?: { nameOfB?: string | null; groupsOfB?: string[]; nameOfA?: string | null; groupsOfA?: string[] }): Promise<void>;
  /**
   * Ends a friendship: both items removed (pushed), and each side's available resources
   * go unavailable for the other. Idempotent.
   */
  unfriend(a: Jid, b: Jid): Promise<void>;
  /**
   * Reads the user's friends from the portal now and applies the differences (portal
   * roster source); nothing in internal mode. Rejects when the portal did not answer.
   */
  refresh(user: Jid): Promise<void>;
  /** Rosters come from the portal and are read-only to clients. */
  readonly readOnly: boolean;
}

declare module '../../core/services.js' {
  interface Services {
    roster: RosterService;
    friendships: FriendshipService;
    /** Provided by the composition root when rosters come from the portal (portal.roster.source). */
    friends: FriendSource;
  }
}

declare module '../../core/hooks.js' {
  interface NotifyHooks {
    /**
     * A roster item changed (subscription, groups, or removed: `item` null). Modules that
     * keep rules on rosters in memory (privacy lists by group or subscription) follow it.
     */
    'roster-changed': (user: Jid, contact: string, item: RosterItem | null) => void | Promise<void>;
  }
}
