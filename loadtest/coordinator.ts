/**
 * Runs a scenario: forks the workers, drives the phases (login, warm-up, measure,
 * drain), samples the server from /proc, aggregates what the workers report, and
 * produces the result (progress on the terminal, JSON, HTML).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import { sample, type ProcSample } from './proc.js';
import type { Scenario } from './scenario.js';
import type { FromWorker, ToWorker, WorkerFinal, WorkerReport } from './protocol.js';

export interface SecondSample {
  /** Seconds since the start of the run. */
  t: number;
  phase: string;
  online: number;
  sentPerSecond: number;
  deliveredPerSecond: number;
  p50: number;
  p99: number;
  serverRssBytes: number | null;
  serverCpuPercent: number | null;
  generatorCpuPercent: number;
}

export interface LoadResult {
  scenario: Scenario;
  startedAt: string;
  sessions: { target: number; online: number; loginErrors: number; loginSeconds: number; loginsPerSecond: number; loginLatencyMs: { p50: number; p95: number; p99: number; max: number } };
  messages: {
    sent: number;
    delivered: number;
    deliveredInWindow: number;
    deliveredPerSecond: number;
    latencyMs: { p50: number; p95: number; p99: number; max: number; mean: number };
    lost: number;
    duplicated: number;
    outOfOrder: number;
    flows: number;
    flowsWithLoss: number;
  };
  presencesReceived: number;
  /** Presence stanzas received per second while measuring. */
  presencesPerSecond: number;
  /** BOSH HTTP requests per second while measuring. */
  httpRequestsPerSecond: number;
  errors: Record<string, number>;
  server: { pids: number[]; rssBeforeBytes: number | null; rssIdleBytes: number | null; bytesPerIdleSession: number | null; cpuPercentMeasure: number | null } | null;
  generator: { workers: number; cpuPercentMeasure: number };
  storm: { users: number; secondsUntilAllBack: number | null } | null;
  timeline: SecondSample[];
}

export interface RunHooks {
  progress?: (line: string) => void;
}

