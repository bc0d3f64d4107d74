/**
 * Services that modules offer each other. A module never imports another module: it
 * asks the core for a service by name, typed here.
 */
import type { XmlElement } from '../xml/element.js';
import type { Jid } from '../xmpp/jid.js';
import type { LocalSession } from './session.js';

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

/** One item of a PEP node (XEP-0060 §7.1): its id and its one payload element. */
export interface PepItem {
  id: string;
  payload: XmlElement;
}

/** The personal eventing service of every account (XEP-0163), for other modules. */
export interface PepService {
  /**
   * Publishes an item on a user's node on the server's behalf, as if the owner did:
   * creates the node when missing (with `accessModel`, default the service default),
   * stores the item and notifies. Runs the `pep-published` hook with byServer = true.
   */
  publish(owner: Jid, node: string, item: PepItem, opts?: { accessModel?: 'open' | 'presence' | 'whitelist' }): Promise<void>;
  /** One item by id, or the latest item when `id` is undefined; null when none. */
  getItem(owner: Jid, node: string, id?: string): Promise<PepItem | null>;
}

/**
 * XEP-0186 invisibility, for the presence module (privacy module). Hiding an invisible
 * resource's presence is the privacy out-filter's job (router.checkOut).
 */
export interface PrivacyService {
  /**
   * Should the server give the session its contacts' presence when it sends initial
   * presence? False for a session that went invisible with probe='false' (XEP-0186 §3.1).
   */
  probesContacts(session: LocalSession): boolean;
}

/** Who sees which of a user's resources: kept in line with policy changes (presence module). */
export interface PresenceService {
  /**
   * Runs `change` (a change of `user`'s privacy lists, blocklist or invisibility) and
   * makes presence follow it: unavailable to whoever stopped seeing one of the user's
   * resources, the resource's current presence — once — to whoever started to, and the
   * same for contacts' presence the user stopped or started seeing. `forgetDirected`: a
   * session whose directed-presence targets are to be treated as gone (going invisible);
   * `republish`: a session whose presence goes to everyone who sees it after the change,
   * old audience included (going visible).
   */
  applyPolicyChange<T>(user: Jid, change: () => T | Promise<T>, opts?: { forgetDirected?: LocalSession; republish?: LocalSession }): Promise<T>;
  /**
   * Resources that ended without saying so (their cluster node died): their unavailable
   * presence goes to the users' subscribers and other resources, once. `last`: the gone
   * sessions' last known state (their stand-ins), by full JID; with it, the unavailable
   * goes only where their presence was allowed to go (not for an invisible resource).
   */
  sessionsGone(jids: Jid[], last?: ReadonlyMap<string, LocalSession>): Promise<void>;
}

/** vCards (XEP-0054) for other modules and the portal's profile events. */
export interface VcardService {
  /**
   * Stores a user's vCard as if the user had set it (size limit, avatar hash, presence
   * with the new hash to contacts, avatar to PEP). Returns the new photo hash when the
   * photo changed, else null.
   */
  set(user: Jid, vcard: XmlElement): Promise<string | null>;
}

export interface Services {
  roster: RosterService;
  privacy: PrivacyService;
  presence: PresenceService;
  pep: PepService;
  vcard: VcardService;
  friendships: FriendshipService;
}
