/** Starting a benchmark server in its own process, with its users, and talking to it. */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { openStorage } from '../../src/storage/open.js';
import { createTestShards, TEST_TUNING, type TestShards } from '../../src/storage/mysql-testing.js';
import { serverQuery } from '../../src/storage/mysql.js';
import type { Database } from '../../src/storage/schema.js';
import type { Storage } from '../../src/storage/storage.js';
import { SqlUserStore } from '../../src/auth/user-store-sql.js';
import { makeCredentials } from '../../src/auth/credentials.js';

export const DOMAIN = 'bench.test';
export const PASSWORD = 'benchpw';

/**
 * Where the benchmark server keeps its data: a SQLite file in its temp directory (the
 * default), or `shards` throw-away MySQL databases (`createTestShards`, on the local
 * MariaDB unless PARLEY_TEST_MYSQL_* say otherwise), dropped when the server stops.
 */
export type BenchStorage = { driver: 'sqlite' } | { driver: 'mysql'; shards: number };

/** Rows of a table: in all, and per database (shard). */
export interface RowCount {
  total: number;
  perShard: Record<string, number>;
}

export interface BenchServer {
  child: ChildProcess;
  port: number;
  httpPort: number | undefined;
  pid: number;
  /** 'sqlite', or 'mysql, 2 shards'. */
  storage: string;
  request<T>(cmd: string): Promise<T>;
  /**
   * Counts the rows of tables while the server runs, through a second storage handle on
   * its databases (opened at the first call, closed by stop()).
   */
  countRows<K extends keyof Database>(tables: K[]): Promise<Record<K, RowCount>>;
  /**
   * CPU time (ms, user + system) of the MySQL server process so far, when it runs on this
   * machine and /proc shows it; null with SQLite (its work is in the server's own CPU).
   * The whole mariadbd: other clients of it count too.
   */
  databaseCpuMs(): number | null;
  stop(): Promise<void>;
}

export interface MemReport {
  mem: NodeJS.MemoryUsage;
  cpu: NodeJS.CpuUsage;
  sessions: number;
}

/**
 * Creates `count` users (prefix1..) in a fresh data directory and starts a server on it.
 * With `storage: { driver: 'mysql', shards: n }` it first creates n throw-away databases
 * and writes their shard map into the data directory; stop() (or a failure to start)
 * drops them.
 */