export async function run(sc: Scenario, hooks: RunHooks = {}): Promise<LoadResult> {
  const t0 = Date.now();
  const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));
  const n = Math.min(sc.workers, sc.users);
  const assignment: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < sc.users; i++) {
    // Both ends of a pair in one worker, so the loop closes without IPC.
    const pairId = sc.pairs > 0 && i < 2 * sc.pairs ? i % sc.pairs : i;
    assignment[pairId % n]!.push(i);
  }
  const workers: ChildProcess[] = [];
  const last = new Map<number, WorkerReport>();
  const finals: WorkerFinal[] = [];
  const loginHist = new Histogram();
  const latency = new Histogram();
  const secondLatency = new Histogram();
  let loggedIn = 0;
  let phase = 'start';
  const timeline: SecondSample[] = [];

  const send = (m: ToWorker) => workers.forEach((w) => w.send(m));
  const ready = Promise.all(
    assignment.map(
      (users, id) =>
        new Promise<void>((resolve, reject) => {
          const w = fork(workerScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
          workers.push(w);
          w.on('message', (m: FromWorker) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'report') {
              last.set(m.worker, m);
              loginHist.merge(m.loginHist);
              latency.merge(m.latency);
              secondLatency.merge(m.latency);
            } else if (m.type === 'logged-in') loggedIn++;
            else if (m.type === 'final') finals.push(m);
          });
          w.once('exit', (code) => {
            if (phase !== 'done') reject(new Error(`worker ${id} exited with ${code}`));
          });
          w.send({ type: 'init', scenario: sc, worker: id, users, startedAt: t0 } satisfies ToWorker);
        }),
    ),
  );
  await ready;

  const totals = () => {
    let online = 0;
    let sent = 0;
    let received = 0;
    let measured = 0;
    let cpu = 0;
    let inFlight = 0;
    let loginErrors = 0;
    let rostersDone = 0;
    let presences = 0;
    let http = 0;
    const errors: Record<string, number> = {};
    for (const r of last.values()) {
      online += r.online;
      sent += r.sent;
      received += r.received;
      measured += r.measuredReceived;
      cpu += r.cpuPercent;
      inFlight += r.inFlight;
      loginErrors += r.loginErrors;
      rostersDone += r.rostersDone;
      presences += r.presences;
      http += r.httpRequests;
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    return { online, sent, received, measured, cpu, inFlight, loginErrors, errors, rostersDone, presences, http };
  };

  // Sampling every second: server from /proc, workers from their reports.
  let prevProc: ProcSample | null = sc.serverPids.length ? sample(sc.serverPids) : null;
  let prev = totals();
  const sampler = setInterval(() => {
    const cur = totals();
    const proc = sc.serverPids.length ? sample(sc.serverPids) : null;
    const srvCpu = proc && prevProc ? ((proc.cpuSeconds - prevProc.cpuSeconds) / ((proc.at - prevProc.at) / 1000)) * 100 : null;
    const s: SecondSample = {
      t: Math.round((Date.now() - t0) / 1000),
      phase,
      online: cur.online,
      sentPerSecond: cur.sent - prev.sent,
      deliveredPerSecond: cur.received - prev.received,
      p50: secondLatency.percentile(50),
      p99: secondLatency.percentile(99),
      serverRssBytes: proc?.rssBytes ?? null,
      serverCpuPercent: srvCpu,
      generatorCpuPercent: cur.cpu,
    };
    timeline.push(s);
    secondLatency.reset();
    prev = cur;
    prevProc = proc ?? prevProc;
    hooks.progress?.(
      `[${phase.padEnd(7)} ${String(s.t).padStart(4)}s] online ${cur.online}/${sc.users} sent ${s.sentPerSecond}/s delivered ${s.deliveredPerSecond}/s p99 ${s.p99.toFixed(1)}ms errors ${Object.values(cur.errors).reduce((a, b) => a + b, 0)} gen-cpu ${s.generatorCpuPercent.toFixed(0)}%` +
        (proc ? ` srv-cpu ${srvCpu?.toFixed(0) ?? '-'}% srv-rss ${(proc.rssBytes / 1048576).toFixed(0)}MB` : ''),
    );
  }, 1000);

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    // Baseline memory, then logins.
    const baseline = sc.serverPids.length ? await averageRss(sc.serverPids) : null;
    phase = 'login';
    const loginStart = Date.now();
    send({ type: 'login', rate: sc.loginRate / n });
    while (loggedIn < n) await sleep(100);
    const loginSeconds = (Date.now() - loginStart) / 1000;
    await sleep(1500); // reports settle
    const afterLogin = totals();
    const idleRss = sc.serverPids.length ? await averageRss(sc.serverPids) : null;

    phase = 'warmup';
    send({ type: 'traffic', on: true });
    await sleep(sc.warmup);
    phase = 'measure';
    const cpuStart = sc.serverPids.length ? sample(sc.serverPids) : null;
    const measureStart = Date.now();
    const before = totals();
    const receivedBefore = before.received;
    send({ type: 'measure', on: true });
    let stormUsers = 0;
    let stormSeconds: number | null = null;
    if (sc.reconnectUsers > 0) {
      await sleep(Math.min(sc.reconnectAt, sc.duration));
      phase = 'storm';
      stormUsers = Math.min(sc.reconnectUsers, totals().online);
      const per = Math.ceil(stormUsers / n);
      send({ type: 'storm', share: per, within: sc.reconnectWithin });
      const stormStart = Date.now();
      while ([...last.values()].some((r) => r.stormDone === null) && Date.now() - stormStart < 120_000) await sleep(200);
      stormSeconds = Math.max(...[...last.values()].map((r) => (r.stormDone ?? NaN) / 1000));
      phase = 'measure';
      const left = sc.duration - (Date.now() - measureStart);
      if (left > 0) await sleep(left);
    } else {
      await sleep(sc.duration);
    }
    send({ type: 'measure', on: false });
    const measureSeconds = (Date.now() - measureStart) / 1000;
    const cpuEnd = sc.serverPids.length ? sample(sc.serverPids) : null;
    const genCpu = average(timeline.filter((s) => s.phase === 'measure').map((s) => s.generatorCpuPercent));
    const atEnd = totals();
    const deliveredInWindow = atEnd.received - receivedBefore;
    const httpRequestsPerSecond = (atEnd.http - before.http) / measureSeconds;
    const presencesPerSecond = (atEnd.presences - before.presences) / measureSeconds;
    phase = 'drain';
    send({ type: 'traffic', on: false });
    const drainStart = Date.now();
    await sleep(1000);
    while (Date.now() - drainStart < sc.drain) {
      const t = totals();
      if (t.received >= t.sent) break;
      await sleep(200);
    }
    await sleep(500);
    send({ type: 'final' });
    while (finals.length < n) await sleep(50);
    const end = totals();

    // Loss, duplication and order across all flows.
    const sentPer = new Map<string, number>();
    for (const f of finals) for (const [k, v] of Object.entries(f.sentPerFlow)) sentPer.set(k, (sentPer.get(k) ?? 0) + v);
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let flowsWithLoss = 0;
    const seen = new Map<string, number>();
    for (const f of finals) {
      for (const [k, v] of Object.entries(f.flows)) {
        seen.set(k, (seen.get(k) ?? 0) + v.unique);
        duplicated += v.duplicates;
        outOfOrder += v.outOfOrder;
      }
    }
    for (const [k, s] of sentPer) {
      const missing = s - (seen.get(k) ?? 0);
      if (missing > 0) {
        lost += missing;
        flowsWithLoss++;
      }
    }
    const latencyAll = latency;
    const result: LoadResult = {
      scenario: sc,
      startedAt: new Date(t0).toISOString(),
      sessions: {
        target: sc.users,
        online: afterLogin.online,
        loginErrors: end.loginErrors,
        loginSeconds,
        loginsPerSecond: afterLogin.online / loginSeconds,
        loginLatencyMs: { p50: loginHist.percentile(50), p95: loginHist.percentile(95), p99: loginHist.percentile(99), max: loginHist.max },
      },
      messages: {
        sent: end.sent,
        delivered: end.received,
        deliveredInWindow,
        deliveredPerSecond: deliveredInWindow / measureSeconds,
        latencyMs: { p50: latencyAll.percentile(50), p95: latencyAll.percentile(95), p99: latencyAll.percentile(99), max: latencyAll.max, mean: latencyAll.mean },
        lost,
        duplicated,
        outOfOrder,
        flows: sentPer.size,
        flowsWithLoss,
      },
      presencesReceived: end.presences,
      presencesPerSecond,
      httpRequestsPerSecond,
      errors: end.errors,
      server: sc.serverPids.length
        ? {
            pids: sc.serverPids,
            rssBeforeBytes: baseline,
            rssIdleBytes: idleRss,
            bytesPerIdleSession: baseline !== null && idleRss !== null && afterLogin.online > 0 ? (idleRss - baseline) / afterLogin.online : null,
            cpuPercentMeasure: cpuStart && cpuEnd ? ((cpuEnd.cpuSeconds - cpuStart.cpuSeconds) / ((cpuEnd.at - cpuStart.at) / 1000)) * 100 : null,
          }
        : null,
      generator: { workers: n, cpuPercentMeasure: genCpu },
      storm: sc.reconnectUsers > 0 ? { users: stormUsers, secondsUntilAllBack: stormSeconds } : null,
      timeline,
    };
    phase = 'done';
    return result;
  } finally {
    phase = 'done';
    clearInterval(sampler);
    send({ type: 'logout' });
    await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))));
  }
}

