/**
 * The portal's own database, for the sql sources of logins and friends
 * (`portal.db`: `mysql://user:pass@host:port/db` through a mysql2 pool, or
 * `sqlite:/path/file.db` through better-sqlite3, opened read-only).
 *
 * Queries are the operator's (`portal.auth.query`, `portal.roster.query`, ...) with named
 * placeholders `:user`, `:password`. SECURITY: values are always bound as parameters,
 * never put into the SQL text: the placeholders are turned into `?` (outside quoted
 * strings and identifiers) and the values passed in order.
 */
import BetterSqlite3 from 'better-sqlite3';
import mysql from 'mysql2';
import type { Pool } from 'mysql2';
import { ParleyError } from '../support/errors.js';

/** The portal's database did not answer (connection, timeout, SQL error). */
export class PortalUnavailable extends ParleyError {
  readonly code = 'PORTAL_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortalUnavailable';
  }
}

export type Row = Record<string, unknown>;

export interface PortalDb {
  /** Runs a query with named parameters; rejects with PortalUnavailable. */
  query(sql: string, params: Record<string, string>): Promise<Row[]>;
  close(): Promise<void>;
}

/**
 * Turns `:name` placeholders into `?` and lists the names in order. Quoted strings
 * ('...', "...", `...`) and comments are left alone; `::` is not a placeholder.
 *
 * @example
 * compileQuery('SELECT 1 FROM u WHERE login = :user AND pw = :password', ['user', 'password']);
 * // { sql: 'SELECT 1 FROM u WHERE login = ? AND pw = ?', names: ['user', 'password'] }
 */
export function compileQuery(text: string, allowed: readonly string[]): { sql: string; names: string[] } {
  let out = '';
  const names: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length) {
        if (text[j] === '\\' && c !== '`') j += 2;
        else if (text[j] === c && text[j + 1] === c) j += 2;
        else if (text[j] === c) break;
        else j++;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === '-' && text[i + 1] === '-') {
      const j = text.indexOf('\n', i);
      const end = j < 0 ? text.length : j;
      out += text.slice(i, end);
      i = end;
      continue;
    }
    if (c === ':' && text[i + 1] === ':') {
      out += '::';
      i += 2;
      continue;
    }
    if (c === ':') {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
      if (m) {
        if (!allowed.includes(m[0])) throw new Error(`unknown placeholder :${m[0]} (allowed: ${allowed.map((a) => ':' + a).join(', ')})`);
        names.push(m[0]);
        out += '?';
        i += 1 + m[0].length;
        continue;
      }
    }
    out += c;
    i++;
  }
  return { sql: out, names };
}

/** Opens `portal.db`. `timeoutMs` bounds each query (and the MySQL connect). */
export function openPortalDb(url: string, timeoutMs: number): PortalDb {
  if (url.startsWith('sqlite:')) return new SqlitePortalDb(url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, ''), timeoutMs);
  if (/^(mysql|mariadb):\/\//.test(url)) return new MysqlPortalDb(url.replace(/^mariadb:/, 'mysql:'), timeoutMs);
  throw new Error(`portal.db: unsupported URL ${url}`);
}

class SqlitePortalDb implements PortalDb {
  #db: BetterSqlite3.Database | null = null;
  readonly #statements = new Map<string, { stmt: BetterSqlite3.Statement; names: string[] }>();

  constructor(
    readonly path: string,
    readonly timeoutMs: number,
  ) {}

  async query(text: string, params: Record<string, string>): Promise<Row[]> {
    try {
      // Opened on first use: the portal's file may appear after Parley starts.
      this.#db ??= new BetterSqlite3(this.path, { readonly: true, fileMustExist: true, timeout: this.timeoutMs });
      let s = this.#statements.get(text);
      if (!s) {
        const { sql, names } = compileQuery(text, Object.keys(params));
        s = { stmt: this.#db.prepare(sql), names };
        this.#statements.set(text, s);
      }
      return s.stmt.all(...s.names.map((n) => params[n])) as Row[];
    } catch (e) {
      throw new PortalUnavailable(`portal database (sqlite): ${(e as Error).message}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    this.#db?.close();
    this.#db = null;
  }
}

class MysqlPortalDb implements PortalDb {
  readonly #pool: Pool;

  constructor(
    url: string,
    readonly timeoutMs: number,
  ) {
    const u = new URL(url);
    this.#pool = mysql.createPool({
      host: u.hostname,
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
      connectionLimit: 8,
      connectTimeout: timeoutMs,
      charset: 'utf8mb4',
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
    // Parley only reads the portal's data: every connection is read-only.
    this.#pool.on('connection', (conn) => {
      conn.query('SET SESSION TRANSACTION READ ONLY');
    });
  }

  query(text: string, params: Record<string, string>): Promise<Row[]> {
    let compiled: { sql: string; names: string[] };
    try {
      compiled = compileQuery(text, Object.keys(params));
    } catch (e) {
      return Promise.reject(new PortalUnavailable(`portal database: ${(e as Error).message}`));
    }
    return new Promise((resolve, reject) => {
      this.#pool.query({ sql: compiled.sql, values: compiled.names.map((n) => params[n]), timeout: this.timeoutMs }, (err, rows) => {
        if (err) reject(new PortalUnavailable(`portal database (mysql): ${err.message}`, { cause: err }));
        else resolve(Array.isArray(rows) ? (rows as Row[]) : []);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#pool.end(() => resolve()));
  }
}
