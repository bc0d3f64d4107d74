/**
 * `cluster-pairs`: the closed loop of `tcp-pairs` (P senders each keep W messages in
 * flight to their own receiver; warm-up, then a measured window; time-to-delivery of
 * every message) against one node and against a cluster of nodes on this machine.
 *
 * Layouts:
 * - `single`: one plain server process (no cluster), as `tcp-pairs`.
 * - `single-cluster`: one node with `cluster.driver: redis` (the cluster's bookkeeping,
 *   no stanza crosses nodes).
 * - `cross`: two nodes; every sender on n1, every receiver on n2: every message goes over
 *   the link between the nodes.
 * - `half`: two nodes; senders alternate n1/n2 and half the pairs have their receiver on
 *   the other node, so each node carries the same load and half the messages cross.
 *
 * The nodes share one SQLite file and one Redis prefix (see startBenchCluster); the
 * benchmark waits until every node's /health/ready lists every member before logging
 * in, and until every node's directory replica holds the other nodes' sessions before
 * sending (a message sent earlier would find its receiver offline).
 */
import { readFileSync } from 'node:fs';
import { RawSession, pool, sourceAddress } from './lib/raw-client.js';
import { startBenchCluster, percentile, DOMAIN, PASSWORD } from './lib/harness.js';

export type ClusterLayout = 'single' | 'single-cluster' | 'cross' | 'half';

export interface NodeFigures {
  node: string;
  /** Sessions logged in on this node. */
  sessions: number;
  cpuPercent: number;
  /** Stanzas sent to / received from other nodes over the links (whole run, warm-up included). */
  forwarded: number;
  received: number;
  /** Stanzas a link handed back and routed again (0 when no node died). */
  rerouted: number;
  /** Lines the node logged (level warn and above), and the first few of them. */
  logLines: number;
  firstLogLines: string[];
}

export interface ClusterPairsResult {
  layout: ClusterLayout;
  nodes: number;
  archive: boolean;
  pairs: number;
  /** Pairs whose sender and receiver are on different nodes. */
  crossPairs: number;
  window: number;
  seconds: number;
  messages: number;
  messagesPerSecond: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
  lost: number;
  /** Rows in offline storage at the end (a message that found its receiver "offline"). */
  offlineRows: number;
  /** Error stanzas the senders got back. */
  errors: number;
  /** All nodes together, % of one core. */
  serverCpuPercent: number;
  /** Server CPU time (all nodes) per delivered message, µs. */
  serverCpuMicrosPerMessage: number;
  generatorCpuPercent: number;
  /**
   * CPU the rest of the machine used meanwhile (all cores busy per /proc/stat, less the
   * nodes and this process), % of one core: other work on a shared machine skews the run.
   */
  otherCpuPercent: number;
  perNode: NodeFigures[];
}

/** The node (0-based) of pair p's sender and receiver. */
function placement(layout: ClusterLayout, p: number, pairs: number): [number, number] {
  switch (layout) {
    case 'single':
    case 'single-cluster':
      return [0, 0];
    case 'cross':
      return [0, 1];
    case 'half': {
      const s = p % 2;
      return [s, p < pairs / 2 ? s : 1 - s];
    }
  }
}

