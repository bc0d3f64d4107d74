/**
 * The embedded default backend: one SQLite file (better-sqlite3 12.x; 13.x crashes on
 * Node 20), WAL journal, through the same query layer as MySQL.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { StorageError } from '../xmpp/errors.js';
import { migrateToLatest } from './migrations.js';
import type { Database } from './schema.js';
import type { Storage } from './storage.js';

export interface SqliteOptions {
  /** File path, or ':memory:'. */
  file: string;
  busyTimeoutMs: number;
}

export async function openSqlite(opts: SqliteOptions): Promise<Storage> {
  let raw: BetterSqlite3.Database;
  try {
    if (opts.file !== ':memory:') mkdirSync(dirname(resolve(opts.file)), { recursive: true });
    raw = new BetterSqlite3(opts.file, { timeout: opts.busyTimeoutMs });
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('foreign_keys = ON');
  } catch (e) {
    throw new StorageError(`cannot open SQLite database ${opts.file}: ${e instanceof Error ? e.message : String(e)}`, false, { cause: e });
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
  await migrateToLatest(db, 'sqlite');
  const list = [db];
  return {
    dialect: 'sqlite',
    forUser: () => db,
    all: () => list,
    async close() {
      await db.destroy();
    },
  };
}
