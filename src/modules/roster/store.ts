/** The roster module's storage interface. */
import type { RosterItem } from './api.js';

export interface RosterStore {
  /** All items of a user, including stored inbound requests. */
  list(host: string, username: string): Promise<RosterItem[]>;
  get(host: string, username: string, contact: string): Promise<RosterItem | null>;
  /**
   * Reads the item, applies `change`, writes the result (null deletes) in one
   * transaction, and bumps the roster version. Returns the new item and version.
   * With `maxItems`, a change that would add an item to a roster holding that many
   * items (pending requests included) writes nothing and returns `full: true`.
   */
  update(
    host: string,
    username: string,
    contact: string,
    change: (item: RosterItem | null) => RosterItem | null,
    maxItems?: number,
  ): Promise<{ before: RosterItem | null; after: RosterItem | null; version: number; full: boolean }>;
  version(host: string, username: string): Promise<number>;
}