export async function clusterPairs(
  layout: ClusterLayout,
  pairs = 500,
  window = 10,
  warmupMs = 3000,
  measureMs = 10_000,
  archive = false,
): Promise<ClusterPairsResult> {
  const nodeCount = layout === 'single' || layout === 'single-cluster' ? 1 : 2;
  const extra = archive ? { mam: { enabled: true, default: 'always' } } : { mam: { enabled: false } };
  const cluster = await startBenchCluster({ users: pairs * 2, nodes: nodeCount, cluster: layout !== 'single', extra });
  const senders: RawSession[] = [];
  const receivers: RawSession[] = [];
  let result: ClusterPairsResult | undefined;
  try {
    const nodes = cluster.nodes;
    const where = Array.from({ length: pairs }, (_, p) => placement(layout, p, pairs));
    const crossPairs = where.filter(([s, r]) => s !== r).length;
    await pool(
      Array.from({ length: pairs * 2 }, (_, i) => i),
      100,
      async (i) => {
        const p = i < pairs ? i : i - pairs;
        const node = nodes[where[p]![i < pairs ? 0 : 1]]!;
        const s = await RawSession.login({ host: '127.0.0.1', port: node.port, domain: DOMAIN, username: `u${i}`, password: PASSWORD, localAddress: sourceAddress(i) });
        await s.available();
        if (i < pairs) senders[i] = s;
        else receivers[i - pairs] = s;
      },
    );
    // Every node must know the others' sessions (its directory replica) before sending.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = await Promise.all(nodes.map((n) => n.request<{ sessions: number; cluster: { remoteSessions: number } | null }>('cluster')));
      const total = st.reduce((a, x) => a + x.sessions, 0);
      const ok = total === pairs * 2 && st.every((x) => x.cluster === null || x.cluster.remoteSessions === total - x.sessions);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`sessions not known on every node after 30 s: ${JSON.stringify(st)}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    let measuring = false;
    let stopped = false;
    let count = 0;
    let inFlight = 0;
    let errors = 0;
    const samples = new Float64Array(20_000_000);
    let nSamples = 0;
    let maxMs = 0;
    const body = 'x'.repeat(40);
    const sendOne = (p: number) => {
      inFlight++;
      senders[p]!.send(`<message to='u${pairs + p}@${DOMAIN}/bench' type='chat'><body>${performance.now()} ${body}</body></message>`);
    };
    for (const s of senders) {
      s.onMessage = (stanza) => {
        if (/^<message[^>]* type=['"]error['"]/.test(stanza)) errors++;
      };
    }
    receivers.forEach((r, p) => {
      r.onMessage = (stanza) => {
        const b = stanza.indexOf('<body>') + 6;
        const ms = performance.now() - parseFloat(stanza.slice(b, stanza.indexOf(' ', b)));
        inFlight--;
        if (measuring) {
          count++;
          if (nSamples < samples.length) samples[nSamples++] = ms;
          if (ms > maxMs) maxMs = ms;
        }
        if (!stopped) sendOne(p);
      };
    });
    for (let p = 0; p < pairs; p++) for (let w = 0; w < window; w++) sendOne(p);

    await new Promise((r) => setTimeout(r, warmupMs));
    const cpu0 = await Promise.all(nodes.map((n) => n.request<{ cpu: NodeJS.CpuUsage }>('cpu')));
    const gen0 = process.cpuUsage();
    const busy0 = machineBusyMs();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, measureMs));
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = await Promise.all(nodes.map((n) => n.request<{ cpu: NodeJS.CpuUsage }>('cpu')));
    const gen1 = process.cpuUsage(gen0);
    const busy1 = machineBusyMs();
    stopped = true;
    // Let the last messages in flight arrive: any still missing after that are lost.
    const until = Date.now() + 5000;
    while (inFlight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const st = await Promise.all(nodes.map((n) => n.request<{ sessions: number; cluster: { forwarded: number; received: number; rerouted: number } | null }>('cluster')));
    const offlineRows = await cluster.countRows('offline');
    const sorted = samples.slice(0, nSamples).sort();
    const cpuPct = (k: number) => ((cpu1[k]!.cpu.user + cpu1[k]!.cpu.system - cpu0[k]!.cpu.user - cpu0[k]!.cpu.system) / 1000 / (seconds * 1000)) * 100;
    result = {
      layout,
      nodes: nodeCount,
      archive,
      pairs,
      crossPairs,
      window,
      seconds,
      messages: count,
      messagesPerSecond: count / seconds,
      p50ms: percentile(sorted, 50),
      p99ms: percentile(sorted, 99),
      maxMs,
      lost: inFlight,
      offlineRows,
      errors,
      serverCpuPercent: nodes.reduce((a, _, k) => a + cpuPct(k), 0),
      serverCpuMicrosPerMessage: (nodes.reduce((a, _, k) => a + cpuPct(k), 0) * 1e4) / (count / seconds),
      generatorCpuPercent: ((gen1.user + gen1.system) / 1000 / (seconds * 1000)) * 100,
      otherCpuPercent: Math.max(0, ((busy1 - busy0) / (seconds * 1000)) * 100 - nodes.reduce((a, _, k) => a + cpuPct(k), 0) - ((gen1.user + gen1.system) / 1000 / (seconds * 1000)) * 100),
      perNode: nodes.map((n, k) => ({
        node: n.name,
        sessions: st[k]!.sessions,
        cpuPercent: cpuPct(k),
        forwarded: st[k]!.cluster?.forwarded ?? 0,
        received: st[k]!.cluster?.received ?? 0,
        rerouted: st[k]!.cluster?.rerouted ?? 0,
        logLines: 0,
        firstLogLines: [],
      })),
    };
  } finally {
    for (const s of [...senders, ...receivers]) s?.close();
    await cluster.stop();
  }
  // The nodes' logs are complete once they stopped.
  for (const n of result.perNode) {
    const lines = (cluster.logs[n.node] ?? '').split('\n').filter((l) => l.trim() !== '');
    n.logLines = lines.length;
    n.firstLogLines = lines.slice(0, 5).map((l) => (l.length > 400 ? l.slice(0, 400) + '…' : l));
  }
  return result;
}

/** CPU time all cores spent busy so far (ms), from the first line of /proc/stat (USER_HZ 100). */
function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) * 10;
  } catch {
    return NaN;
  }
}