async function averageRss(pids: number[]): Promise<number | null> {
  const a = sample(pids);
  await new Promise((r) => setTimeout(r, 300));
  const b = sample(pids);
  if (!a || !b) return a?.rssBytes ?? b?.rssBytes ?? null;
  return (a.rssBytes + b.rssBytes) / 2;
}

function average(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/** Makes the scenario's friendships real: every pair of friends subscribes both ways. */
export async function provisionRosters(sc: Scenario, hooks: RunHooks = {}): Promise<{ users: number; complete: number; seconds: number }> {
  const t0 = Date.now();
  const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));
  const n = Math.min(sc.workers, sc.users);
  const workers: ChildProcess[] = [];
  const last = new Map<number, WorkerReport>();
  let loggedIn = 0;
  await Promise.all(
    Array.from({ length: n }, (_, id) => {
      const users: number[] = [];
      for (let i = id; i < sc.users; i += n) users.push(i);
      return new Promise<void>((resolve) => {
        const w = fork(workerScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        workers.push(w);
        w.on('message', (m: FromWorker) => {
          if (m.type === 'ready') resolve();
          else if (m.type === 'report') last.set(m.worker, m);
          else if (m.type === 'logged-in') loggedIn++;
        });
        w.send({ type: 'init', scenario: sc, worker: id, users, startedAt: t0 } satisfies ToWorker);
      });
    }),
  );
  const send = (m: ToWorker) => workers.forEach((w) => w.send(m));
  send({ type: 'login', rate: sc.loginRate / n });
  while (loggedIn < n) await new Promise((r) => setTimeout(r, 100));
  send({ type: 'rosters' });
  let complete = 0;
  const deadline = Date.now() + Math.max(60_000, sc.users * sc.rosterSize * 2);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    complete = [...last.values()].reduce((a, r) => a + r.rostersDone, 0);
    hooks.progress?.(`[rosters] ${complete}/${sc.users} users have every friendship`);
    if (complete >= sc.users) break;
  }
  send({ type: 'logout' });
  await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
  return { users: sc.users, complete, seconds: (Date.now() - t0) / 1000 };
}
