/**
 * `bench/compare`: Parley against ejabberd and Prosody on the same machine, one server
 * after another, with the same users, scenarios and load generator (`parley loadtest`).
 *
 *   node dist/bench/compare.js [--only s1,s2,s2b,s3,s4] [--servers ejabberd,prosody,parley]
 *                              [--scale 0.1] [--timeScale 0.1] [--merge] [--keep] [--progress]
 *
 * For each server: a fresh private directory, the config from bench/peers/, the users
 * (in-band registration on the peers, `parley user bulk` on Parley), then for each
 * scenario: start the server, make rosters if the scenario needs them and they are not
 * there yet, run the generator with the server's pids (RSS and CPU come from /proc),
 * stop the server. Data stays between the scenarios of one server (users, rosters), never
 * between servers. Writes bench/results/compare.md (one table: a row per scenario and
 * figure, a column per server, Parley ÷ the best peer) and compare.json (every result).
 * With --scale below 1 they are written as compare-trial.{md,json}.
 *
 * ejabberd and Prosody come from Debian (apt-get install when missing, as root). They
 * run by hand on loopback ports of their own, as the Debian users `ejabberd` and
 * `prosody` when started by root, never as the Debian services.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, chmodSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from '../loadtest/coordinator.js';
import { friendsOf } from '../loadtest/scenario.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PEERS = join(ROOT, 'bench', 'peers');
const RESULTS = join(ROOT, 'bench', 'results');
const CLI = join(ROOT, 'bin', 'parley.js');
const DOMAIN = 'bench.test';
const PASSWORD = 'bench-pw';
const IS_ROOT = process.getuid?.() === 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Command line

interface Options {
  only: Set<string>;
  servers: ServerName[];
  scale: number;
  timeScale: number;
  merge: boolean;
  keep: boolean;
  progress: boolean;
  mechanism: 'PLAIN' | 'SCRAM-SHA-1';
}

type ServerName = 'ejabberd' | 'prosody' | 'parley';
const SERVER_ORDER: ServerName[] = ['ejabberd', 'prosody', 'parley'];
const GROUPS = ['s1', 's2', 's2b', 's3', 's4'] as const;

const USAGE = `node dist/bench/compare.js [options]

  --only s1,s2,s2b,s3,s4        scenarios to run (default: all)
  --servers ejabberd,prosody,parley   servers to run (default: all three, in this order)
  --scale F                     users × F (quick trials: 0.05); default 1
  --timeScale F                 durations × F (default: the scale, at least 0.1)
  --merge                       keep results of servers/scenarios not run this time from the
                                previous compare.json
  --keep                        keep the servers' directories (configs, data, logs) in /tmp
  --progress                    show the generator's progress line every second
  --mechanism PLAIN|SCRAM-SHA-1 how the users log in (default PLAIN: the server derives the
                                key at every login; with SCRAM-SHA-1 the client does)`;

function parseOptions(argv: string[]): Options {
  const o: Options = { only: new Set(GROUPS), servers: [...SERVER_ORDER], scale: 1, timeScale: NaN, merge: false, keep: false, progress: false, mechanism: 'PLAIN' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--only') {
      const list = value().split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
      for (const s of list) if (!(GROUPS as readonly string[]).includes(s)) throw new Error(`--only: unknown scenario "${s}" (${GROUPS.join(', ')})`);
      o.only = new Set(list);
    } else if (a === '--servers') {
      const list = value().split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
      for (const s of list) if (!(SERVER_ORDER as string[]).includes(s)) throw new Error(`--servers: unknown server "${s}" (${SERVER_ORDER.join(', ')})`);
      o.servers = SERVER_ORDER.filter((s) => list.includes(s));
    } else if (a === '--scale' || a === '--timeScale') {
      const n = Number(value());
      if (!(n > 0 && n <= 1)) throw new Error(`${a} must be a number in (0, 1]`);
      if (a === '--scale') o.scale = n;
      else o.timeScale = n;
    } else if (a === '--merge') o.merge = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--progress') o.progress = true;
    else if (a === '--mechanism') {
      const m = value().toUpperCase();
      if (m !== 'PLAIN' && m !== 'SCRAM-SHA-1') throw new Error('--mechanism: PLAIN or SCRAM-SHA-1');
      o.mechanism = m;
    }
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument "${a}"\n\n${USAGE}`);
  }
  if (Number.isNaN(o.timeScale)) o.timeScale = Math.max(0.1, o.scale);
  return o;
}

// ---------------------------------------------------------------------------------------
// Scenarios

type Better = 'higher' | 'lower' | 'info';

interface Figure {
  label: string;
  better: Better;
  digits: number;
  get: (r: LoadResult) => number | null;
}

interface ScenarioRun {
  id: string;
  group: (typeof GROUPS)[number];
  title: string;
  users: number;
  first: number;
  /** Friends per user that must exist before the run (0: none). */
  rosterSize: number;
  /** `parley loadtest` flags, besides the server's address, users and pids. */
  flags: Record<string, string | number | boolean>;
  figures: Figure[];
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const phaseAvg = (r: LoadResult, phase: string, key: 'serverCpuPercent' | 'generatorCpuPercent') =>
  avg(r.timeline.filter((s) => s.phase === phase && s[key] !== null).map((s) => s[key]!));

/** Server RSS growth per online session at the end of the idle period (after the generator's own figure, taken right after login). */
function bytesPerSessionAtEnd(r: LoadResult): number | null {
  const last = [...r.timeline].reverse().find((s) => s.phase === 'measure' && s.serverRssBytes !== null);
  if (!last || r.server?.rssBeforeBytes == null || last.online <= 0) return null;
  return (last.serverRssBytes! - r.server.rssBeforeBytes) / last.online;
}

