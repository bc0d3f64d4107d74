/**
 * Statistics of the BOSH connection manager, in one object the metrics module exports.
 * Counters only grow; gauges are computed when read.
 */
export type BoshTermination = 'client' | 'inactivity' | 'error' | 'shutdown' | 'conflict' | 'bad-request' | 'item-not-found' | 'policy-violation' | 'other';

export class BoshStats {
  sessionsCreated = 0;
  requests = 0;
  /** Requests answered from the response buffer (same rid again). */
  retransmissions = 0;
  /** Requests that arrived before their predecessor and were held back. */
  outOfOrder = 0;
  /** Held requests whose connection closed before their response (proxy or browser cut). */
  cutRequests = 0;
  /** Responses sent with a `report` (a response the client said it missed). */
  reports = 0;
  pauses = 0;
  /** Presence stanzas that went out grouped with others after waiting. */
  groupedPresences = 0;
  hibernations = 0;
  terminations: Record<BoshTermination, number> = {
    client: 0,
    inactivity: 0,
    error: 0,
    shutdown: 0,
    conflict: 0,
    'bad-request': 0,
    'item-not-found': 0,
    'policy-violation': 0,
    other: 0,
  };
}

/** A snapshot: the counters plus the gauges. */
export interface BoshStatsSnapshot extends Omit<BoshStats, 'terminations'> {
  terminations: Record<BoshTermination, number>;
  sessions: number;
  heldRequests: number;
  pausedSessions: number;
  hibernatedSessions: number;
  /** Mean effective wait (ms) over sessions; sessions that learned a shorter one pull it down. */
  meanEffectiveWaitMs: number;
  /** Sessions whose wait was shortened after cut requests. */
  adaptedSessions: number;
}
