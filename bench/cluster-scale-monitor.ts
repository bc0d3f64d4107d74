/**
 * The helper of bench/cluster-bosh-scale.sh (compiled to dist/bench/):
 *
 *   ready  --ports P1,P2,.. --members N [--timeout S]
 *          waits until every node's GET /health/ready is 200 and lists N members.
 *   sample --supervisor PID --ports P1,.. --gen-pids FILE --out FILE [--interval S]
 *          every S seconds (default 2) appends one JSON line: per node (found as the
 *          children of `parley start --nodes`, by their --node-index) its pid, sessions
 *          and members from /health/ready, RSS and CPU time from /proc; and the RSS and
 *          CPU time of the load generator (the pids listed in FILE, one a line, and all
 *          their descendants), and of Redis with --redis-pid PID. Stops on SIGTERM, or
 *          when the supervisor is gone.
 *   report --dir DIR --nodes N --users U
 *          reads DIR/samples.jsonl and DIR/lt-<i>.json (loadtest --json of node i) and
 *          prints the figures as Markdown: sessions per node and in all, RSS per node and
 *          per session, server CPU while logging in and while idle, the generator's RSS
 *          and CPU, logins/s, errors.
 */
import { appendFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import type { LoadResult } from '../loadtest/coordinator.js';

const TICKS = 100; // USER_HZ on Linux

interface ProcFig {
  rss: number;
  /** CPU seconds (user + system). */
  cpu: number;
}

function proc(pid: number): ProcFig | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    return { rss, cpu: (Number(fields[11]) + Number(fields[12])) / TICKS };
  } catch {
    return null;
  }
}

/** pid → ppid of every process. */
function parents(): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      m.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  return m;
}

function descendants(roots: number[], pp: Map<number, number>): number[] {
  const out = new Set(roots.filter((p) => pp.has(p)));
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of pp) {
      if (!out.has(pid) && out.has(ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out];
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

async function ready(port: number): Promise<{ status: number; sessions: number | null; members: number | null }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { sessions?: number; members?: string[] | null };
    return { status: res.status, sessions: body.sessions ?? null, members: body.members?.length ?? null };
  } catch {
    return { status: 0, sessions: null, members: null };
  }
}

export interface Sample {
  t: number;
  nodes: Array<{ index: number; pid: number | null; status: number; sessions: number | null; members: number | null; rss: number | null; cpu: number | null }>;
  gen: { processes: number; rss: number; cpu: number };
  /** The Redis server, when its pid was given (it runs on this machine). */
  redis?: ProcFig | null;
  /** CPU seconds all cores spent busy so far (/proc/stat). */
  busy?: number;
}

function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / TICKS;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cmdReady(ports: number[], members: number, timeoutS: number): Promise<number> {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const r = await Promise.all(ports.map((p) => ready(p)));
    if (r.every((x) => x.status === 200 && x.members === members)) {
      console.log(`all ${ports.length} nodes ready, ${members} members each`);
      return 0;
    }
    if (Date.now() > deadline) {
      console.error(`nodes not ready after ${timeoutS} s: ${JSON.stringify(r)}`);
      return 1;
    }
    await sleep(250);
  }
}

async function cmdSample(supervisor: number, ports: number[], genFile: string, out: string, intervalS: number, redisPid: number | null): Promise<number> {
  let stop = false;
  process.on('SIGTERM', () => (stop = true));
  process.on('SIGINT', () => (stop = true));
  while (!stop) {
    const t = Date.now();
    const pp = parents();
    if (!pp.has(supervisor)) break;
    const byIndex = new Map<number, number>();
    for (const [pid, ppid] of pp) {
      if (ppid !== supervisor) continue;
      const args = cmdline(pid);
      const k = args.indexOf('--node-index');
      if (k >= 0) byIndex.set(Number(args[k + 1]), pid);
    }
    const health = await Promise.all(ports.map((p) => ready(p)));
    const nodes = ports.map((_, k) => {
      const pid = byIndex.get(k + 1) ?? null;
      const p = pid === null ? null : proc(pid);
      return { index: k + 1, pid, status: health[k]!.status, sessions: health[k]!.sessions, members: health[k]!.members, rss: p?.rss ?? null, cpu: p?.cpu ?? null };
    });
    const roots = existsSync(genFile)
      ? readFileSync(genFile, 'utf8')
          .split('\n')
          .map(Number)
          .filter((n) => n > 0)
      : [];
    const gen = { processes: 0, rss: 0, cpu: 0 };
    for (const pid of descendants(roots, pp)) {
      const p = proc(pid);
      if (!p) continue;
      gen.processes++;
      gen.rss += p.rss;
      gen.cpu += p.cpu;
    }
    appendFileSync(out, JSON.stringify({ t, nodes, gen, redis: redisPid ? proc(redisPid) : null, busy: machineBusy() } satisfies Sample) + '\n');
    const wait = t + intervalS * 1000 - Date.now();
    for (let w = 0; w < wait && !stop; w += 100) await sleep(Math.min(100, wait - w));
  }
  return 0;
}

