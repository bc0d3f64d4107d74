/** Starting a benchmark server in its own process, with its users, and talking to it. */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { openStorage } from '../../src/storage/open.js';
import { createTestShards, TEST_TUNING, type TestShards } from '../../src/storage/mysql-testing.js';
import { serverQuery } from '../../src/storage/mysql.js';
import type { Database } from '../../src/storage/schema.js';
import type { Storage } from '../../src/storage/storage.js';
import { SqlUserStore } from '../../src/auth/user-store-sql.js';
import { makeCredentials } from '../../src/auth/credentials.js';
import { CONFIG_SCHEMA } from '../../src/modules/index.js';

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
      const entries = shards.specs.map((s): [string, object] => [s.name, { host: s.host, port: s.port, user: s.user, password: s.password, database: s.database }]);
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
      limits: { authTimeout: '120s', messagesPerSecond: 0 }, // routing is measured, not the per-user rate limit
      offline: { maxPerUser: 100000 },
      // Routing and transports are measured without the archive; `mam-pairs` measures what
      // archiving costs by turning it on.
      mam: { enabled: false },
      log: { level: 'warn' },
      ...opts.extra,
    };
    const config = parseConfig(raw, CONFIG_SCHEMA);
    await createUsers(config, opts.users, opts.prefix ?? 'u', opts.prepare);

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

/** Creates users prefix0..prefix(count-1) with PASSWORD in the configured storage. */
async function createUsers(config: ReturnType<typeof parseConfig>, count: number, prefix: string, prepare?: (storage: Storage) => Promise<void>): Promise<void> {
  const storage = await openStorage(config);
  try {
    const users = new SqlUserStore(storage);
    // One credential set reused: the benchmark measures sessions, not key derivation.
    const creds = await makeCredentials(PASSWORD);
    for (let i = 0; i < count; i += 1000) {
      const batch = [];
      for (let k = i; k < Math.min(count, i + 1000); k++) batch.push({ username: `${prefix}${k}`, creds });
      await users.createMany(DOMAIN, batch);
    }
    await prepare?.(storage);
  } finally {
    await storage.close();
  }
}

/** One node of a benchmark cluster (its own process, its own ports). */
export interface BenchNode {
  /** nodeId in the cluster ('n1', 'n2', …), or 'single' without a cluster. */
  name: string;
  child: ChildProcess;
  pid: number;
  /** c2s (plaintext TCP) and HTTP ports on 127.0.0.1. */
  port: number;
  httpPort: number;
  request<T>(cmd: string): Promise<T>;
}

export interface BenchCluster {
  nodes: BenchNode[];
  /** Redis key prefix of this cluster (null without a cluster). */
  prefix: string | null;
  /** Rows of a table in the shared SQLite file (read after the nodes stopped, or meanwhile). */
  countRows(table: keyof Database): Promise<number>;
  /** What each node wrote to stdout/stderr (log level warn), available after stop(). */
  logs: Record<string, string>;
  stop(): Promise<void>;
}

/** What GET /health/ready answers. */
export interface ReadyBody {
  status: string;
  node: string | null;
  sessions: number;
  members: string[] | null;
}

export async function getReady(httpPort: number, host = '127.0.0.1'): Promise<{ status: number; body: ReadyBody | null }> {
  try {
    const res = await fetch(`http://${host}:${httpPort}/health/ready`);
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text) as ReadyBody };
  } catch {
    return { status: 0, body: null };
  }
}

/**
 * `nodes` server processes on one SQLite file (one dataDir) with `count` users. With
 * `cluster: true` they run `cluster.driver: redis` on REDIS_URL with a unique key prefix
 * (parley-bench-<random>), node ids n1..nN and links on loopback, and this returns once
 * every node's GET /health/ready is 200 and lists all N members. Without it (one node
 * only) the server is a plain single process, as in the other benchmarks. Each node
 * has its own c2s and HTTP ports (port 0: picked by the system). stop() stops the nodes
 * (SIGKILL if they hang), deletes the prefix's Redis keys and the data directory; the
 * same happens on SIGINT/SIGTERM.
 */
