/**
 * A private haproxy for one test, on the configuration deploy/haproxy.cfg comes from
 * (haproxyConfig in src/ops/haproxy-config.ts) with free ports on 127.0.0.1 and no
 * user switch or admin socket. It runs in the foreground (-db) as our child.
 *
 * It never outlives the test process: it is SIGKILLed on the process's 'exit' event, and
 * a small watchdog shell (reading a pipe from us) kills it and removes its directory if
 * the test process dies without running exit handlers (SIGKILL, a crash).
 *
 * @example
 * ```ts
 * test('...', { skip: needHaproxy() }, async () => {  // needHaproxy: ./tools.ts
 *   const hp = await startHaproxy({ nodes: [{ name: 'a', host: '127.0.0.1', c2sPort, httpPort }], checkInterval: 200 });
 *   await hp.waitFor('bosh/a', 'UP');
 *   await fetch(`http://127.0.0.1:${hp.httpPort}/http-bind`);
 *   await hp.stop();
 * });
 * ```
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { haproxyConfig, type HaproxyConfigOptions } from '../../src/ops/haproxy-config.js';
import { killQuietly, spawnWatchdog, trackChild, trackDir, untrackChild, untrackDir } from './reaper.js';

export interface HaproxyOptions extends Partial<Omit<HaproxyConfigOptions, 'nodes' | 'user' | 'adminSocket'>> {
  nodes: HaproxyConfigOptions['nodes'];
}

export interface RunningHaproxy {
  c2sPort: number;
  httpPort: number;
  statsPort: number;
  /** The internal frontend (portal API, admin API, metrics); 0 when left out. */
  internalPort: number;
  /** The configuration it runs. */
  config: string;
  /** The tail of haproxy's output (its log: connections, server state changes, errors). */
  log(): string;
  /** "backend/server" → status from the stats CSV: UP, DOWN, MAINT, "UP 1/3" (going down), "DOWN 1/2" (going up), no check... */
  serverStates(): Promise<Record<string, string>>;
  /** Resolves once "backend/server" has this status (exactly), or rejects after `ms`. */
  waitFor(server: string, status: string, ms?: number): Promise<void>;
  /** SIGTERM (SIGKILL after 3 s), then the temp directory is removed. Idempotent. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const SBIN = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'];

function findHaproxy(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SBIN].filter((d) => d !== '');
  for (const dir of dirs) {
    const p = join(dir, 'haproxy');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** true when the haproxy binary exists on this machine (tests decide through needHaproxy() in tools.ts). */
export function haveHaproxy(): boolean {
  return findHaproxy() !== undefined;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Parses haproxy's stats CSV ("# pxname,svname,...,status,...") into "backend/server" → status, servers only. */
export function parseStatsCsv(csv: string): Record<string, string> {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = (lines.shift() ?? '').replace(/^#\s*/, '').split(',');
  const px = header.indexOf('pxname');
  const sv = header.indexOf('svname');
  const st = header.indexOf('status');
  if (px < 0 || sv < 0 || st < 0) throw new Error(`not a haproxy stats CSV: ${csv.slice(0, 200)}`);
  const out: Record<string, string> = {};
  for (const line of lines) {
    const f = line.split(',');
    if (f[sv] === 'FRONTEND' || f[sv] === 'BACKEND') continue;
    out[`${f[px]}/${f[sv]}`] = f[st] ?? '';
  }
  return out;
}

/** Starts haproxy on `opts` (ports 0 or absent: free ones) and resolves once its HTTP frontend accepts connections. */
export async function startHaproxy(opts: HaproxyOptions): Promise<RunningHaproxy> {
  const bin = findHaproxy();
  if (!bin) throw new Error('haproxy not found (apt-get install haproxy)');

  const c2sPort = opts.c2sPort || (await freePort());
  const httpPort = opts.httpPort || (await freePort());
  const statsPort = opts.statsPort || (await freePort());
  // Never the default 5281: tests run side by side.
  const internalPort = opts.internalPort === 0 ? 0 : opts.internalPort || (await freePort());
  const config = haproxyConfig({ bind: '127.0.0.1', internalBind: '127.0.0.1', ...opts, c2sPort, httpPort, statsPort, internalPort, user: null, adminSocket: null });

  const dir = mkdtempSync(join(tmpdir(), 'parley-haproxy-'));
  trackDir(dir);
  const cfgFile = join(dir, 'haproxy.cfg');
  const childPidFile = join(dir, 'child.pid');
  writeFileSync(cfgFile, config);
  const watchdog = spawnWatchdog(dir, childPidFile);

  // stderr carries haproxy's log (one line per connection, state changes, errors): keep the tail.
  let output = '';
  // haproxy writes no pid file in the foreground (-p is for daemon and master-worker modes): child.pid is ours.
  const child = spawn(bin, ['-f', cfgFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  if (child.pid !== undefined) writeFileSync(childPidFile, String(child.pid));
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      untrackChild(child);
      rmSync(childPidFile, { force: true });
      resolve();
    });
    child.once('error', () => resolve());
  });
  child.unref(); // a test that forgets stop() must not hang; the exit hook kills it
  (child.stdout as unknown as Socket | null)?.unref();
  (child.stderr as unknown as Socket | null)?.unref();

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      killQuietly(child, 'SIGTERM');
      const timer = setTimeout(() => killQuietly(child, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      killQuietly(watchdog, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      untrackDir(dir);
    })());

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await portAccepts(httpPort))) {
    if (spawnError || child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      const why = spawnError ? spawnError.message : child.exitCode !== null || child.signalCode !== null ? `exited (${child.exitCode ?? child.signalCode})` : 'did not listen in time';
      throw new Error(`haproxy ${why}\n${output}\n--- config ---\n${config}`);
    }
    await sleep(20);
  }

  async function serverStates(): Promise<Record<string, string>> {
    const res = await fetch(`http://127.0.0.1:${statsPort}/;csv`);
    if (!res.ok) throw new Error(`haproxy stats: HTTP ${res.status}`);
    return parseStatsCsv(await res.text());
  }

  return {
    c2sPort,
    httpPort,
    statsPort,
    internalPort,
    config,
    log: () => output,
    serverStates,
    async waitFor(server, status, ms = 10_000) {
      const until = Date.now() + ms;
      let last: string | undefined;
      for (;;) {
        last = (await serverStates())[server];
        if (last === status) return;
        if (Date.now() > until) throw new Error(`haproxy: ${server} is ${last ?? 'unknown'} after ${ms} ms, not ${status}\n${output.slice(-3000)}`);
        await sleep(50);
      }
    },
    stop,
  };
}

