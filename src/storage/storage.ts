/**
 * The storage handle the stores are written against. A store asks for the database that
 * holds one user's data (`forUser`), so the same store code runs on the embedded SQLite
 * file and, later, on MySQL shards partitioned by user.
 */
import type { Kysely } from 'kysely';
import { StorageError } from '../xmpp/errors.js';
import type { Dialect } from './migrations.js';
import type { Database } from './schema.js';

export interface Storage {
  readonly dialect: Dialect;
  /** The database holding this user's data. */
  forUser(host: string, username: string): Kysely<Database>;
  /** Every database: for work that crosses users (admin listings, sweeps). Callers say so. */
  all(): Kysely<Database>[];
  close(): Promise<void>;
}

/**
 * Runs a storage operation and turns driver errors into StorageError, so no SQL text or
 * driver detail reaches a client.
 */
export async function storageOp<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StorageError) throw e;
    const code = (e as { code?: string }).code ?? '';
    const transient = /BUSY|LOCKED|ECONNRESET|PROTOCOL_CONNECTION_LOST|ER_LOCK_DEADLOCK|ER_LOCK_WAIT_TIMEOUT|ETIMEDOUT/.test(code);
    throw new StorageError(`${what} failed: ${code || (e instanceof Error ? e.message : String(e))}`, transient, { cause: e });
  }
}