export async function startBenchCluster(opts: { users: number; nodes: number; cluster: boolean; extra?: Record<string, unknown> }): Promise<BenchCluster> {
  if (!opts.cluster && opts.nodes !== 1) throw new Error('several nodes need cluster: true');
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-cluster-'));
  const prefix = opts.cluster ? `parley-bench-${randomBytes(6).toString('hex')}` : null;
  const children: ChildProcess[] = [];
  const logs: Record<string, string> = {};
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const c of children) c.kill('SIGKILL');
      if (prefix) await deleteRedisKeys(prefix).catch((e: unknown) => console.error(`cluster bench: deleting Redis keys ${prefix}:* failed: ${String(e)}`));
      rmSync(dataDir, { recursive: true, force: true });
      live.delete(cleanup);
    })());
  live.add(cleanup);
  cleanOnSignal();
  try {
    const base = {
      domain: DOMAIN,
      dataDir,
      storage: { driver: 'sqlite' },
      listen: { c2s: { host: '127.0.0.1', port: 0, requireTls: false }, c2sTls: { enabled: false }, http: { host: '127.0.0.1', port: 0 } } as Record<string, unknown>,
      limits: { authTimeout: '120s', messagesPerSecond: 0 }, // routing is measured, not the per-user rate limit
      offline: { maxPerUser: 100000 },
      mam: { enabled: false },
      log: { level: 'warn' },
      ...opts.extra,
    };
    const config = parseConfig(base, CONFIG_SCHEMA);
    await createUsers(config, opts.users, 'u');
    const script = fileURLToPath(new URL('./server-process.js', import.meta.url));
    const nodes = await Promise.all(
      Array.from({ length: opts.nodes }, async (_, k) => {
        const name = opts.cluster ? `n${k + 1}` : 'single';
        const raw = opts.cluster ? { ...base, cluster: { driver: 'redis', url: REDIS_URL, prefix, nodeId: name, secret: BENCH_CLUSTER_SECRET, listen: { host: '127.0.0.1', port: 0 } } } : base;
        const proc = fork(script, [JSON.stringify(raw)], { execArgv: ['--expose-gc', '--max-old-space-size=8192'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
        children.push(proc);
        logs[name] = '';
        const keep = (d: Buffer) => {
          // Warnings and errors only (log level warn); kept whole unless a flood.
          if (logs[name]!.length < 1_000_000) logs[name] += d.toString('utf8');
        };
        proc.stdout!.on('data', keep);
        proc.stderr!.on('data', keep);
        const { port, httpPort } = await new Promise<{ port: number; httpPort: number }>((resolve, reject) => {
          proc.once('message', (m: { port?: number; httpPort?: number }) => (m.port && m.httpPort ? resolve({ port: m.port, httpPort: m.httpPort }) : reject(new Error(`node ${name} did not start`))));
          proc.once('exit', (code) => reject(new Error(`node ${name} exited with ${code}: ${logs[name]}`)));
        });
        const request = <T>(cmd: string) =>
          new Promise<T>((resolve) => {
            proc.once('message', (m) => resolve(m as T));
            proc.send({ cmd });
          });
        return { name, child: proc, pid: proc.pid!, port, httpPort, request } satisfies BenchNode;
      }),
    );
    // Every node ready and seeing every member before anyone logs in.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await Promise.all(nodes.map((n) => getReady(n.httpPort)));
      const ok = r.every((x) => x.status === 200 && (!opts.cluster || (x.body?.members?.length ?? 0) === opts.nodes));
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`nodes not ready after 30 s: ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    let counter: Promise<Storage> | undefined;
    return {
      nodes,
      prefix,
      logs,
      async countRows(table) {
        const handle = await (counter ??= openStorage(config));
        const n = await handle.forEachShard(`count ${table}`, async (db) => {
          const r = await db
            .selectFrom(table as 'archive')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirst();
          return Number(r?.n ?? 0);
        });
        return n.reduce((a, b) => a + b, 0);
      },
      async stop() {
        await Promise.all(nodes.map((n) => Promise.race([n.request('stop'), new Promise((r) => setTimeout(r, 15000))])));
        await counter?.then((s) => s.close()).catch(() => {});
        await cleanup();
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

export const REDIS_URL = process.env.PARLEY_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** cluster.secret of a benchmark cluster (random per run). */
const BENCH_CLUSTER_SECRET = randomBytes(32).toString('base64url');

/** Deletes every Redis key under `prefix:` (KEYS then DEL; a benchmark's prefix holds few keys). */
export async function deleteRedisKeys(prefix: string, url = REDIS_URL): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${prefix}:*`);
    let n = 0;
    for (let i = 0; i < keys.length; i += 1000) n += await redis.del(...keys.slice(i, i + 1000));
    return n;
  } finally {
    redis.disconnect();
  }
}

/**
 * Cleanups of servers on MySQL and of clusters not yet stopped: run on SIGINT/SIGTERM too
 * (servers killed, databases dropped, Redis keys deleted), so an interrupted run leaves
 * nothing behind.
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
