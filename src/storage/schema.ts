/**
 * Table types for the query layer (Kysely). One definition serves SQLite and MySQL.
 * Every table is keyed by the virtual host first (STYLE.md trap 5).
 */
import type { Generated } from 'kysely';

export interface UsersTable {
  host: string;
  username: string;
  /** "iterations$salt$storedKey$serverKey", base64 parts (RFC 5802 credentials). */
  scram_sha1: string;
  scram_sha256: string;
  created_at: number;
}

export interface RosterTable {
  host: string;
  username: string;
  contact: string;
  name: string | null;
  /** none | to | from | both (RFC 6121 §2.1.2.5) */
  subscription: string;
  /** 1 when the user asked to subscribe to the contact (pending out). */
  ask_out: number;
  /** 1 when the contact asked to subscribe to the user (pending in). */
  ask_in: number;
  /** The pending inbound subscribe request, re-delivered at login (RFC 6121 §3.1.3). */
  ask_in_stanza: string | null;
  /** 1 when the user pre-approved the contact's subscription (RFC 6121 §3.4). */
  approved: number;
  /** 1 when the item is in the user's roster (not only a stored inbound request). */
  in_roster: number;
  /** JSON array of group names. */
  groups: string;
}

export interface RosterVersionTable {
  host: string;
  username: string;
  version: number;
}

export interface OfflineTable {
  id: Generated<number>;
  host: string;
  username: string;
  stanza: string;
  created_at: number;
  /** Identifies the message (see OfflineStore.push): stored once per key. */
  msg_key: string | null;
}

/** One vCard per account (XEP-0054), with the SHA-1 of its photo for XEP-0153. */
export interface VcardTable {
  host: string;
  username: string;
  /** The <vCard xmlns='vcard-temp'/> element as XML. */
  vcard: string;
  /** Lower-case hex SHA-1 of the PHOTO's binary data; '' when the vCard has no photo. */
  photo_hash: string;
  updated_at: number;
}

/** When an account's last resource went offline, and what it said then (XEP-0012). */
export interface LastActivityTable {
  host: string;
  username: string;
  /** ms since the epoch of the last unavailable presence (or end of an available session). */
  seen_at: number;
  /** The status text of that unavailable presence ('' when none). */
  status: string;
}

/** A node of an account's PEP service (XEP-0163). */
export interface PepNodeTable {
  host: string;
  username: string;
  node: string;
  /** JSON of the node configuration (access model, max items, ...). */
  config: string;
  created_at: number;
}

/** An item published on a PEP node; `id` orders items (the newest has the highest). */
export interface PepItemTable {
  id: Generated<number>;
  host: string;
  username: string;
  node: string;
  item_id: string;
  /** The payload element as XML. */
  payload: string;
  created_at: number;
}

/** XEP-0313 user archive: one row per message per archive (sender's and recipient's). */
export interface ArchiveTable {
  host: string;
  username: string;
  /** Archive id: milliseconds × 1024 + sequence (time-ordered, unique per archive). */
  id: number;
  /** The other party, bare. */
  with_jid: string;
  /** The other party's resource, '' when the message named none. */
  with_resource: string;
  /** 'in' (received) or 'out' (sent). */
  direction: string;
  /** The message as XML (in jabber:client). */
  stanza: string;
  /** Milliseconds since the epoch (from the id). */
  created_at: number;
}

/** XEP-0313 §6 archiving preferences. */
export interface ArchivePrefsTable {
  host: string;
  username: string;
  /** always | never | roster */
  default_mode: string;
  /** JSON array of JIDs always archived. */
  always_jids: string;
  /** JSON array of JIDs never archived. */
  never_jids: string;
}

/** XEP-0016 privacy lists, one row per list. */
export interface PrivacyListsTable {
  host: string;
  username: string;
  name: string;
  /** JSON array of items (type, value, action, order, kinds). */
  items: string;
  /** 1 for the user's default list (at most one). */
  is_default: number;
}

/** A user placed on a shard other than the hash ring's choice (MySQL shards only). */
export interface ShardDirectoryTable {
  host: string;
  username: string;
  shard: string;
  updated_at: number;
}

/**
 * An account the portal banned, or deleted with its data kept, or a demo account on a
 * server that is not in demo mode: it cannot log in.
 */
export interface UserFlagsTable {
  host: string;
  username: string;
  state: UserFlagState;
  reason: string | null;
  updated_at: number;
}

/** Why an account may not log in. */
export type UserFlagState = 'banned' | 'deleted' | 'disabled';

/** A portal event already applied (its id), so a repeated one is applied once. */
export interface PortalEventsTable {
  host: string;
  id: string;
  created_at: number;
}

export interface Database {
  users: UsersTable;
  roster: RosterTable;
  roster_version: RosterVersionTable;
  offline: OfflineTable;
  privacy_lists: PrivacyListsTable;
  archive: ArchiveTable;
  archive_prefs: ArchivePrefsTable;
  vcard: VcardTable;
  pep_node: PepNodeTable;
  pep_item: PepItemTable;
  shard_directory: ShardDirectoryTable;
  user_flags: UserFlagsTable;
  portal_events: PortalEventsTable;
  last_activity: LastActivityTable;
}
