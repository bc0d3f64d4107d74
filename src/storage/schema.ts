/**
 * Table types for the query layer (Kysely). One definition serves SQLite and MySQL.
 * Every table is keyed by the virtual host first (STYLE.md trap 5). Here are the
 * storage's own tables and auth's (accounts, the shard directory, the portal's event
 * ids); a module's tables are in its `schema.ts`, merged into `Database`.
 */
export interface UsersTable {
  host: string;
  username: string;
  /** "iterations$salt$storedKey$serverKey", base64 parts (RFC 5802 credentials). */
  scram_sha1: string;
  scram_sha256: string;
  created_at: number;
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

/**
 * Every table, for the query layer. The storage's own are here; each module adds its
 * tables from its `schema.ts` by declaration merging:
 *
 * @example
 * declare module '../../storage/schema.js' {
 *   interface Database {
 *     last_activity: LastActivityTable;
 *   }
 * }
 */
export interface Database {
  users: UsersTable;
  shard_directory: ShardDirectoryTable;
  user_flags: UserFlagsTable;
  portal_events: PortalEventsTable;
}
