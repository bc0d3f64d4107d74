/** Where the last activity of accounts is kept (XEP-0012): one row per account. */
export interface LastSeen {
  /** ms since the epoch. */
  at: number;
  status: string;
}

export interface LastActivityStore {
  get(host: string, username: string): Promise<LastSeen | null>;
  /** Replaces the account's row, unless it holds a later time (writes may finish out of order). */
  set(host: string, username: string, seen: LastSeen): Promise<void>;
}
