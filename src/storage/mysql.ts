/**
 * One MySQL/MariaDB shard as the query layer sees it: a mysql2 connection pool behind
 * Kysely's MySQL dialect, with a connect timeout, a timeout on every query, and failures
 * marked with the phase they happened in (so a retry knows whether the query was sent).
 * Works with MariaDB 10.11 and MySQL 8 (utf8mb4, no vendor-only SQL).
 */
import mysql from 'mysql2';
import type { Pool, PoolConnection, PoolOptions } from 'mysql2';
import { Kysely, MysqlDialect, sql, type MysqlPool } from 'kysely';
import { StorageError } from '../support/errors.js';
import type { Database } from './schema.js';
import { shardAddress, type ShardSpec } from './shard-map.js';

export interface MysqlTuning {
  connectTimeoutMs: number;
  queryTimeoutMs: number;
  poolSize: number;
}

/** A database handle and what is running on it (an old handle closes once idle). */
export interface Backend {
  readonly address: string;
  readonly db: Kysely<Database>;
  /** Operations started on this handle and not yet finished. */
  inFlight: number;
  /** Round trip of `SELECT 1`, in milliseconds; throws like any query. */
  ping(timeoutMs: number): Promise<number>;
  /**
   * Where this server's replication stream is (GTID set), or null when it has none or
   * cannot say (not MySQL, binary log off, server down).
   */
  replicationPosition?(): Promise<string | null>;
  /** Waits until this server (a replica) has applied `position`; false on timeout. */
  waitForPosition?(position: string, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

function poolOptions(spec: ShardSpec, t: MysqlTuning, withDatabase: boolean): PoolOptions {
  return {
    host: spec.host,
    port: spec.port,
    user: spec.user,
    password: spec.password,
    database: withDatabase ? spec.database : undefined,
    connectionLimit: t.poolSize,
    maxIdle: Math.min(t.poolSize, 4),
    idleTimeout: 60_000,
    connectTimeout: t.connectTimeoutMs,
    waitForConnections: true,
    queueLimit: 5000,
    enableKeepAlive: true,
    // Binary collation: JIDs are compared as PRECIS leaves them ("müller" is not "muller").
    charset: 'UTF8MB4_BIN',
    // Archive ids and timestamps fit in 53 bits; COUNT(*) comes back as a number.
    supportBigNumbers: true,
    bigNumberStrings: false,
    multipleStatements: false,
  };
}

/**
 * The pool Kysely is given: every query carries the timeout, a connection whose query
 * timed out is destroyed rather than reused (mysql2 leaves it mid-protocol), and a
 * failure to get a connection is marked `parleyPhase: 'connect'` (nothing was sent).
 */
function timedPool(pool: Pool, t: MysqlTuning, onEnd: () => void): MysqlPool {
  return {
    getConnection(cb) {
      // The pool's own queue waits for ever; a shard that stopped answering would hold
      // every waiting operation until it came back. Give up after the connect timeout.
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        const err = Object.assign(new Error(`no connection to the shard within ${t.connectTimeoutMs} ms`), { code: 'PARLEY_NO_CONNECTION', parleyPhase: 'connect' });
        cb(err, undefined as never);
      }, t.connectTimeoutMs);
      pool.getConnection((err, conn) => {
        if (settled) {
          conn?.release();
          return;
        }
        settled = true;
        clearTimeout(timer);
        if (err) {
          (err as { parleyPhase?: string }).parleyPhase = 'connect';
          cb(err, undefined as never);
          return;
        }
        // eslint-disable-next-line @typescript-eslint/no-unsafe-argument -- wrapConnection implements only the callback overload of Kysely's MysqlPoolConnection.query, so it is typed loosely
        cb(null, wrapConnection(conn, t.queryTimeoutMs));
      });
    },
    end(cb) {
      onEnd();
      pool.end(cb);
    },
  };
}

function wrapConnection(conn: PoolConnection, queryTimeoutMs: number): ReturnType<typeof Object> {
  let broken = false;
  return {
    query(sql: string, parameters: readonly unknown[], cb: (err: unknown, result: unknown) => void) {
      return conn.query({ sql, values: parameters as unknown[], timeout: queryTimeoutMs }, (err, result) => {
        if (err && ((err as { code?: string }).code === 'PROTOCOL_SEQUENCE_TIMEOUT' || (err as { fatal?: boolean }).fatal)) broken = true;
        cb(err, result);
      });
    },
    release() {
      if (broken) conn.destroy();
      else conn.release();
    },
  };
}

