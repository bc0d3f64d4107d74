/** The pep module's storage interface: nodes and items of every account's PEP service. */
import type { NodeConfig } from './node-config.js';

export interface StoredItem {
  /** The item id (XEP-0060 §7.1.2). */
  id: string;
  /** The payload element as XML. */
  payload: string;
  /** Milliseconds since the epoch when it was published. */
  createdAt: number;
}

/** What one account may store in PEP, over all its nodes. */
export interface PepQuota {
  items: number;
  /** Bytes of the payloads as stored (UTF-8). */
  bytes: number;
}

export interface PepStore {
  getNode(host: string, username: string, node: string): Promise<NodeConfig | null>;
  listNodes(host: string, username: string): Promise<Array<{ node: string; config: NodeConfig }>>;
  /** Creates a node unless it exists or the user already has `maxNodes` nodes. */
  createNode(host: string, username: string, node: string, config: NodeConfig, maxNodes: number): Promise<'created' | 'exists' | 'full'>;
  /** Replaces a node's configuration and drops the items beyond its max items; false when there is no such node. */
  configureNode(host: string, username: string, node: string, config: NodeConfig): Promise<boolean>;
  /** Deletes a node and its items; false when there was none. */
  deleteNode(host: string, username: string, node: string): Promise<boolean>;
  /**
   * Stores an item as the newest of its node (an item with the same id is replaced),
   * then keeps only the newest `maxItems`. With a `quota`, the account's items once this
   * one is in (after the replacement and the trimming) may be at most `quota.items`,
   * their payloads at most `quota.bytes` bytes: past it nothing is stored and the result
   * is false.
   */
  publish(host: string, username: string, node: string, item: { id: string; payload: string }, maxItems: number, quota?: PepQuota): Promise<boolean>;
  /** Items oldest first: those with the given ids, or the newest `max` (all when undefined). */
  items(host: string, username: string, node: string, opts?: { max?: number; ids?: string[] }): Promise<StoredItem[]>;
  /** The newest item of each of the given nodes that has one. */
  lastItems(host: string, username: string, nodes: string[]): Promise<Map<string, StoredItem>>;
  /** Removes one item; false when there was none. */
  retract(host: string, username: string, node: string, itemId: string): Promise<boolean>;
  /** Removes every item of a node. */
  purge(host: string, username: string, node: string): Promise<void>;
  /** Removes every node and item of a user. */
  removeUser(host: string, username: string): Promise<void>;
}