export async function startBenchServer(opts: {
  users: number;
  prefix?: string;
  extra?: Record<string, unknown>;
  /** Fills the database before the server starts (e.g. an archive, written in bulk). */
  prepare?: (storage: Storage) => Promise<void>;
  /** Default: SQLite. */
  storage?: BenchStorage;
}): Promise<BenchServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-'));
  let shards: TestShards | undefined;
  let child: ChildProcess | undefined;
  let counter: Promise<Storage> | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      child?.kill('SIGKILL');
      await counter?.then((s) => s.close()).catch(() => {});
      await shards?.drop();
      rmSync(dataDir, { recursive: true, force: true });
      live.delete(cleanup);
    })());

  try {
    let storageRaw: Record<string, unknown> = { driver: 'sqlite' };
    let label = 'sqlite';
    let dbPid: number | null = null;
    if (opts.storage?.driver === 'mysql') {
      live.add(cleanup);
      cleanOnSignal();
      shards = await createTestShards(opts.storage.shards);
      // The shard map file the configuration points at, as an operator would write it.
      const file = join(dataDir, 'shards.yaml');
      const entries = shards.specs.map((s) => [s.name, { host: s.host, port: s.port, user: s.user, password: s.password, database: s.database }]);
      writeFileSync(file, stringify({ directory: shards.map.directory, shards: Object.fromEntries(entries) }));
      storageRaw = { driver: 'mysql', mysql: { shardMap: file } };
      label = `mysql, ${shards.specs.length} shard${shards.specs.length === 1 ? '' : 's'}`;
      dbPid = await localServerPid(shards);
    }
    const raw = {
      domain: DOMAIN,
      dataDir,
      storage: storageRaw,
      listen: { c2s: { port: 0, requireTls: false }, c2sTls: { enabled: false }, http: { enabled: false } } as Record<string, unknown>,
      limits: { authTimeout: '120s' },
      offline: { maxPerUser: 100000 },
      // Routing and transports are measured without the archive; `mam-pairs` measures what
      // archiving costs by turning it on.
      mam: { enabled: false },
      log: { level: 'warn' },
      ...opts.extra,
    };
    const config = parseConfig(raw);
    const storage = await openStorage(config);
    try {
      const users = new SqlUserStore(storage);
      const prefix = opts.prefix ?? 'u';
      // One credential set reused: the benchmark measures sessions, not key derivation.
      const creds = await makeCredentials(PASSWORD);
      for (let i = 0; i < opts.users; i += 1000) {
        const batch = [];
        for (let k = i; k < Math.min(opts.users, i + 1000); k++) batch.push({ username: `${prefix}${k}`, creds });
        await users.createMany(DOMAIN, batch);
      }
      await opts.prepare?.(storage);
    } finally {
      await storage.close();
    }

    const script = fileURLToPath(new URL('./server-process.js', import.meta.url));
    const proc = (child = fork(script, [JSON.stringify(raw)], { execArgv: ['--expose-gc', '--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const { port, httpPort } = await new Promise<{ port: number; httpPort?: number }>((resolve, reject) => {
      proc.once('message', (m: { port?: number; httpPort?: number }) => (m.port ? resolve({ port: m.port, httpPort: m.httpPort }) : reject(new Error('server did not start'))));
      proc.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const request = <T>(cmd: string) =>
      new Promise<T>((resolve) => {
        proc.once('message', (m) => resolve(m as T));
        proc.send({ cmd });
      });
    return {
      child: proc,
      port,
      httpPort,
      pid: proc.pid!,
      storage: label,
      request,
      async countRows<K extends keyof Database>(tables: K[]) {
        const handle = await (counter ??= openStorage(config));
        const out = {} as Record<K, RowCount>;
        for (const table of tables) {
          const counts = await handle.forEachShard(`count ${table}`, async (db, shard) => {
            // (Typed as one table: kysely cannot pick the overload for a table type parameter.)
            const r = await db
              .selectFrom(table as 'archive')
              .select((eb) => eb.fn.countAll<number>().as('n'))
              .executeTakeFirst();
            return [shard, Number(r?.n ?? 0)] as const;
          });
          out[table] = { total: counts.reduce((a, [, n]) => a + n, 0), perShard: Object.fromEntries(counts) };
        }
        return out;
      },
      databaseCpuMs: () => (dbPid === null ? null : processCpuMs(dbPid)),
      async stop() {
        await Promise.race([request('stop'), new Promise((r) => setTimeout(r, 15000))]);
        await cleanup();
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * Cleanups of servers on MySQL not yet stopped: run on SIGINT/SIGTERM too (server killed,
 * databases dropped), so an interrupted run leaves no test databases behind.
 */
const live = new Set<() => Promise<void>>();
let signalsHooked = false;
function cleanOnSignal(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void Promise.allSettled([...live].map((c) => c())).finally(() => process.exit(130));
    });
  }
}

/** The pid of the MySQL server holding the shards, when it runs on this machine (its pid file is readable). */
async function localServerPid(shards: TestShards): Promise<number | null> {
  const spec = shards.specs[0]!;
  if (!['127.0.0.1', 'localhost', '::1'].includes(spec.host)) return null;
  try {
    const rows = (await serverQuery(spec, TEST_TUNING, 'SELECT @@pid_file AS f')) as Array<{ f: string }>;
    const pid = Number(readFileSync(rows[0]!.f, 'utf8').trim());
    return Number.isInteger(pid) && processCpuMs(pid) !== null ? pid : null;
  } catch {
    return null;
  }
}

/** user + system CPU of a process from /proc/PID/stat, in ms (clock ticks of 10 ms, Linux's USER_HZ). */
function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