/** Opens a shard's pool (connections are made when first needed). */
export function openMysqlBackend(spec: ShardSpec, t: MysqlTuning): Backend {
  const pool = mysql.createPool(poolOptions(spec, t, true));
  pool.on('connection', (c) => {
    // A connection dying while idle must not crash the process.
    c.on('error', () => {});
    // READ COMMITTED: an INSERT ... SELECT (the offline queue's bounded insert) reads
    // without next-key locks, so users whose rows sit next to each other in an index do
    // not deadlock each other. Queued before the connection's first query.
    // With the query timeout too: a command without one would hold every query queued
    // behind it on this connection for as long as the server does not answer.
    c.query({ sql: 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', timeout: t.queryTimeoutMs }, (err) => {
      if (err) c.destroy();
    });
  });
  let ended = false;
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool: timedPool(pool, t, () => (ended = true)) }) });
  let closed: Promise<void> | null = null;
  return {
    address: shardAddress(spec),
    db,
    inFlight: 0,
    ping(timeoutMs: number) {
      const started = performance.now();
      return new Promise<number>((resolve, reject) => {
        pool.getConnection((err, conn) => {
          if (err) {
            (err as { parleyPhase?: string }).parleyPhase = 'connect';
            reject(err);
            return;
          }
          conn.query({ sql: 'SELECT 1', timeout: timeoutMs }, (qerr) => {
            if (qerr) {
              conn.destroy();
              reject(qerr);
              return;
            }
            conn.release();
            resolve(performance.now() - started);
          });
        });
      });
    },
    async replicationPosition() {
      // "kind:server_id:gtid-set", so a wait on the same server (a second address of it) is skipped.
      try {
        const v = await sql<{ v: string; id: number }>`SELECT VERSION() AS v, @@server_id AS id`.execute(db);
        const mariadb = /mariadb/i.test(v.rows[0]?.v ?? '');
        const r = mariadb ? await sql<{ p: string }>`SELECT @@GLOBAL.gtid_binlog_pos AS p`.execute(db) : await sql<{ p: string }>`SELECT @@GLOBAL.gtid_executed AS p`.execute(db);
        const p = r.rows[0]?.p ?? '';
        return p === '' ? null : `${mariadb ? 'mariadb' : 'mysql'}:${v.rows[0]?.id}:${p}`;
      } catch {
        return null;
      }
    },
    async waitForPosition(position, timeoutMs) {
      const m = /^(mariadb|mysql):(\d+):(.*)$/s.exec(position);
      if (!m) return false;
      const self = await sql<{ id: number }>`SELECT @@server_id AS id`.execute(db);
      if (String(self.rows[0]?.id) === m[2]) return true; // the same server under another address
      const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
      // MASTER_GTID_WAIT: 0 reached, -1 timeout; WAIT_FOR_EXECUTED_GTID_SET: 0 reached, 1 timeout.
      const r =
        m[1] === 'mariadb'
          ? await sql<{ r: number }>`SELECT MASTER_GTID_WAIT(${m[3]}, ${seconds}) AS r`.execute(db)
          : await sql<{ r: number }>`SELECT WAIT_FOR_EXECUTED_GTID_SET(${m[3]}, ${seconds}) AS r`.execute(db);
      return Number(r.rows[0]?.r) === 0;
    },
    close() {
      // Kysely ends the pool only if it used it; ping() may have used it alone.
      closed ??= db
        .destroy()
        .catch(() => {})
        .then(() => (ended ? undefined : new Promise<void>((r) => pool.end(() => r()))));
      return closed;
    },
  };
}

/** Runs one statement on the server without choosing a database (CREATE/DROP DATABASE). */
export async function serverQuery(spec: ShardSpec, t: MysqlTuning, sql: string): Promise<unknown> {
  const conn = mysql.createConnection({ ...poolOptions(spec, t, false), connectionLimit: undefined } as mysql.ConnectionOptions);
  conn.on('error', () => {});
  try {
    return await new Promise((resolve, reject) => conn.query({ sql, timeout: t.queryTimeoutMs }, (err, r) => (err ? reject(err) : resolve(r))));
  } finally {
    conn.destroy();
  }
}

/** Creates the shard's database when missing (`parley shards init`). */
export async function createDatabase(spec: ShardSpec, t: MysqlTuning): Promise<void> {
  try {
    await serverQuery(spec, t, `CREATE DATABASE IF NOT EXISTS \`${spec.database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } catch (e) {
    throw new StorageError(`cannot create database ${shardAddress(spec)} (shard ${spec.name}): ${(e as { code?: string }).code ?? String(e)}`, false, { cause: e });
  }
}