const F = {
  loginsPerSecond: { label: 'logins/s', better: 'higher', digits: 0, get: (r) => r.sessions.loginsPerSecond },
  loginP99: { label: 'login time p99 (ms)', better: 'lower', digits: 0, get: (r) => r.sessions.loginLatencyMs.p99 },
  loginErrors: { label: 'login errors', better: 'lower', digits: 0, get: (r) => r.sessions.loginErrors },
  online: { label: 'sessions online after login', better: 'higher', digits: 0, get: (r) => r.sessions.online },
  bytesIdle: { label: 'server RSS per idle session, right after login (bytes)', better: 'lower', digits: 0, get: (r) => r.server?.bytesPerIdleSession ?? null },
  serverCpuLogin: { label: 'server CPU during login (% of a core)', better: 'lower', digits: 0, get: (r) => phaseAvg(r, 'login', 'serverCpuPercent') },
  generatorCpuLogin: { label: 'generator CPU during login (% of a core)', better: 'info', digits: 0, get: (r) => phaseAvg(r, 'login', 'generatorCpuPercent') },
  delivered: { label: 'delivered msg/s', better: 'higher', digits: 0, get: (r) => r.messages.deliveredPerSecond },
  p50: { label: 'time to delivery p50 (ms)', better: 'lower', digits: 2, get: (r) => r.messages.latencyMs.p50 },
  p99: { label: 'time to delivery p99 (ms)', better: 'lower', digits: 2, get: (r) => r.messages.latencyMs.p99 },
  lost: { label: 'messages lost', better: 'lower', digits: 0, get: (r) => r.messages.lost },
  errors: { label: 'errors (all kinds)', better: 'lower', digits: 0, get: (r) => sum(r.errors) },
  http: { label: 'BOSH HTTP requests/s', better: 'lower', digits: 0, get: (r) => r.httpRequestsPerSecond },
  httpInfo: { label: 'BOSH HTTP requests/s', better: 'info', digits: 0, get: (r) => r.httpRequestsPerSecond },
  // In a closed loop a faster server also makes more requests: per message is the fair figure.
  httpPerMessage: {
    label: 'BOSH HTTP requests per delivered message',
    better: 'lower',
    digits: 2,
    get: (r) => (r.messages.deliveredPerSecond > 0 ? r.httpRequestsPerSecond / r.messages.deliveredPerSecond : null),
  },
  presences: { label: 'presence stanzas received/s', better: 'info', digits: 0, get: (r) => r.presencesPerSecond },
  serverCpu: { label: 'server CPU while measuring (% of a core)', better: 'lower', digits: 0, get: (r) => r.server?.cpuPercentMeasure ?? null },
  generatorCpu: { label: 'generator CPU while measuring (% of a core)', better: 'info', digits: 0, get: (r) => r.generator.cpuPercentMeasure },
  stormBack: { label: 'seconds until all back', better: 'lower', digits: 1, get: (r) => r.storm?.secondsUntilAllBack ?? null },
  // "All back" means every user tried again; this says how many made it.
  onlineAtEnd: {
    label: 'sessions online at the end',
    better: 'higher',
    digits: 0,
    get: (r) => [...r.timeline].reverse().find((s) => s.phase === 'measure')?.online ?? null,
  },
} satisfies Record<string, Figure>;

/**
 * Logins in progress at once. Offered faster than a server can take them, logins queue
 * inside it until they time out (ejabberd then fell to ~30 logins/s): with a bound, each
 * server is measured at its own pace.
 */
const LOGIN_CONCURRENCY = 200;

