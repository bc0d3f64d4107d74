/** Starting a benchmark server in its own process, with its users, and talking to it. */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.js';
import { openStorage } from '../../src/storage/open.js';
import type { Storage } from '../../src/storage/storage.js';
import { SqlUserStore } from '../../src/auth/user-store-sql.js';
import { makeCredentials } from '../../src/auth/credentials.js';

export const DOMAIN = 'bench.test';
export const PASSWORD = 'benchpw';

export interface BenchServer {
  child: ChildProcess;
  port: number;
  httpPort: number | undefined;
  pid: number;
  request<T>(cmd: string): Promise<T>;
  stop(): Promise<void>;
}

export interface MemReport {
  mem: NodeJS.MemoryUsage;
  cpu: NodeJS.CpuUsage;
  sessions: number;
}

/** Creates `count` users (prefix1..) in a fresh data directory and starts a server on it. */
export async function startBenchServer(opts: {
  users: number;
  prefix?: string;
  extra?: Record<string, unknown>;
  /** Fills the database before the server starts (e.g. an archive, written in bulk). */
  prepare?: (storage: Storage) => Promise<void>;
}): Promise<BenchServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-'));
  const raw = {
    domain: DOMAIN,
    dataDir,
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
  await storage.close();

  const script = fileURLToPath(new URL('./server-process.js', import.meta.url));
  const child = fork(script, [JSON.stringify(raw)], { execArgv: ['--expose-gc', '--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port, httpPort } = await new Promise<{ port: number; httpPort?: number }>((resolve, reject) => {
    child.once('message', (m: { port?: number; httpPort?: number }) => (m.port ? resolve({ port: m.port, httpPort: m.httpPort }) : reject(new Error('server did not start'))));
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const request = <T>(cmd: string) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send({ cmd });
    });
  return {
    child,
    port,
    httpPort,
    pid: child.pid!,
    request,
    async stop() {
      await Promise.race([request('stop'), new Promise((r) => setTimeout(r, 15000))]);
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
