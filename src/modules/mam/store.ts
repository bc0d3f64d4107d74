/** The archive module's storage interface (XEP-0313 user archives and preferences). */

export type ArchiveDirection = 'in' | 'out';
export type ArchiveDefault = 'always' | 'never' | 'roster';

/** One archived message of one user's archive. */
export interface ArchiveEntry {
  /** Archive id: time-ordered, unique in the archive (see ids.ts). */
  id: number;
  /** The other party, bare JID. */
  with: string;
  /** The other party's resource ('' when none was named). */
  withResource: string;
  direction: ArchiveDirection;
  /** The message as XML, with its namespace (jabber:client). */
  stanza: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

/**
 * What a query selects, before paging. Bounds are on archive ids and exclusive; times are
 * turned into id bounds by the caller (ids are time-ordered).
 */
export interface ArchiveFilter {
  /** The other party: bare JID, and only this resource when given. */
  with?: { bare: string; resource?: string };
  afterId?: number;
  beforeId?: number;
  /** Only these ids. */
  ids?: number[];
}

export interface ArchivePage {
  /** Items in ascending id order. */
  items: ArchiveEntry[];
  /** More items exist beyond the page, in the direction of paging. */
  more: boolean;
}

export interface ArchivePrefs {
  default: ArchiveDefault;
  /** Bare or full JIDs always archived. */
  always: string[];
  /** Bare or full JIDs never archived (this list wins over `always`). */
  never: string[];
}

export interface ArchiveStore {
  /** Adds messages to one user's archive. */
  append(host: string, username: string, entries: ArchiveEntry[]): Promise<void>;
  /**
   * Adds messages to the archives of several users at once: one transaction per
   * database (group commit). All or nothing per database.
   */
  appendMany(rows: Array<{ host: string; username: string; entry: ArchiveEntry }>): Promise<void>;
  /**
   * Which database holds a user's archive. The group commit writes each one's rows apart,
   * so a database that is down or slow holds up only the messages of its own users.
   */
  partitionOf(host: string, username: string): string;
  /** Removes messages by id (undoing an append). */
  remove(host: string, username: string, ids: number[]): Promise<void>;
  has(host: string, username: string, id: number): Promise<boolean>;
  /**
   * A page of `limit` items: the first ones of the filter (`from: 'start'`, skipping
   * `offset`), or the last ones (`from: 'end'`), always returned in ascending order.
   */
  page(host: string, username: string, filter: ArchiveFilter, opts: { limit: number; from: 'start' | 'end'; offset?: number }): Promise<ArchivePage>;
  count(host: string, username: string, filter: ArchiveFilter): Promise<number>;
  /** The oldest and newest entries (metadata), or null for an empty archive. */
  bounds(host: string, username: string): Promise<{ first: ArchiveEntry; last: ArchiveEntry } | null>;
  /** Deletes entries created before `before` (ms) in every database; returns how many. */
  removeOlderThan(before: number): Promise<number>;
  /** Drops a user's archive and preferences. */
  removeUser(host: string, username: string): Promise<void>;
  getPrefs(host: string, username: string): Promise<ArchivePrefs | null>;
  setPrefs(host: string, username: string, prefs: ArchivePrefs): Promise<void>;
}