function scenarios(o: Options): ScenarioRun[] {
  const users = (n: number, min = 10) => Math.max(min, Math.round(n * o.scale));
  const ms = (full: number, min: number) => Math.max(min, Math.round(full * o.timeScale));
  const s1Users = users(10_000);
  const s1Idle = ms(40_000, 3000);
  const s2Users = users(5000, 20);
  const s2Pairs = Math.max(5, Math.round(500 * o.scale));
  const s3Users = users(5000, 20);
  const s3Roster = Math.min(50, (s3Users - 1) & ~1);
  const s4Users = users(2000);
  const s4Roster = Math.min(10, (s4Users - 1) & ~1);
  const stormAt = ms(5000, 1000);
  const stormWithin = ms(3000, 1000);
  // Logins are offered faster than any of the three can take them on two cores (Parley's
  // own bench: ~700/s), so the rate measured is the server's.
  const s1 = (transport: 'bosh' | 'tcp'): ScenarioRun => ({
    id: `s1-${transport}`,
    group: 's1',
    title: `S1 idle, ${transport === 'bosh' ? 'BOSH' : 'TCP'}: ${s1Users.toLocaleString('en-US')} users log in and stay idle ${s1Idle / 1000} s`,
    users: s1Users,
    first: 1,
    rosterSize: 0,
    flags: { transports: `${transport}:1`, loginRate: 2000, loginConcurrency: LOGIN_CONCURRENCY, messagesPerMinute: 0, warmup: '1s', duration: `${s1Idle}ms`, drain: '1s' },
    figures: [
      F.loginsPerSecond,
      F.online,
      F.loginP99,
      F.loginErrors,
      F.bytesIdle,
      { label: `server RSS per idle session after ${s1Idle / 1000 + 1} s idle (bytes)`, better: 'lower', digits: 0, get: bytesPerSessionAtEnd },
      F.serverCpuLogin,
      F.generatorCpuLogin,
    ],
  });
  const s2 = (transport: 'tcp' | 'bosh'): ScenarioRun => ({
    id: transport === 'tcp' ? 's2' : 's2b',
    group: transport === 'tcp' ? 's2' : 's2b',
    title: `S2${transport === 'tcp' ? '' : 'b'} throughput, ${transport === 'tcp' ? 'TCP' : 'BOSH'}: ${s2Users.toLocaleString('en-US')} online, ${s2Pairs} pairs with 10 messages in flight each, ${ms(30_000, 3000) / 1000} s`,
    users: s2Users,
    first: 1,
    rosterSize: 0,
    flags: { transports: `${transport}:1`, loginRate: 1000, loginConcurrency: LOGIN_CONCURRENCY, pairs: s2Pairs, window: 10, warmup: `${ms(5000, 1000)}ms`, duration: `${ms(30_000, 3000)}ms`, drain: '5s' },
    figures: [F.delivered, F.p50, F.p99, F.lost, F.errors, ...(transport === 'bosh' ? [F.httpPerMessage, F.httpInfo] : []), F.serverCpu, F.generatorCpu],
  });
  const out: ScenarioRun[] = [
    s1('bosh'),
    s1('tcp'),
    s2('tcp'),
    s2('bosh'),
    {
      id: 's3',
      group: 's3',
      title: `S3 web: ${s3Users.toLocaleString('en-US')} BOSH users with ${s3Roster} friends, a presence change and a message per user per minute, ${ms(60_000, 3000) / 1000} s`,
      users: s3Users,
      first: 1,
      rosterSize: s3Roster,
      flags: { transports: 'bosh:1', loginRate: 1000, loginConcurrency: LOGIN_CONCURRENCY, rosterSize: s3Roster, presencePerMinute: 1, messagesPerMinute: 1, warmup: `${ms(10_000, 1000)}ms`, duration: `${ms(60_000, 3000)}ms`, drain: '5s' },
      figures: [F.http, F.p50, F.p99, F.lost, F.presences, F.errors, F.serverCpu, F.generatorCpu],
    },
    {
      // Its own users (after S3's), so S3's rosters and S4's offline messages never meet.
      id: 's4',
      group: 's4',
      title: `S4 reconnect storm: ${s4Users.toLocaleString('en-US')} TCP users with ${s4Roster} friends and 30 messages per user per minute all drop at ${stormAt / 1000} s and log in again within ${stormWithin / 1000} s (clients ack with stream management where the server offers it)`,
      users: s4Users,
      first: s3Users + 1,
      rosterSize: s4Roster,
      flags: {
        transports: 'tcp:1',
        loginRate: 1000,
        loginConcurrency: LOGIN_CONCURRENCY,
        rosterSize: s4Roster,
        messagesPerMinute: 30,
        reconnectUsers: s4Users,
        // As mobile and desktop clients do: acks, so that what a server wrote into a
        // connection that was already dead is known to be undelivered (XEP-0198).
        streamManagement: true,
        reconnectAt: `${stormAt}ms`,
        reconnectWithin: `${stormWithin}ms`,
        warmup: `${ms(2000, 1000)}ms`,
        duration: `${Math.max(ms(20_000, 3000), stormAt + stormWithin + 5000)}ms`,
        drain: '10s',
      },
      figures: [F.stormBack, F.onlineAtEnd, F.errors, F.lost, F.p99, F.serverCpu, F.generatorCpu],
    },
  ];
  return out.filter((s) => o.only.has(s.group));
}

// ---------------------------------------------------------------------------------------
// Processes