const f = (n: number | null | undefined, d = 0) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const mb = (b: number | null | undefined) => (b === null || b === undefined ? '–' : f(b / 1048576));

function cmdReport(dir: string, nodes: number, users: number): number {
  const samples: Sample[] = readFileSync(`${dir}/samples.jsonl`, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Sample);
  const runs: Array<LoadResult | null> = Array.from({ length: nodes }, (_, k) => {
    const file = `${dir}/lt-${k + 1}.json`;
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as LoadResult) : null;
  });
  const lines: string[] = [];
  const missing = runs.map((r, k) => (r ? null : k + 1)).filter((x) => x !== null);
  if (missing.length) lines.push(`**No loadtest result for node(s) ${missing.join(', ')}** (the generator failed or was stopped; see its output).`, '');
  const done = runs.filter((r): r is LoadResult => r !== null);
  if (done.length === 0 || samples.length === 0) {
    console.log(lines.join('\n') || 'no results');
    return 1;
  }
  // Phases in wall-clock time, from each run's timeline.
  const at = (r: LoadResult, phase: string, which: 'first' | 'last') => {
    const tl = r.timeline.filter((s) => s.phase === phase);
    const s = which === 'first' ? tl[0] : tl[tl.length - 1];
    return s ? Date.parse(r.startedAt) + s.t * 1000 : NaN;
  };
  const loginStart = Math.min(...done.map((r) => Date.parse(r.startedAt)));
  const loginEnd = Math.max(...done.map((r) => Date.parse(r.startedAt) + r.sessions.loginSeconds * 1000 + 2000));
  const idleStart = Math.max(...done.map((r) => at(r, 'measure', 'first')));
  const idleEnd = Math.min(...done.map((r) => at(r, 'measure', 'last')));
  const before = [...samples].reverse().find((s) => s.t <= loginStart) ?? samples[0]!;
  const inIdle = samples.filter((s) => s.t >= idleStart && s.t <= idleEnd);
  const idleA = inIdle[0];
  const idleB = inIdle[inIdle.length - 1];
  const total = (s: Sample) => s.nodes.reduce((a, n) => a + (n.sessions ?? 0), 0);
  const peak = samples.reduce((best, s) => (total(s) > total(best) ? s : best), samples[0]!);
  const loginA = samples.find((s) => s.t >= loginStart) ?? samples[0]!;
  const loginB = [...samples].reverse().find((s) => s.t <= loginEnd) ?? samples[samples.length - 1]!;
  const cpuPct = (a: Sample, b: Sample, k: number) => {
    const x = a.nodes[k]!;
    const y = b.nodes[k]!;
    if (x.cpu === null || y.cpu === null || x.pid !== y.pid || b.t <= a.t) return null;
    return ((y.cpu - x.cpu) / ((b.t - a.t) / 1000)) * 100;
  };
  const restarts = new Set<number>();
  for (let i = 1; i < samples.length; i++) for (let k = 0; k < nodes; k++) if (samples[i]!.nodes[k]!.pid !== samples[i - 1]!.nodes[k]!.pid) restarts.add(k + 1);

  const online = done.reduce((a, r) => a + r.sessions.online, 0);
  const loginErrors = done.reduce((a, r) => a + r.sessions.loginErrors, 0);
  const errors: Record<string, number> = {};
  for (const r of done) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  const loginSeconds = (Math.max(...done.map((r) => Date.parse(r.startedAt) + r.sessions.loginSeconds * 1000)) - loginStart) / 1000;
  const idleSeconds = (idleEnd - idleStart) / 1000;

  lines.push(
    `- users: ${f(users)}; logged in (generators' count): ${f(online)}; login errors ${f(loginErrors)}${Object.keys(errors).length ? ` (${Object.entries(errors).map(([k, v]) => `${k} ${f(v)}`).join(', ')})` : ''}`,
    `- logins took ${f(loginSeconds, 1)} s for all nodes together: ${f(online / loginSeconds)} logins/s (per generator: ${done.map((r) => f(r.sessions.loginsPerSecond)).join(', ')}; login p50 ${done.map((r) => f(r.sessions.loginLatencyMs.p50)).join('/')} ms, p99 ${done.map((r) => f(r.sessions.loginLatencyMs.p99)).join('/')} ms)`,
    `- all online and idle together for ${f(idleSeconds, 0)} s (the overlap of the generators' measured windows); sessions at the peak sample: ${f(total(peak))} (${peak.nodes.map((n) => f(n.sessions)).join(' + ')})`,
    `- BOSH HTTP requests while idle: ${f(done.reduce((a, r) => a + r.httpRequestsPerSecond, 0))}/s in all (held requests renewed when their wait expires)`,
    restarts.size ? `- **node(s) restarted during the run: ${[...restarts].join(', ')}**` : `- no node restarted`,
    '',
    '| node | sessions (/health/ready, idle) | RSS before login (MB) | RSS idle (MB) | bytes per session | CPU during login | CPU idle |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  let rssBefore = 0;
  let rssIdle = 0;
  let sessIdle = 0;
  let cpuLogin = 0;
  let cpuIdle = 0;
  for (let k = 0; k < nodes; k++) {
    const b = before.nodes[k]!;
    const i = idleB?.nodes[k];
    const s = i?.sessions ?? null;
    const per = b.rss !== null && i?.rss != null && s ? (i.rss - b.rss) / s : null;
    const cl = cpuPct(loginA, loginB, k);
    const ci = idleA && idleB ? cpuPct(idleA, idleB, k) : null;
    rssBefore += b.rss ?? 0;
    rssIdle += i?.rss ?? 0;
    sessIdle += s ?? 0;
    cpuLogin += cl ?? 0;
    cpuIdle += ci ?? 0;
    lines.push(`| ${k + 1} | ${f(s)} | ${mb(b.rss)} | ${mb(i?.rss)} | ${f(per)} | ${f(cl)}% | ${f(ci)}% |`);
  }
  lines.push(`| all | ${f(sessIdle)} | ${mb(rssBefore)} | ${mb(rssIdle)} | ${f(sessIdle ? (rssIdle - rssBefore) / sessIdle : null)} | ${f(cpuLogin)}% | ${f(cpuIdle)}% |`, '');
  const gA = loginA.gen;
  const gB = loginB.gen;
  const genLogin = loginB.t > loginA.t ? ((gB.cpu - gA.cpu) / ((loginB.t - loginA.t) / 1000)) * 100 : null;
  const genIdle = idleA && idleB && idleB.t > idleA.t ? ((idleB.gen.cpu - idleA.gen.cpu) / ((idleB.t - idleA.t) / 1000)) * 100 : null;
  const genPeak = samples.reduce((a, s) => Math.max(a, s.gen.rss), 0);
  const rA = loginA.redis;
  const rB = loginB.redis;
  const redisLogin = rA && rB && loginB.t > loginA.t ? ((rB.cpu - rA.cpu) / ((loginB.t - loginA.t) / 1000)) * 100 : null;
  const redisIdle = idleA?.redis && idleB?.redis && idleB.t > idleA.t ? ((idleB.redis.cpu - idleA.redis.cpu) / ((idleB.t - idleA.t) / 1000)) * 100 : null;
  const busyPct = (a: Sample | undefined, b: Sample | undefined) => (a?.busy !== undefined && b?.busy !== undefined && b.t > a.t ? ((b.busy - a.busy) / ((b.t - a.t) / 1000)) * 100 : null);
  lines.push(`- the whole machine (${cpus().length} cores = ${cpus().length * 100}%): ${f(busyPct(loginA, loginB))}% busy during login, ${f(busyPct(idleA, idleB))}% idle`);
  if (rA || idleB?.redis) lines.push(`- Redis (whole server): RSS ${mb(before.redis?.rss)} MB before login, ${mb(idleB?.redis?.rss)} MB idle; CPU ${f(redisLogin)}% during login, ${f(redisIdle)}% idle`);
  lines.push(
    `- generator: ${done.length} loadtest processes × ${done[0]!.generator.workers} workers (${f(idleB?.gen.processes ?? peak.gen.processes)} processes), RSS ${mb(idleB?.gen.rss ?? null)} MB in all while idle (peak ${mb(genPeak)} MB), CPU ${f(genLogin)}% during login, ${f(genIdle)}% idle (% of one core, all processes)`,
    `- sampled every ${samples.length > 1 ? f((samples[samples.length - 1]!.t - samples[0]!.t) / 1000 / (samples.length - 1), 1) : '–'} s; idle figures from ${idleA ? new Date(idleA.t).toISOString().slice(11, 19) : '–'} to ${idleB ? new Date(idleB.t).toISOString().slice(11, 19) : '–'} UTC`,
  );
  console.log(lines.join('\n'));
  return online === users && loginErrors === 0 ? 0 : 2;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    ports: { type: 'string' },
    members: { type: 'string' },
    timeout: { type: 'string' },
    supervisor: { type: 'string' },
    'gen-pids': { type: 'string' },
    'redis-pid': { type: 'string' },
    out: { type: 'string' },
    interval: { type: 'string' },
    dir: { type: 'string' },
    nodes: { type: 'string' },
    users: { type: 'string' },
  },
});
const ports = (values.ports ?? '').split(',').filter(Boolean).map(Number);
const cmd = positionals[0];
process.exitCode =
  cmd === 'ready'
    ? await cmdReady(ports, Number(values.members), Number(values.timeout ?? 60))
    : cmd === 'sample'
      ? await cmdSample(Number(values.supervisor), ports, values['gen-pids']!, values.out!, Number(values.interval ?? 2), values['redis-pid'] ? Number(values['redis-pid']) : null)
      : cmd === 'report'
        ? cmdReport(values.dir!, Number(values.nodes), Number(values.users))
        : (console.error('usage: cluster-scale-monitor ready|sample|report ...'), 1);
