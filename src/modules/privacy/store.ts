/**
 * The privacy module's storage interface: a user's privacy lists (XEP-0016) and which
 * one is the default. The XEP-0191 blocklist lives in the default list (XEP-0191 §4), so
 * both protocols share this one store.
 */

/** The stanza kinds an item can name (XEP-0016 §2.1); none named means every stanza. */
export type PrivacyKind = 'message' | 'iq' | 'presence-in' | 'presence-out';

export interface PrivacyItem {
  /** null: the fall-through item. */
  type: 'jid' | 'group' | 'subscription' | null;
  /** The JID (canonical form), group name or subscription state; null for fall-through. */
  value: string | null;
  action: 'allow' | 'deny';
  /** Unique in its list; items apply in ascending order. */
  order: number;
  kinds: PrivacyKind[];
}

export interface PrivacyList {
  name: string;
  items: PrivacyItem[];
}

export interface UserPrivacy {
  /** Every list of the user, in name order. */
  lists: PrivacyList[];
  /** The default list's name, or null. */
  defaultName: string | null;
}

export interface PrivacyStore {
  load(host: string, username: string): Promise<UserPrivacy>;
  /** Creates or replaces a list (its default flag is kept). */
  putList(host: string, username: string, list: PrivacyList): Promise<void>;
  /** Removes a list; false when there was none. */
  removeList(host: string, username: string, name: string): Promise<boolean>;
  /** Makes `name` the default list (null: no default). False when no such list exists. */
  setDefault(host: string, username: string, name: string | null): Promise<boolean>;
  /**
   * Creates or replaces a list and makes it the default, in one transaction (the blocking
   * command creating the user's first default list).
   */
  putDefaultList(host: string, username: string, list: PrivacyList): Promise<void>;
}
