import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './until.js';

const REAPER = new URL('./reaper.js', import.meta.url).href;

/** A process that starts a tracked `sleep` child in a tracked directory (with a watchdog), writes the pid, then waits. */
function parent(dir: string): ReturnType<typeof spawn> {
  const code = `
    import { spawn } from 'node:child_process';
    import { writeFileSync } from 'node:fs';
    import { join } from 'node:path';
    import { spawnWatchdog, trackChild, trackDir } from ${JSON.stringify(REAPER)};
    const dir = ${JSON.stringify(dir)};
    trackDir(dir);
    spawnWatchdog(dir, join(dir, 'child.pid'));
    const c = spawn('sleep', ['60'], { stdio: 'ignore' });
    trackChild(c);
    writeFileSync(join(dir, 'child.pid'), String(c.pid));
    writeFileSync(join(dir, 'ready'), '');
    process.stdin.on('data', () => process.exit(0));
  `;
  return spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'ignore', 'inherit'] });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

for (const how of ['exits normally', 'is SIGKILLed'] as const) {
  test(`a tracked child and directory do not outlive a test process that ${how}`, { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-reaper-test-'));
    const p = parent(dir);
    const exited = new Promise((r) => p.once('exit', r));
    await until('the parent started its child', () => existsSync(join(dir, 'ready')));
    const pid = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
    assert.ok(alive(pid));
    if (how === 'exits normally') p.stdin!.write('x');
    else p.kill('SIGKILL');
    await exited;
    await until('the child is gone', () => !alive(pid));
    await until('the directory is gone', () => !existsSync(dir));
  });
}
