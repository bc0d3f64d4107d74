/**
 * The storage conformance suite: every store, written once against `Storage`, checked
 * the same way on every backend (Kysely's way: one suite looped over the dialects).
 * A store's suite lives beside it (`src/modules/<m>/store.conformance.ts`, exporting
 * `suite`; the accounts' in `src/auth/`); `run.ts` runs each case on a fresh database of
 * each backend, for `test/conformance.test.ts`.
 */
import type { Storage } from '../storage.js';

export interface ConformanceSuite {
  /** The store it checks, e.g. "roster". */
  name: string;
  /** Named cases; each gets a fresh database. Throw (node:assert) to fail. */
  cases: Record<string, (storage: Storage) => Promise<void>>;
}

/** The virtual host the suites write under. */
export const HOST = 'conformance.test';
