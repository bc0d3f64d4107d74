/** The offline module's storage interface (XEP-0160). */
export interface OfflineMessage {
  id: number;
  /** The stanza as XML. */
  stanza: string;
  /** Milliseconds since the epoch when it was stored. */
  createdAt: number;
}

export interface OfflineStore {
  /**
   * Stores a message unless the user already has `max` of them. `key` identifies the
   * message: a message whose key is stored already is not stored again ('stored'), so the
   * write can be retried after an ambiguous failure and a sender's resend is kept once.
   */
  push(host: string, username: string, stanza: string, max: number, key: string): Promise<'stored' | 'full'>;
  /** The oldest messages first. */
  fetch(host: string, username: string, limit: number): Promise<OfflineMessage[]>;
  remove(host: string, username: string, ids: number[]): Promise<void>;
  count(host: string, username: string): Promise<number>;
  /** The messages with these ids that exist, oldest first (XEP-0013 view and remove). */
  fetchByIds(host: string, username: string, ids: number[]): Promise<OfflineMessage[]>;
  /** Removes every message of the user (XEP-0013 purge). */
  clear(host: string, username: string): Promise<void>;
}
