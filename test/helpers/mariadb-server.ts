/**
 * A private MariaDB server for one test: its own data directory under the system temp
 * directory, a free TCP port on 127.0.0.1, and root with an empty password. The test
 * owns the whole process, so it can kill it (a crashed database host), stop it with
 * SIGSTOP (a frozen host) and start it again on the same port and data.
 *
 * The first start in a process runs mariadb-install-db into a template directory; every
 * server gets a copy of it, so later starts skip the initialisation.
 *
 * The server never outlives the test process: every child is SIGKILLed on the process's
 * 'exit' event, and a small watchdog shell per instance (reading a pipe from us) kills
 * the server and removes its data directory if the test process dies without running
 * exit handlers (SIGKILL, a crash).
 *
 * @example
 * ```ts
 * const db = await startPrivateMariadb();
 * const conn = await mysql.createConnection({ host: db.host, port: db.port, user: 'root', password: '' });
 * await db.kill();    // connections now fail
 * await db.restart(); // same port, same data
 * await db.destroy();
 * ```
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants, cpSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import mysql from 'mysql2/promise';
import { killQuietly, spawnWatchdog, trackChild, trackDir, untrackChild, untrackDir } from './reaper.js';

export interface PrivateMariadb {
  /** Always '127.0.0.1'. */
  readonly host: string;
  /** A free TCP port picked at start (or the one asked for). */
  readonly port: number;
  readonly dataDir: string;
  /** SIGKILL the server (simulates a crashed DB host); resolves when the process is gone and the port refuses connections. */
  kill(): Promise<void>;
  /** SIGSTOP the server process (simulates a frozen host). */
  freeze(): void;
  /** SIGCONT the server process. */
  thaw(): void;
  /** Start again on the same port and data dir (after kill); resolves when it accepts connections and `SELECT 1` works. */
  restart(): Promise<void>;
  /** Kill and delete the data dir. Idempotent. */
  destroy(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const KILL_TIMEOUT_MS = 10_000;

/** The first executable called `name` in the given directories, or undefined. */
function findExecutable(name: string, extraDirs: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs].filter((d) => d !== '');
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin'];

function binaries(): { mariadbd: string; installDb: string } | undefined {
  const mariadbd = findExecutable('mariadbd', SBIN);
  const installDb = findExecutable('mariadb-install-db', SBIN);
  return mariadbd && installDb ? { mariadbd, installDb } : undefined;
}

/** true when mariadbd and mariadb-install-db exist on this machine. */
export function privateMariadbAvailable(): boolean {
  return binaries() !== undefined;
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

async function freePort(): Promise<number> {
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

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${tail(String(stdout) + String(stderr))}`));
      else resolve();
    });
  });
}

function tail(text: string, chars = 3000): string {
  return text.length > chars ? '…' + text.slice(-chars) : text;
}

function readTail(file: string): string {
  try {
    return tail(readFileSync(file, 'utf8'));
  } catch {
    return '(no log)';
  }
}

/** Resolves true when something accepts a TCP connection on the port, false when it is refused. */
function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(true)); // a hung connect means the port is not refused
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const userArgs = asRoot ? ['--user=root'] : [];
// Small InnoDB files and buffers: the data directory is ~34 MB and initialises in under a second.
const sizing = ['--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M', '--skip-log-bin'];

let template: Promise<string> | undefined;

/**
 * A data directory initialised once per process by mariadb-install-db (~0.45 s), copied
 * for every server (~0.08 s). Root logs in with an empty password (auth method "normal").
 */
function initialisedTemplate(installDb: string): Promise<string> {
  template ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-mariadb-template-'));
    trackDir(dir);
    const watchdog = spawnWatchdog(dir, join(dir, 'child.pid'));
    try {
      await run(installDb, [
        '--no-defaults',
        ...userArgs,
        `--datadir=${dir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        ...sizing,
      ]);
      return dir;
    } catch (err) {
      killQuietly(watchdog, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      untrackDir(dir);
      throw err;
    }
  })().catch((err: unknown) => {
    template = undefined; // the next start tries again
    throw err;
  });
  return template;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a private MariaDB server on a fresh copy of the initialised data directory and
 * resolves once `SELECT 1` works. Root logs in over TCP on 127.0.0.1 with an empty password.
 */
