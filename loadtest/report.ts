/**
 * The load test's outputs: a summary for the terminal and an HTML report with plots
 * (throughput and latency over time, server memory against sessions), drawn as inline
 * SVG so the file opens anywhere without scripts or network.
 */
import type { LoadResult, SecondSample } from './coordinator.js';

const f = (n: number | null | undefined, d = 0) => (n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

export function summary(r: LoadResult): string {
  const m = r.messages;
  const lines = [
    `scenario ${r.scenario.name}: ${r.scenario.users} users (tcp ${r.scenario.transports.tcp} : bosh ${r.scenario.transports.bosh} : websocket ${r.scenario.transports.websocket}) against ${r.scenario.host} (${r.scenario.domain})`,
    `sessions: ${f(r.sessions.online)}/${f(r.sessions.target)} online, ${f(r.sessions.loginsPerSecond)} logins/s, login p50 ${f(r.sessions.loginLatencyMs.p50, 1)} ms p99 ${f(r.sessions.loginLatencyMs.p99, 1)} ms, ${f(r.sessions.loginErrors)} login errors`,
    `messages: ${f(m.sent)} sent, ${f(m.delivered)} delivered, ${f(m.deliveredPerSecond)} delivered/s in the window; time-to-delivery p50 ${f(m.latencyMs.p50, 2)} p95 ${f(m.latencyMs.p95, 2)} p99 ${f(m.latencyMs.p99, 2)} max ${f(m.latencyMs.max, 1)} ms`,
    `           lost ${f(m.lost)} (${f(m.flowsWithLoss)} of ${f(m.flows)} flows), duplicated ${f(m.duplicated)}, out of order ${f(m.outOfOrder)}`,
    `presences received: ${f(r.presencesReceived)} (${f(r.presencesPerSecond)}/s while measuring); BOSH HTTP requests ${f(r.httpRequestsPerSecond)}/s`,
  ];
  if (r.server) {
    lines.push(
      `server: ${f(r.server.bytesPerIdleSession)} bytes per idle session (RSS ${f((r.server.rssBeforeBytes ?? 0) / 1048576)} → ${f((r.server.rssIdleBytes ?? 0) / 1048576)} MB), CPU ${f(r.server.cpuPercentMeasure)}% while measuring`,
    );
  }
  lines.push(`generator: ${r.generator.workers} workers, CPU ${f(r.generator.cpuPercentMeasure)}% while measuring`);
  if (r.storm) lines.push(`reconnect storm: ${f(r.storm.users)} users back in ${f(r.storm.secondsUntilAllBack, 1)} s`);
  const errs = Object.entries(r.errors);
  if (errs.length) lines.push(`errors: ${errs.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

function chart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const W = 720;
  const H = 260;
  const L = 60;
  const B = 36;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<h2>${title}</h2><p>no data</p>`;
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = Math.max(1e-9, ...all.map((p) => p[1])) * 1.1;
  const X = (x: number) => L + (x / xMax) * (W - L - 10);
  const Y = (y: number) => H - B - (y / yMax) * (H - B - 10);
  let svg = `<svg viewBox='0 0 ${W} ${H}' width='${W}' height='${H}' role='img' aria-label='${title}'>`;
  svg += `<line x1='${L}' y1='${H - B}' x2='${W - 10}' y2='${H - B}' stroke='#888'/><line x1='${L}' y1='10' x2='${L}' y2='${H - B}' stroke='#888'/>`;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    svg += `<text x='${L - 6}' y='${Y(v) + 4}' font-size='11' text-anchor='end'>${f(v, v < 10 ? 1 : 0)}</text><line x1='${L}' x2='${W - 10}' y1='${Y(v)}' y2='${Y(v)}' stroke='#eee'/>`;
    const xv = (xMax / 4) * i;
    svg += `<text x='${X(xv)}' y='${H - B + 16}' font-size='11' text-anchor='middle'>${f(xv)}</text>`;
  }
  svg += `<text x='${(W + L) / 2}' y='${H - 4}' font-size='12' text-anchor='middle'>${xLabel}</text>`;
  svg += `<text x='14' y='${(H - B) / 2}' font-size='12' text-anchor='middle' transform='rotate(-90 14 ${(H - B) / 2})'>${yLabel}</text>`;
  series.forEach((s, k) => {
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ');
    svg += `<path d='${d}' fill='none' stroke='${s.color}' stroke-width='2'/>`;
    svg += `<text x='${L + 10 + k * 150}' y='22' font-size='12' fill='${s.color}'>${s.name}</text>`;
  });
  return `<h2>${title}</h2>${svg}</svg>`;
}

export function html(r: LoadResult): string {
  const tl: SecondSample[] = r.timeline;
  const pts = (fn: (s: SecondSample) => number | null) => tl.filter((s) => fn(s) !== null).map((s) => [s.t, fn(s)!] as [number, number]);
  const loginPhase = tl.filter((s) => s.serverRssBytes !== null && (s.phase === 'login' || s.phase === 'warmup'));
  const charts = [
    chart('Throughput', 'seconds', 'stanzas per second', [
      { name: 'sent/s', color: '#1f77b4', points: pts((s) => s.sentPerSecond) },
      { name: 'delivered/s', color: '#2ca02c', points: pts((s) => s.deliveredPerSecond) },
    ]),
    chart('Time to delivery', 'seconds', 'milliseconds', [
      { name: 'p50', color: '#1f77b4', points: pts((s) => (s.deliveredPerSecond > 0 ? s.p50 : null)) },
      { name: 'p99', color: '#d62728', points: pts((s) => (s.deliveredPerSecond > 0 ? s.p99 : null)) },
    ]),
    chart('Sessions online', 'seconds', 'sessions', [{ name: 'online', color: '#9467bd', points: pts((s) => s.online) }]),
    chart('Server memory against sessions (login)', 'sessions online', 'RSS (MB)', [
      { name: 'RSS', color: '#8c564b', points: loginPhase.map((s) => [s.online, (s.serverRssBytes ?? 0) / 1048576] as [number, number]) },
    ]),
    chart('CPU', 'seconds', 'percent of one core', [
      { name: 'server', color: '#d62728', points: pts((s) => s.serverCpuPercent) },
      { name: 'generator', color: '#7f7f7f', points: pts((s) => s.generatorCpuPercent) },
    ]),
  ];
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<!doctype html><html lang='en'><meta charset='utf-8'><title>Parley load test: ${esc(r.scenario.name)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;max-width:780px;margin:2em auto;padding:0 1em}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}</style>
<h1>Load test: ${esc(r.scenario.name)}</h1>
<p>Started ${esc(r.startedAt)}.</p>
<pre>${esc(summary(r))}</pre>
${charts.join('\n')}
<h2>Scenario</h2><pre>${esc(JSON.stringify(r.scenario, null, 2))}</pre>
</html>
`;
}
