/**
 * The embedded default backend: one SQLite file (better-sqlite3 12.x; 13.x crashes on
 * Node 20), WAL journal, through the same query layer and the same storage router as
 * MySQL (as a single shard that never moves).
 */
import { existsSync } from 'node:fs';
import { ensurePrivateDir, ensurePrivateFile } from '../support/private-files.js';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { Logger } from '../support/logger.js';
import { StorageError } from '../support/errors.js';
import { composeSchema, migrateToLatest, type SchemaPart } from './migrations.js';
import type { Backend } from './mysql.js';
import type { Database } from './schema.js';
import { ShardedStorage } from './sharded.js';

export interface SqliteOptions {
  /** File path, or ':memory:'. */
  file: string;
  busyTimeoutMs: number;
  log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** The modules' tables (`MODULE_SCHEMAS`); the storage's own are always there. */
  schema: readonly SchemaPart[];
}

export async function openSqlite(opts: SqliteOptions): Promise<ShardedStorage> {
  const schema = composeSchema(opts.schema);
  let raw: BetterSqlite3.Database;
  try {
    if (opts.file !== ':memory:') {
      // SECURITY: the database holds SCRAM keys and the archive: 0600 in a 0700 directory.
      // SQLite gives its -wal and -shm files the database file's permissions.
      const file = resolve(opts.file);
      ensurePrivateDir(dirname(file));
      for (const f of [file, `${file}-wal`, `${file}-shm`]) if (f === file || existsSync(f)) ensurePrivateFile(f);
    }
    raw = new BetterSqlite3(opts.file, { timeout: opts.busyTimeoutMs });
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
  } catch (e) {
    throw new StorageError(`cannot open SQLite database ${opts.file}: ${e instanceof Error ? e.message : String(e)}`, false, { cause: e });
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  await migrateToLatest(db, 'sqlite', schema);
  let closed: Promise<void> | null = null;
  const backend: Backend = {
    address: opts.file,
    db,
    inFlight: 0,
    async ping() {
      const t = performance.now();
      await sql`select 1`.execute(db);
      return performance.now() - t;
    },
    close() {
      closed ??= db.destroy();
      return closed;
    },
  };
  // One local file: no breaker worth the name (it would open only on a full disk), no
  // health timer; a busy database is retried by SQLite itself (busyTimeout).
  return ShardedStorage.single(
    { dialect: 'sqlite', log: opts.log, retries: 1, retryBackoffMs: 20, breakerThreshold: 1_000_000, breakerCooldownMs: 1000, healthIntervalMs: 0, healthTimeoutMs: 1000, moveTimeoutMs: 0, userTables: schema.userTables },
    backend,
  );
}
/** Prepared statements kept per SQL text (the stores' queries are a small, fixed set). */
const STATEMENT_CACHE = 500;

/**
 * The database as Kysely sees it, with prepared statements reused: Kysely prepares every
 * query anew, and preparing was ~18 % of the main thread's busy time during a login burst
 * (parsing and planning the same few statements again and again). Safe because Kysely
 * runs one query at a time on this connection and Parley never streams results (a
 * statement being iterated could not be reused).
 */
function withStatementCache(raw: BetterSqlite3.Database): { close(): void; prepare(sql: string): BetterSqlite3.Statement } {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(sql: string) {
      let st = cache.get(sql);
      if (st === undefined) {
        st = raw.prepare(sql);
        if (cache.size >= STATEMENT_CACHE) cache.delete(cache.keys().next().value!);
        cache.set(sql, st);
      }
      return st;
    },
  };
}