/** `extraArgs` go last on mariadbd's command line (e.g. ['--log-bin', '--server-id=2'] for replication). */
export async function startPrivateMariadb(opts: { port?: number; extraArgs?: string[] } = {}): Promise<PrivateMariadb> {
  const bins = binaries();
  if (!bins) throw new Error('mariadbd / mariadb-install-db not found (apt-get install mariadb-server)');

  const dataDir = mkdtempSync(join(tmpdir(), 'parley-mariadb-'));
  trackDir(dataDir);
  const socketPath = join(dataDir, 'mysqld.sock');
  const logFile = join(dataDir, 'server.log');
  const childPidFile = join(dataDir, 'child.pid');
  const host = '127.0.0.1';
  const mariadbd = bins.mariadbd;

  const watchdog = spawnWatchdog(dataDir, childPidFile);

  let child: ChildProcess | undefined;
  let destroyed = false;

  const cleanupDir = (): void => {
    killQuietly(watchdog, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    untrackDir(dataDir);
  };

  try {
    cpSync(await initialisedTemplate(bins.installDb), dataDir, { recursive: true });
  } catch (err) {
    cleanupDir();
    throw err;
  }

  const port = opts.port ?? (await freePort());

  function spawnServer(): ChildProcess {
    const fd = openSync(logFile, 'a');
    let c: ChildProcess;
    try {
      c = spawn(
        mariadbd,
        [
          '--no-defaults',
          ...userArgs,
          `--datadir=${dataDir}`,
          `--port=${port}`,
          `--bind-address=${host}`,
          `--socket=${socketPath}`,
          `--pid-file=${join(dataDir, 'mysqld.pid')}`,
          '--skip-name-resolve',
          ...sizing,
          '--max-connections=200',
          ...(opts.extraArgs ?? []),
        ],
        { stdio: ['ignore', fd, fd] },
      );
    } finally {
      closeSync(fd);
    }
    trackChild(c);
    if (c.pid !== undefined) writeFileSync(childPidFile, String(c.pid));
    c.once('exit', () => {
      untrackChild(c);
      try {
        if (readFileSync(childPidFile, 'utf8') === String(c.pid)) rmSync(childPidFile, { force: true });
      } catch {
        // already removed
      }
    });
    c.once('error', (err) => {
      spawnError = err;
      untrackChild(c);
    });
    c.unref(); // a test that forgets destroy() must not hang; the exit hook kills it
    return c;
  }

  let rootFixed = false;
  let spawnError: Error | undefined;

  /** Lets root in over TCP with an empty password, through the unix socket (for installs where root@localhost is unix_socket only). */
  async function fixRootOverSocket(): Promise<void> {
    const client = findExecutable('mariadb', SBIN) ?? findExecutable('mysql', SBIN);
    if (!client) throw new Error('root cannot log in over TCP and no mariadb client is installed to fix it');
    await run(client, [
      '--no-defaults',
      '--protocol=socket',
      `--socket=${socketPath}`,
      '-uroot',
      '-e',
      "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; " +
        "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ''; " +
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;",
    ]);
  }

  async function waitReady(c: ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = '';
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`cannot start ${mariadbd}: ${spawnError.message}`);
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`mariadbd exited (${c.exitCode ?? c.signalCode}) before it was ready\n${readTail(logFile)}`);
      }
      try {
        const conn = await mysql.createConnection({ host, port, user: 'root', password: '', connectTimeout: 2000 });
        try {
          await conn.query({ sql: 'SELECT 1', timeout: 2000 });
          return;
        } finally {
          conn.destroy();
        }
      } catch (err) {
        const e = err as { errno?: number; message?: string };
        lastError = e.message ?? String(err);
        if (e.errno === 1045 && !rootFixed) {
          rootFixed = true;
          await fixRootOverSocket();
          continue;
        }
      }
      await sleep(50);
    }
    throw new Error(`mariadbd on port ${port} not ready after ${READY_TIMEOUT_MS} ms (last error: ${lastError})\n${readTail(logFile)}`);
  }

  async function start(): Promise<void> {
    spawnError = undefined;
    const c = spawnServer();
    child = c;
    try {
      await waitReady(c);
    } catch (err) {
      await killChild();
      throw err;
    }
  }

  async function killChild(): Promise<void> {
    const c = child;
    child = undefined;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.ref(); // keep the loop alive while we wait for the exit
      c.kill('SIGKILL');
      await exited;
    }
    const deadline = Date.now() + KILL_TIMEOUT_MS;
    while (await portAccepts(port)) {
      if (Date.now() > deadline) throw new Error(`port ${port} still accepts connections after mariadbd was killed`);
      await sleep(20);
    }
  }

  function signal(sig: NodeJS.Signals): void {
    if (!child || child.exitCode !== null || child.signalCode !== null) throw new Error(`mariadbd is not running (cannot send ${sig})`);
    child.kill(sig);
    // Return only once the kernel shows the new state (every thread stopped, or running
    // again), so a query sent right after a freeze cannot be answered.
    const want = sig === 'SIGSTOP' ? /^[tT]$/ : /^[^tT]$/;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 200; i++) {
      if (want.test(processState(child.pid!))) return;
      Atomics.wait(pause, 0, 0, 5);
    }
    throw new Error(`mariadbd did not reach the state ${sig} asks for`);
  }

  /** The state letter of /proc/PID/stat (R, S, T...), '' when it cannot be read. */
  function processState(pid: number): string {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return '';
    }
  }

  try {
    await start();
  } catch (err) {
    cleanupDir();
    throw err;
  }

  return {
    host,
    port,
    dataDir,
    kill: killChild,
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    async restart() {
      if (destroyed) throw new Error('private MariaDB was destroyed');
      if (child && child.exitCode === null && child.signalCode === null) throw new Error('mariadbd is still running; kill() it first');
      await start();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await killChild();
      cleanupDir();
    },
  };
}
