import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

test('a cleanup stack undoes its steps in reverse order, past a step that fails or hangs', async () => {
  const { CleanupStack } = (await import(REAPER)) as typeof import('./reaper.js');
  const stack = new CleanupStack(200);
  const done: string[] = [];
  stack.add('first', () => void done.push('first'));
  stack.add('hangs', () => new Promise<void>(() => undefined));
  stack.add('fails', () => {
    done.push('fails');
    throw new Error('on purpose');
  });
  stack.add('last', () => void done.push('last'));
  await stack.run();
  assert.deepEqual(done, ['last', 'fails', 'first']);
});

test('the sync fallback of a cleanup step that never ran runs when the process exits, and not after run()', { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-reaper-test-'));
  const code = `
    import { writeFileSync } from 'node:fs';
    import { join } from 'node:path';
    import { CleanupStack } from ${JSON.stringify(REAPER)};
    const dir = ${JSON.stringify(dir)};
    const ran = new CleanupStack();
    ran.add('ran', () => undefined, () => writeFileSync(join(dir, 'ran-twice'), ''));
    await ran.run();
    const left = new CleanupStack();
    left.add('left', () => undefined, () => writeFileSync(join(dir, 'fallback'), ''));
    process.exit(0);
  `;
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((r) => p.once('exit', r));
  assert.equal(existsSync(join(dir, 'fallback')), true, 'the fallback ran at exit');
  assert.equal(existsSync(join(dir, 'ran-twice')), false, 'a step run by run() is not undone again');
  rmSync(dir, { recursive: true, force: true });
});
