/** Messages between the coordinator and its workers (IPC). */
import type { Scenario } from './scenario.js';

export type ToWorker =
  | { type: 'init'; scenario: Scenario; worker: number; users: number[]; startedAt: number }
  | { type: 'login'; rate: number }
  | { type: 'rosters' }
  | { type: 'traffic'; on: boolean }
  | { type: 'measure'; on: boolean }
  | { type: 'storm'; share: number; within: number }
  | { type: 'final' }
  | { type: 'logout' };

export interface HistogramData {
  counts: number[];
  max: number;
  sum: number;
}

/** Sent every second; histograms and counters since the last report, totals otherwise. */
export interface WorkerReport {
  type: 'report';
  worker: number;
  online: number;
  loginsDone: number;
  loginErrors: number;
  /** Logins completed since the last report. */
  loginHist: HistogramData;
  /** Deliveries measured since the last report. */
  latency: HistogramData;
  sent: number;
  received: number;
  measuredReceived: number;
  presences: number;
  errors: Record<string, number>;
  cpuPercent: number;
  inFlight: number;
  stormDone: number | null;
  rostersDone: number;
  /** BOSH HTTP requests made so far. */
  httpRequests: number;
}

export interface WorkerFinal {
  type: 'final';
  worker: number;
  /** Messages sent per flow "sender>receiver". */
  sentPerFlow: Record<string, number>;
  flows: Record<string, { unique: number; duplicates: number; outOfOrder: number }>;
}

export type FromWorker = WorkerReport | WorkerFinal | { type: 'ready'; worker: number } | { type: 'logged-in'; worker: number };