/** Runs a command to its end, or kills its process group after `timeoutMs`. */
function runCommand(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string; echo?: boolean; inheritStderr?: boolean; uid?: number; gid?: number },
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    if (aborting) {
      resolve({ code: null, stdout: '', stderr: 'aborted', timedOut: false });
      return;
    }
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', opts.inheritStderr ? 'inherit' : 'pipe'],
      uid: opts.uid,
      gid: opts.gid,
    });
    tracked.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.echo) process.stdout.write(d.toString().replace(/^(?=.)/gm, '      '));
    });
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 5000).unref();
    }, opts.timeoutMs);
    child.on('error', (e) => {
      stderr += String(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      tracked.delete(child);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** Children started here, so Ctrl-C or a crash stops them too (each is a group leader). */
const tracked = new Set<ChildProcess>();
/** Set by Ctrl-C / SIGTERM: nothing new is started, the run winds down and writes what it has. */
let aborting = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function waitPorts(ports: number[], child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening`);
    const open = await Promise.all(ports.map(portOpen));
    if (open.every(Boolean)) return;
    await sleep(250);
  }
  throw new Error(`ports ${ports.join(', ')} not open after ${ms / 1000} s`);
}

/** Before a start: the previous process must have let go of the ports, or we would measure it. */
async function waitPortsFree(ports: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const open = await Promise.all(ports.map(portOpen));
    if (!open.some(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`ports ${ports.filter((_, i) => open[i]).join(', ')} still in use`);
    await sleep(250);
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}

function userIds(name: string): { uid: number; gid: number } | null {
  try {
    return { uid: Number(execFileSync('id', ['-u', name]).toString()), gid: Number(execFileSync('id', ['-g', name]).toString()) };
  } catch {
    return null;
  }
}

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------
// Servers

interface Running {
  pids: number[];
  stop(): Promise<void>;
}

interface Server {
  name: ServerName;
  label: string;
  tcpPort: number;
  httpPort: number;
  boshPath: string;
  wsPath: string;
  /** Extra ports that must be free (ejabberd's Erlang distribution port). */
  otherPorts: number[];
  /** Why it cannot run here, or null. */
  unavailable(): string | null;
  version(): string;
  /** Copies the config into `dir` (empty), creates the accounts that need no server. */
  prepare(dir: string, users: number): Promise<void>;
  start(dir: string): Promise<Running>;
  /** In-band registration needs the server running. */
  registersUsers: boolean;
  /**
   * Writes the rosters straight into the server's storage while it is stopped, for a
   * server on which `parley loadtest rosters` cannot see its own progress.
   */
  writeRosters?(dir: string, first: number, users: number, size: number): void;
}

/** Starts a server process in its own group; stop() asks it politely, then forces. */
function daemon(
  label: string,
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; log: string; uid?: number; gid?: number },
): ChildProcess {
  if (aborting) throw new Error('aborted');
  const fd = openSync(opts.log, 'a');
  // Node gives its children the soft open-files limit it started with (often 1024), not
  // the hard one: every server gets the machine's hard limit, as an operator would set.
  const child = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', cmd, ...args], {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdio: ['ignore', fd, fd],
    uid: opts.uid,
    gid: opts.gid,
  });
  closeSync(fd);
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  child.once('error', (e) => console.error(`  ${label}: ${e.message}`));
  return child;
}

async function stopDaemon(label: string, child: ChildProcess, politely: () => Promise<void>): Promise<void> {
  await politely();
  if (await waitExit(child, 30_000)) return;
  console.error(`  ${label} did not stop within 30 s: killing it`);
  killGroup(child, 'SIGKILL');
  await waitExit(child, 5000);
}

const ejabberd: Server = {
  name: 'ejabberd',
  label: 'ejabberd',
  tcpPort: 25222,
  httpPort: 25280,
  boshPath: '/bosh',
  wsPath: '/ws',
  otherPorts: [25299],
  registersUsers: true,
  unavailable() {
    if (!existsSync('/usr/sbin/ejabberdctl')) return 'ejabberdctl not found (apt-get install ejabberd)';
    // ejabberdctl runs the node as its install user; only root (or that user) may start it.
    if (!IS_ROOT) return 'ejabberdctl runs only as root (it switches to the ejabberd user) or as the ejabberd user';
    return null;
  },
  version: () => version('dpkg-query', ['-W', '-f=${Version}', 'ejabberd']),
  async prepare(dir) {
    copyFileSync(join(PEERS, 'ejabberd.yml'), join(dir, 'ejabberd.yml'));
    mkdirSync(join(dir, 'spool'));
    mkdirSync(join(dir, 'log'));
    const ids = userIds('ejabberd');
    if (!ids) throw new Error('no ejabberd user');
    chownTree(dir, ids.uid, ids.gid);
  },
  async start(dir) {
    const ctl = (cmd: string) => [
      '--ctl-config', join(PEERS, 'ejabberdctl.cfg'),
      '--config', join(dir, 'ejabberd.yml'),
      '--spool', join(dir, 'spool'),
      '--logs', join(dir, 'log'),
      cmd,
    ];
    // Started as the ejabberd user itself: as root, ejabberdctl would switch users with
    // `su`, whose PAM session resets the open-files limit to 1024 (ejabberd then stops
    // accepting at about 1,000 sessions).
    const ids = userIds('ejabberd')!;
    const env = { ...process.env, BENCH_RUN_DIR: dir, HOME: dir };
    rmSync(join(dir, 'ejabberd.pid'), { force: true });
    await waitPortsFree([this.tcpPort, this.httpPort, ...this.otherPorts], 15_000);
    const child = daemon('ejabberd', '/usr/sbin/ejabberdctl', ctl('foreground'), { cwd: dir, env, log: join(dir, 'ejabberd.out'), uid: ids.uid, gid: ids.gid });
    try {
      await waitPorts([this.tcpPort, this.httpPort], child, 90_000);
    } catch (e) {
      killGroup(child, 'SIGKILL');
      throw new Error(`ejabberd: ${(e as Error).message}\n${tail(join(dir, 'ejabberd.out'))}\n${tail(join(dir, 'log', 'ejabberd.log'))}`);
    }
    // The node writes its own pid (EJABBERD_PID_PATH in ejabberdctl.cfg): beam.smp.
    let pid = 0;
    for (let i = 0; i < 50 && !pid; i++) {
      const p = Number(existsSync(join(dir, 'ejabberd.pid')) ? readFileSync(join(dir, 'ejabberd.pid'), 'utf8').trim() : 0);
      if (p > 0 && commOf(p).startsWith('beam')) pid = p;
      else await sleep(100);
    }
    if (!pid) throw new Error('ejabberd: no beam.smp pid in ejabberd.pid');
    return {
      pids: [pid],
      stop: () =>
        stopDaemon('ejabberd', child, async () => {
          const r = await runCommand('/usr/sbin/ejabberdctl', ctl('stop'), { timeoutMs: 60_000, env, cwd: dir, uid: ids.uid, gid: ids.gid });
          if (r.code !== 0) {
            console.error(`  ejabberdctl stop: ${r.code} ${r.stdout}${r.stderr}; sending SIGTERM`);
            try {
              process.kill(pid, 'SIGTERM');
            } catch {
              // gone
            }
          }
        }),
    };
  },
};

const prosody: Server = {
  name: 'prosody',
  label: 'Prosody',
  tcpPort: 25322,
  httpPort: 25380,
  boshPath: '/http-bind',
  wsPath: '/xmpp-websocket',
  otherPorts: [],
  registersUsers: true,
  unavailable() {
    if (!existsSync('/usr/bin/prosody')) return 'prosody not found (apt-get install prosody)';
    if (IS_ROOT && !userIds('prosody')) return 'no prosody user (Prosody refuses to run as root)';
    return null;
  },
  version: () => version('dpkg-query', ['-W', '-f=${Version}', 'prosody']),
  // Prosody sends an inbound `subscribed` only to resources that fetched the roster
  // (RFC 6121 "interested resources"); the generator's clients never fetch it, so
  // `loadtest rosters` makes every friendship on Prosody but never sees one confirmed and
  // waits for its deadline. The same rosters go straight into Prosody's file storage
  // instead, in the format Prosody writes itself (data/<host>/roster/<user>.dat).
  writeRosters(dir, first, users, size) {
    const rosterDir = join(dir, 'data', DOMAIN.replace(/\./g, '%2e'), 'roster');
    mkdirSync(rosterDir, { recursive: true });
    const ids = IS_ROOT ? userIds('prosody') : null;
    for (let i = 0; i < users; i++) {
      const items = friendsOf(i, users, size)
        .map((f) => `\t["user${first + f}@${DOMAIN}"] = {\n\t\t["subscription"] = "both";\n\t\t["groups"] = {};\n\t};\n`)
        .join('');
      const file = join(rosterDir, `user${first + i}.dat`);
      writeFileSync(file, `return {\n\t[false] = {\n\t\t["version"] = 1;\n\t\t["pending"] = {};\n\t};\n${items}};\n`);
      if (ids) chownSync(file, ids.uid, ids.gid);
    }
    if (ids) chownTree(join(dir, 'data'), ids.uid, ids.gid);
  },
  async prepare(dir) {
    copyFileSync(join(PEERS, 'prosody.cfg.lua'), join(dir, 'prosody.cfg.lua'));
    mkdirSync(join(dir, 'data'));
    mkdirSync(join(dir, 'certs'));
    if (IS_ROOT) {
      const ids = userIds('prosody')!;
      chownTree(dir, ids.uid, ids.gid);
    }
  },
  async start(dir) {
    // As root: as the prosody user, as Debian's service runs it (mod_posix refuses root).
    const ids = IS_ROOT ? userIds('prosody')! : undefined;
    const env = { ...process.env, BENCH_RUN_DIR: dir, HOME: dir };
    await waitPortsFree([this.tcpPort, this.httpPort], 15_000);
    const child = daemon('prosody', '/usr/bin/prosody', ['-F', '--config', join(dir, 'prosody.cfg.lua')], {
      cwd: dir,
      env,
      log: join(dir, 'prosody.out'),
      ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
    });
    try {
      await waitPorts([this.tcpPort, this.httpPort], child, 60_000);
    } catch (e) {
      killGroup(child, 'SIGKILL');
      throw new Error(`prosody: ${(e as Error).message}\n${tail(join(dir, 'prosody.out'))}\n${tail(join(dir, 'prosody.log'))}`);
    }
    // /usr/bin/prosody is a script run by `env lua5.4`, which execs: the child is the lua process.
    const pid = child.pid!;
    if (!commOf(pid).startsWith('lua')) throw new Error(`prosody: pid ${pid} is "${commOf(pid)}", not lua`);
    return {
      pids: [pid],
      stop: () => stopDaemon('prosody', child, async () => void child.kill('SIGTERM')),
    };
  },
};

const parley: Server = {
  name: 'parley',
  label: 'Parley',
  tcpPort: 25422,
  httpPort: 25480,
  boshPath: '/http-bind',
  wsPath: '/xmpp-websocket',
  otherPorts: [],
  registersUsers: false,
  unavailable: () => (existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')) ? null : 'not built (npm run build)'),
  version: () => (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
  async prepare(dir, users) {
    copyFileSync(join(PEERS, 'parley.yaml'), join(dir, 'parley.yaml'));
    const r = await runCommand(
      process.execPath,
      [CLI, 'user', 'bulk', '--prefix', 'user', '--count', String(users), '--password', PASSWORD, '--config', join(dir, 'parley.yaml')],
      { timeoutMs: 600_000 },
    );
    if (r.code !== 0) throw new Error(`parley user bulk: ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout}${r.stderr}`);
    console.log(`  ${r.stdout.trim()}`);
  },
  async start(dir) {
    await waitPortsFree([this.tcpPort, this.httpPort], 15_000);
    const child = daemon('parley', process.execPath, [CLI, 'start', '--config', join(dir, 'parley.yaml')], { cwd: dir, env: process.env, log: join(dir, 'parley.out') });
    try {
      await waitPorts([this.tcpPort, this.httpPort], child, 60_000);
    } catch (e) {
      killGroup(child, 'SIGKILL');
      throw new Error(`parley: ${(e as Error).message}\n${tail(join(dir, 'parley.out'))}`);
    }
    return {
      pids: [child.pid!],
      // SIGTERM: streams closed with system-shutdown, undelivered messages stored.
      stop: () => stopDaemon('parley', child, async () => void child.kill('SIGTERM')),
    };
  },
};

const SERVERS: Record<ServerName, Server> = { ejabberd, prosody, parley };

// ---------------------------------------------------------------------------------------
// Generator

let mechanism: Options['mechanism'] = 'PLAIN';

function loadtestArgs(server: Server, users: number, first: number): string[] {
  return [
    '--host', '127.0.0.1',
    '--domain', DOMAIN,
    '--tcpPort', String(server.tcpPort),
    '--httpPort', String(server.httpPort),
    '--boshPath', server.boshPath,
    '--wsPath', server.wsPath,
    '--users', String(users),
    '--first', String(first),
    '--prefix', 'user',
    '--password', PASSWORD,
    '--mechanism', mechanism,
  ];
}

async function registerUsers(server: Server, users: number): Promise<void> {
  const r = await runCommand(process.execPath, [CLI, 'loadtest', 'register', ...loadtestArgs(server, users, 1), '--no-progress'], { timeoutMs: Math.max(120_000, users * 50) });
  if (r.code !== 0) throw new Error(`registering users: ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout}${r.stderr}`);
  console.log(`  ${r.stdout.trim()}`);
}

/** A few users log in over TCP, BOSH and WebSocket and exchange messages: all three paths work. */
async function smoke(server: Server, pids: number[], dir: string): Promise<string> {
  const json = join(dir, 'smoke.json');
  const r = await runCommand(
    process.execPath,
    [CLI, 'loadtest', 'run', ...loadtestArgs(server, 9, 1), '--transports', 'tcp:1,bosh:1,websocket:1', '--messagesPerMinute', '120', '--warmup', '500ms', '--duration', '2s', '--drain', '2s', '--serverPids', pids.join(','), '--json', json, '--no-progress'],
    { timeoutMs: 60_000 },
  );
  if (r.code !== 0 || !existsSync(json)) throw new Error(`smoke test (9 users over TCP, BOSH, WebSocket): loadtest exited ${r.code}\n${r.stdout}${r.stderr}`);
  const res = JSON.parse(readFileSync(json, 'utf8')) as LoadResult;
  const problems = [
    res.sessions.online < 9 ? `${res.sessions.online}/9 logged in` : '',
    res.messages.delivered === 0 ? 'no message delivered' : '',
    res.messages.lost > 0 ? `${res.messages.lost} messages lost` : '',
    sum(res.errors) > 0 ? `errors ${JSON.stringify(res.errors)}` : '',
  ].filter(Boolean);
  if (problems.length) throw new Error(`smoke test (9 users over TCP, BOSH, WebSocket): ${problems.join('; ')}`);
  return `smoke test: 9 users logged in over TCP, BOSH (${server.boshPath}) and WebSocket (${server.wsPath}), ${res.messages.delivered}/${res.messages.sent} messages delivered`;
}

async function makeRosters(server: Server, users: number, first: number, size: number): Promise<void> {
  const r = await runCommand(
    process.execPath,
    [CLI, 'loadtest', 'rosters', ...loadtestArgs(server, users, first), '--rosterSize', String(size), '--transports', 'tcp:1', '--loginRate', '500', '--no-progress'],
    // The generator gives up after max(60 s, users × size × 2 ms); this only guards against a hang.
    { timeoutMs: Math.max(60_000, users * size * 2) + users * 10 + 120_000 },
  );
  if (r.code !== 0) throw new Error(`rosters: ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout}${r.stderr}`);
  console.log(`  ${r.stdout.trim()}`);
}

function durationMs(v: string | number | undefined): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v ?? '0ms');
  return m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000) : 0;
}

async function runScenario(server: Server, sc: ScenarioRun, pids: number[], dir: string, o: Options): Promise<LoadResult> {
  const json = join(dir, `${sc.id}.json`);
  const flags = Object.entries(sc.flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const loginRate = Number(sc.flags.loginRate ?? 200);
  const budget =
    (sc.users / Math.min(loginRate, 50)) * 1000 +
    durationMs(sc.flags.warmup as string | number | undefined) +
    durationMs(sc.flags.duration as string | number | undefined) +
    durationMs(sc.flags.drain as string | number | undefined) +
    (sc.flags.reconnectUsers ? 120_000 : 0) +
    120_000;
  const r = await runCommand(
    process.execPath,
    [CLI, 'loadtest', 'run', ...loadtestArgs(server, sc.users, sc.first), ...flags, '--name', `${server.name} ${sc.id}`, '--serverPids', pids.join(','), '--json', json, o.progress ? '--progress' : '--no-progress'],
    { timeoutMs: budget, echo: true, inheritStderr: true },
  );
  if (r.code !== 0 || !existsSync(json)) throw new Error(`loadtest exited ${r.code}${r.timedOut ? ` (timed out after ${Math.round(budget / 1000)} s)` : ''}`);
  return JSON.parse(readFileSync(json, 'utf8')) as LoadResult;
}

// ---------------------------------------------------------------------------------------
// Report

interface Stored {
  date: string;
  machine: { cpus: string; memoryGiB: number; loadAverageAtStart: number[] };
  options: { scale: number; timeScale: number; mechanism?: string };
  versions: Record<string, string>;
  scenarios: Record<string, { title: string }>;
  /** results[server][scenario] */
  results: Partial<Record<ServerName, Record<string, LoadResult | { failed: string }>>>;
  skipped: Partial<Record<ServerName, string>>;
  /** What the smoke test before the scenarios saw, per server. */
  smoke: Partial<Record<ServerName, string>>;
}

const fmt = (n: number | null | undefined, d = 0) =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

function ratioCell(fig: Figure, parley: number | null, peers: Array<number | null>): string {
  if (fig.better === 'info' || parley === null) return '';
  const known = peers.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length === 0) return '';
  const best = fig.better === 'higher' ? Math.max(...known) : Math.min(...known);
  // A memory delta can fall below zero when a collection returns more than the sessions
  // took (small runs): no meaningful ratio then.
  if (best < 0 || parley < 0) return 'n/a (negative)';
  if (best === 0 && parley === 0) return 'same (0)';
  if (best === 0) return fig.better === 'lower' ? `worse (${fmt(parley, fig.digits)} vs 0)` : 'better (peers 0)';
  const ratio = parley / best;
  const better = fig.better === 'higher' ? ratio > 1 : ratio < 1;
  const same = Math.abs(ratio - 1) < 0.005;
  return `${ratio.toFixed(2)}×${same ? '' : better ? ' better' : ' worse'}`;
}

function markdown(st: Stored, list: ScenarioRun[]): string {
  const servers = SERVER_ORDER;
  const peers = servers.filter((s) => s !== 'parley');
  const lines: string[] = [];
  const scaled = st.options.scale !== 1 || st.options.timeScale !== 1;
  const plain = (st.options.mechanism ?? 'PLAIN') === 'PLAIN';
  const flags = `${scaled ? ` --scale ${st.options.scale} --timeScale ${st.options.timeScale}` : ''}${plain ? '' : ` --mechanism ${st.options.mechanism}`}`;
  lines.push(`# Parley against ejabberd and Prosody${scaled ? ` (TRIAL: users × ${st.options.scale}, durations × ${st.options.timeScale})` : ''}`);
  lines.push('');
  lines.push(`Run ${st.date} by \`node dist/bench/compare.js${flags}\` on ${st.machine.cpus}, ${st.machine.memoryGiB} GiB; load average at start ${st.machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')}.`);
  lines.push(`Versions: ${Object.entries(st.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  lines.push('');
  lines.push(
    'Same machine, one server at a time, each on a fresh data directory; the generator (`parley loadtest`) runs on the same cores, so its CPU is shown: near 100 % per worker it, not the server, may be the limit. ' +
      'All three: domain `bench.test`, plaintext on loopback, stored SCRAM keys with 4096 iterations (ejabberd and Prosody keep SCRAM-SHA-1 keys; Parley keeps SHA-1 and SHA-256 keys), ' +
      (plain
        ? 'users log in with SASL PLAIN, so the server derives a key with PBKDF2 at every login (Parley checks PLAIN against its SHA-256 keys), '
        : 'users log in with SASL SCRAM-SHA-1, so the client derives the key and the server only checks a proof, ') +
      'roster and offline storage on, no MAM, no rate limits or shapers, stream management only in S4 (where the server offers it: ejabberd and Parley; Prosody 0.12 has none); ' +
      'ejabberd on Mnesia, Prosody on its file storage with the generational GC, Parley on SQLite. Configs: `bench/peers/`. ' +
      'The server is restarted before each scenario (so memory figures start from a fresh process); users and rosters stay between scenarios of one server.',
  );
  lines.push('');
  lines.push('"Parley ÷ best peer" divides Parley\'s figure by the best of ejabberd\'s and Prosody\'s (the higher or the lower, as the figure wants); "better"/"worse" says which way it goes. CPU is in % of one core (200 % = both cores).');
  lines.push('');
  lines.push(`| scenario | figure | ${servers.map((s) => SERVERS[s].label).join(' | ')} | Parley ÷ best peer |`);
  lines.push(`| --- | --- | ${servers.map(() => '---:').join(' | ')} | --- |`);
  const notes: string[] = [];
  for (const sc of list) {
    const title = st.scenarios[sc.id]?.title ?? sc.id;
    sc.figures.forEach((fig, k) => {
      const values = servers.map((s) => {
        const r = st.results[s]?.[sc.id];
        if (!r || 'failed' in r) return null;
        return fig.get(r);
      });
      const cells = servers.map((s, i) => {
        const r = st.results[s]?.[sc.id];
        if (!r) return st.skipped[s] ? 'skipped' : 'not run';
        if ('failed' in r) return 'failed';
        return fmt(values[i], fig.digits);
      });
      const arrow = fig.better === 'higher' ? ' ↑' : fig.better === 'lower' ? ' ↓' : '';
      const parleyValue = values[servers.indexOf('parley')] ?? null;
      const peerValues = peers.map((p) => values[servers.indexOf(p)] ?? null);
      lines.push(`| ${k === 0 ? title : ''} | ${fig.label}${arrow} | ${cells.join(' | ')} | ${ratioCell(fig, parleyValue, peerValues)} |`);
    });
    for (const s of servers) {
      const r = st.results[s]?.[sc.id];
      if (r && 'failed' in r) notes.push(`- ${SERVERS[s].label}, ${sc.id}: failed: ${r.failed.split('\n')[0]}`);
      if (r && !('failed' in r)) {
        const errs = Object.entries(r.errors);
        if (errs.length) notes.push(`- ${SERVERS[s].label}, ${sc.id}: errors ${errs.map(([k, v]) => `${k} ${v}`).join(', ')}`);
        if (r.sessions.online < r.sessions.target) notes.push(`- ${SERVERS[s].label}, ${sc.id}: ${r.sessions.online} of ${r.sessions.target} sessions online after login`);
      }
    }
  }
  lines.push('');
  lines.push('↑ higher is better, ↓ lower is better.');
  for (const [s, why] of Object.entries(st.skipped)) notes.push(`- ${SERVERS[s as ServerName].label} skipped: ${why}`);
  for (const [s, line] of Object.entries(st.smoke)) notes.push(`- ${SERVERS[s as ServerName].label}: ${line}`);
  if (notes.length) {
    lines.push('');
    lines.push('Notes:');
    lines.push('');
    lines.push(...notes);
  }
  lines.push('');
  lines.push(`Raw results (every figure the generator reports, and its per-second timeline): \`${resultsName(st.options)}.json\` beside this file.`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------
// Installation

async function ensureInstalled(servers: ServerName[]): Promise<void> {
  const missing = [
    servers.includes('ejabberd') && !existsSync('/usr/sbin/ejabberdctl') ? 'ejabberd' : null,
    servers.includes('prosody') && !existsSync('/usr/bin/prosody') ? 'prosody' : null,
  ].filter((x): x is string => x !== null);
  if (missing.length === 0) return;
  if (!IS_ROOT) {
    console.error(`missing: ${missing.join(' ')}. Install them with: sudo apt-get install -y ${missing.join(' ')} (they are skipped this time)`);
    return;
  }
  // Debian starts a package's service on install; policy-rc.d (exit 101) stops that, so
  // nothing takes 5222/5280 behind our back. Only ours is removed afterwards.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) {
    writeFileSync(policy, '#!/bin/sh\n# written by parley bench/compare for the time of an apt-get install\nexit 101\n');
    chmodSync(policy, 0o755);
  }
  try {
    console.log(`installing ${missing.join(' ')} from apt ...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { timeoutMs: 600_000, env });
    if (r.code !== 0) {
      await runCommand('apt-get', ['update'], { timeoutMs: 300_000, env });
      r = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { timeoutMs: 600_000, env });
    }
    if (r.code !== 0) console.error(`apt-get install failed (${r.code}):\n${r.stderr.slice(-2000)}`);
    else console.log(`installed ${missing.join(' ')} (Debian enables their services for the next boot: systemctl disable ejabberd prosody if unwanted)`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Main

/** compare, compare-trial (scaled down), compare-scram[-trial] (SCRAM-SHA-1 logins). */
function resultsName(o: { scale: number; timeScale: number; mechanism?: string }): string {
  const trial = o.scale !== 1 || o.timeScale !== 1;
  return `compare${(o.mechanism ?? 'PLAIN') === 'PLAIN' ? '' : '-scram'}${trial ? '-trial' : ''}`;
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  mechanism = o.mechanism;
  const list = scenarios(o);
  if (list.length === 0) throw new Error('no scenario selected');
  await ensureInstalled(o.servers);

  const base = join(RESULTS, resultsName(o));
  const previous: Stored | null = o.merge && existsSync(`${base}.json`) ? (JSON.parse(readFileSync(`${base}.json`, 'utf8')) as Stored) : null;
  const st: Stored = {
    date: new Date().toISOString(),
    machine: { cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`, memoryGiB: Math.round(totalmem() / 2 ** 30), loadAverageAtStart: loadavg() },
    options: { scale: o.scale, timeScale: o.timeScale, mechanism: o.mechanism },
    versions: { ...(previous?.versions ?? {}), node: process.version },
    scenarios: { ...(previous?.scenarios ?? {}) },
    results: previous?.results ?? {},
    skipped: {},
    smoke: { ...(previous?.smoke ?? {}) },
  };
  for (const sc of list) st.scenarios[sc.id] = { title: sc.title };

  const usersNeeded = Math.max(...list.map((s) => s.first + s.users - 1));
  const tmp = mkdtempSync(join(tmpdir(), 'parley-compare-'));
  // The peers run as their Debian users: they must be able to walk into their directories.
  chmodSync(tmp, 0o755);
  console.log(`compare: ${list.map((s) => s.id).join(', ')} on ${o.servers.join(', ')}; ${usersNeeded} users each; scale ${o.scale}, time scale ${o.timeScale}; working in ${tmp}`);

  let stored = 0;
  const write = () => {
    if (stored === 0 && Object.keys(st.skipped).length === 0) return; // nothing new: keep the previous files
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(`${base}.json`, JSON.stringify(st, null, 2) + '\n');
    const all = scenarios({ ...o, only: new Set(GROUPS) }).filter((s) => s.id in st.scenarios && SERVER_ORDER.some((n) => st.results[n]?.[s.id]));
    writeFileSync(`${base}.md`, markdown(st, all));
  };

  try {
    for (const name of o.servers) {
      if (aborting) break;
      const server = SERVERS[name];
      const why = server.unavailable();
      if (why) {
        console.log(`\n== ${server.label}: skipped: ${why}`);
        st.skipped[name] = why;
        continue;
      }
      const busy = [];
      for (const p of [server.tcpPort, server.httpPort, ...server.otherPorts]) if (await portOpen(p)) busy.push(p);
      if (busy.length) {
        const msg = `port(s) ${busy.join(', ')} already in use: another process would be measured`;
        console.log(`\n== ${server.label}: skipped: ${msg}`);
        st.skipped[name] = msg;
        continue;
      }
      st.versions[name] = server.version();
      console.log(`\n== ${server.label} ${st.versions[name]}`);
      const dir = join(tmp, name);
      mkdirSync(dir);
      const results = (st.results[name] ??= {});
      const rostersDone = new Set<string>();
      // Setup in a process of its own, so no scenario is measured on a server that has
      // just registered thousands of users: the accounts, then a login over each
      // transport (checks the ports and paths).
      let setup: Running | null = null;
      try {
        await server.prepare(dir, usersNeeded);
        setup = await server.start(dir);
        if (server.registersUsers) await registerUsers(server, usersNeeded);
        st.smoke[name] = await smoke(server, setup.pids, dir);
        console.log(`  ${st.smoke[name]}`);
      } catch (e) {
        const msg = (e as Error).message;
        if (!aborting) st.skipped[name] = `setup failed: ${msg.split('\n')[0]}`;
        console.error(`  ${server.label}: setup failed: ${msg}`);
        continue;
      } finally {
        if (setup) await setup.stop();
      }
      for (const sc of list) {
        if (aborting) break;
        console.log(`  -- ${sc.title}`);
        let running: Running | null = null;
        try {
          const rosterKey = `${sc.first}:${sc.users}:${sc.rosterSize}`;
          if (sc.rosterSize > 0 && server.writeRosters && !rostersDone.has(rosterKey)) {
            server.writeRosters(dir, sc.first, sc.users, sc.rosterSize);
            rostersDone.add(rosterKey);
            console.log(`  rosters: ${sc.users} users with ${sc.rosterSize} friends written to ${server.label}'s storage`);
          }
          running = await server.start(dir);
          if (sc.rosterSize > 0 && !rostersDone.has(rosterKey)) {
            await makeRosters(server, sc.users, sc.first, sc.rosterSize);
            rostersDone.add(rosterKey);
            // A fresh process for the measurement, as for every other scenario.
            await running.stop();
            running = null;
            await sleep(1000);
            running = await server.start(dir);
          }
          await sleep(2000); // let startup work (caches, GC) settle before the baseline
          results[sc.id] = await runScenario(server, sc, running.pids, dir, o);
          stored++;
        } catch (e) {
          const msg = (e as Error).message;
          console.error(`  ${server.label} ${sc.id} failed: ${msg}`);
          if (!aborting) {
            results[sc.id] = { failed: msg };
            stored++;
          }
        } finally {
          if (running) await running.stop();
        }
        write();
        if (!aborting) await sleep(2000);
      }
    }
  } finally {
    write();
    if (o.keep) console.log(`\nkept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
  if (stored === 0 && Object.keys(st.skipped).length === 0) {
    console.log('\nnothing measured: results files left as they were');
    return 1;
  }
  console.log(`\nwritten: ${base}.md, ${base}.json\n`);
  console.log(readFileSync(`${base}.md`, 'utf8'));
  return 0;
}

/**
 * Ctrl-C / SIGTERM: the generator and the server get SIGTERM (servers shut down cleanly
 * on it), the run stops starting anything and writes what it has; whatever is still
 * running 30 s later is killed.
 */
function abort(sig: NodeJS.Signals): void {
  if (aborting) return;
  aborting = true;
  console.error(`\ncompare: ${sig}: stopping what was started`);
  for (const c of tracked) killGroup(c, 'SIGTERM');
  setTimeout(() => {
    for (const c of tracked) killGroup(c, 'SIGKILL');
    process.exit(130);
  }, 30_000).unref();
}
process.on('SIGINT', abort);
process.on('SIGTERM', abort);

main().then(
  (code) => (process.exitCode = aborting ? 130 : code),
  (e: unknown) => {
    console.error(`compare: ${e instanceof Error ? e.message : String(e)}`);
    for (const c of tracked) killGroup(c, 'SIGKILL');
    process.exitCode = 1;
  },
);
