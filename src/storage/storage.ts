/**
 * The storage handle the stores are written against. Every operation names the user
 * whose data it touches, and the handle runs it on the database that holds that user
 * (one SQLite file, or one MySQL shard of many): the store never picks a database itself,
 * so placement, moves, retries and the circuit breaker live in one place (`sharded.ts`).
 *
 * @example
 * const items = await storage.forUser(host, 'alice', 'read roster', (db) =>
 *   db.selectFrom('roster').selectAll().where('host', '=', host).where('username', '=', 'alice').execute());
 */
import type { Kysely } from 'kysely';
import { StorageError } from '../support/errors.js';
import type { Dialect } from './migrations.js';
import type { UserTable } from './mover.js';
import type { Database } from './schema.js';

export interface OpOptions {
  /**
   * The operation may run twice without harm (reads, upserts, read-modify-write in one
   * transaction). Only such operations are retried after an ambiguous failure (the
   * connection died after the query was sent); default true. Failures where the query
   * surely did not apply (no connection, deadlock rollback) are retried either way.
   */
  idempotent?: boolean;
  /** The operation creates accounts: it waits while a shard map change pins users. */
  creates?: boolean;
  /** Bulk work (moves, sweeps) exempt from the per-operation deadline. */
  long?: boolean;
}

/** What tools show of one shard (`parley shards status`, the admin API). */
export interface ShardStatus {
  name: string;
  /** host:port/database, or the SQLite file. */
  address: string;
  healthy: boolean;
  breaker: 'closed' | 'open' | 'half-open';
  draining: boolean;
  /** Round trip of the last health check, in milliseconds (null before the first). */
  latencyMs: number | null;
  lastError: string | null;
  ops: number;
  errors: number;
  retries: number;
  /** Operations refused at once because the breaker was open. */
  rejected: number;
  inFlight: number;
}

export interface Storage {
  readonly dialect: Dialect;
  /**
   * Every table this storage keeps per user (the storage's own and every module's, as
   * their schemas declare them): what deleting an account or moving a user touches.
   */
  readonly userTables: readonly UserTable[];
  /**
   * Runs `fn` on the database holding this user's data. Waits while the user is being
   * moved to another shard; retries transient failures with backoff (see OpOptions);
   * fails at once with a transient StorageError while the shard's breaker is open.
   */
  forUser<T>(host: string, username: string, what: string, fn: (db: Kysely<Database>) => Promise<T>, opts?: OpOptions): Promise<T>;
  /**
   * Runs `fn` once per database for a batch of users (batched writes): `fn` gets the
   * usernames held by that database. Databases run in parallel; the first failure rejects.
   */
  forUsers<T>(host: string, usernames: string[], what: string, fn: (db: Kysely<Database>, usernames: string[]) => Promise<T>, opts?: OpOptions): Promise<T[]>;
  /**
   * Fan-out to every database, for work that crosses users (admin listings, expiry
   * sweeps). Callers say so by calling this; a shard that is down fails the call.
   */
  forEachShard<T>(what: string, fn: (db: Kysely<Database>, shard: string) => Promise<T>): Promise<T[]>;
  /**
   * The name of the database holding a user's data now. Writers that batch several users
   * commit each database's share apart, so a slow shard delays only its own users.
   */
  placeOf(host: string, username: string): string;
  status(): ShardStatus[];
  close(): Promise<void>;
}

/** How a driver failure relates to the operation that met it. */
export type FailureKind =
  /** The query never reached the server (no connection, breaker open): safe to retry. */
  | 'not-sent'
  /** The server rolled the transaction back (deadlock, lock wait, SQLite busy): safe to retry. */
  | 'rolled-back'
  /** The connection died or timed out after the query was sent: it may have applied. */
  | 'ambiguous'
  /** A real error (constraint, syntax): retrying gives the same answer. */
  | 'permanent';

const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ER_CON_COUNT_ERROR', 'PARLEY_BREAKER_OPEN', 'PARLEY_NO_CONNECTION']);
const ROLLED_BACK = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_RECOVERY']);
const AMBIGUOUS = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
  'ER_CONNECTION_KILLED',
  'ER_CLIENT_INTERACTION_TIMEOUT',
]);

/**
 * Runs an INSERT and says whether it added the row: false when the key exists already
 * (a duplicate-key error, SQLite and MySQL alike), any other failure rethrown.
 *
 * @example
 * const added = await insertedUnlessDuplicate(db.insertInto('portal_events').values(row).executeTakeFirst());
 */
export async function insertedUnlessDuplicate(insert: Promise<{ numInsertedOrUpdatedRows?: bigint }>): Promise<boolean> {
  try {
    const res = await insert;
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false;
    throw e;
  }
}

/** Classifies a driver error (mysql2, better-sqlite3, or our own connection wrapper). */
export function classifyFailure(e: unknown): FailureKind {
  const err = e as { code?: unknown; parleyPhase?: unknown; fatal?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : '';
  if (err?.parleyPhase === 'connect') return 'not-sent';
  if (NOT_SENT.has(code)) return 'not-sent';
  if (ROLLED_BACK.has(code)) return 'rolled-back';
  if (AMBIGUOUS.has(code)) return 'ambiguous';
  // mysql2 reports a query on a connection that has died without a code.
  if (err?.fatal === true) return 'ambiguous';
  if (typeof err?.message === 'string' && /closed state|connection is closed|Pool is closed/i.test(err.message)) return 'ambiguous';
  return 'permanent';
}

/** True when the failure says the database server, not the query, is the problem. */
export function isServerFailure(kind: FailureKind): boolean {
  return kind === 'not-sent' || kind === 'ambiguous';
}

/** Wraps a driver error in a StorageError, so no SQL text or driver detail reaches a client. */
export function toStorageError(what: string, e: unknown, where?: string): StorageError {
  if (e instanceof StorageError) return e;
  const kind = classifyFailure(e);
  const code = (e as { code?: string }).code ?? '';
  const detail = code || (e instanceof Error ? e.message : String(e));
  return new StorageError(`${what} failed${where ? ` on shard ${where}` : ''}: ${detail}`, kind !== 'permanent', { cause: e });
}
