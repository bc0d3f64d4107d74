/** Samples other processes from /proc: resident memory and CPU time (Linux). */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  // 100 is the Linux default
}

export interface ProcSample {
  /** Milliseconds since the epoch. */
  at: number;
  rssBytes: number;
  /** CPU seconds used so far (user + system), all sampled processes together. */
  cpuSeconds: number;
}

/** One sample of the sum over `pids`; null if none of them can be read. */
export function sample(pids: number[]): ProcSample | null {
  let rss = 0;
  let cpu = 0;
  let ok = false;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+) kB/.exec(status);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start at ") ".
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const utime = Number(fields[11]);
      const stime = Number(fields[12]);
      rss += m ? Number(m[1]) * 1024 : 0;
      cpu += (utime + stime) / ticksPerSecond;
      ok = true;
    } catch {
      // gone
    }
  }
  return ok ? { at: Date.now(), rssBytes: rss, cpuSeconds: cpu } : null;
}
