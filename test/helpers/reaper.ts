/**
 * The one child-process reaper of the test helpers that run servers of their own
 * (haproxy, MariaDB): what they start never outlives the test process.
 *
 * - `trackChild` / `trackDir`: SIGKILLed / removed on the process's 'exit' event;
 * - `spawnWatchdog`: a small shell reading a pipe from us; when our end closes (this
 *   process died without running exit handlers: SIGKILL, a crash) it kills the pid in a
 *   pid file and removes a directory;
 * - `CleanupStack`: what a long scenario set up (servers, mounts, network namespaces,
 *   databases), undone in reverse order by `run()`, each step bounded; the steps' sync
 *   fallbacks run from the same exit hook if `run()` never came, and `runOnSignals` runs
 *   the stack on SIGINT/SIGTERM (the fault campaign, test/faults/).
 *
 * @example
 * ```ts
 * const dir = mkdtempSync(join(tmpdir(), 'parley-x-'));
 * trackDir(dir);
 * const watchdog = spawnWatchdog(dir, join(dir, 'child.pid'));
 * const child = spawn(bin, args);
 * trackChild(child);
 * writeFileSync(join(dir, 'child.pid'), String(child.pid));
 * child.once('exit', () => untrackChild(child));
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';

const liveChildren = new Set<ChildProcess>();
const liveWatchdogs = new Set<ChildProcess>();
const liveDirs = new Set<string>();
/** Sync undo steps of the cleanup stacks that have not run (newest last). */
const exitSteps: Array<() => void> = [];
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    // Watchdogs first, so none of them kills a pid after the kernel has reused it.
    for (const w of liveWatchdogs) killQuietly(w, 'SIGKILL');
    for (const c of liveChildren) killQuietly(c, 'SIGKILL');
    for (const f of exitSteps.splice(0).reverse()) {
      try {
        f();
      } catch {
        // best effort
      }
    }
    for (const d of liveDirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/** Sends `signal` unless the child has exited already. */
export function killQuietly(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  } catch {
    // already gone
  }
}

/** The child is SIGKILLed at exit while tracked. */
export function trackChild(child: ChildProcess): void {
  installExitHook();
  liveChildren.add(child);
}

export function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child);
}

/** The directory is removed at exit while tracked. */
export function trackDir(dir: string): void {
  installExitHook();
  liveDirs.add(dir);
}

export function untrackDir(dir: string): void {
  liveDirs.delete(dir);
}

/**
 * When our end of its stdin closes (this process died, even by SIGKILL), it kills the pid
 * in `pidFile` (written by the caller on each start, removed when that child exits) and
 * removes `dir`. Kill it (killQuietly) before cleaning up ourselves.
 */
export function spawnWatchdog(dir: string, pidFile: string): ChildProcess {
  installExitHook();
  const watchdog = spawn(
    '/bin/sh',
    ['-c', 'read _ ; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && kill -9 "$p" ; sleep 0.2 ; rm -rf "$2"', 'sh', pidFile, dir],
    { stdio: ['pipe', 'ignore', 'ignore'] },
  );
  liveWatchdogs.add(watchdog);
  watchdog.once('exit', () => liveWatchdogs.delete(watchdog));
  watchdog.unref();
  watchdog.stdin?.on('error', () => {}); // it may be killed before us; we never write anyway
  (watchdog.stdin as unknown as Socket | null)?.unref();
  return watchdog;
}

/**
 * An ordered undo list: `run()` undoes the steps in reverse order of `add()`, each bounded
 * by `stepTimeoutMs` (a step that hangs does not keep the rest from running) and its
 * error logged, not thrown. A step's `syncFallback` (kill, unmount, delete) runs at
 * process exit, with the other tracked things, if `run()` has not run it by then.
 *
 * @example
 * ```ts
 * const stack = new CleanupStack();
 * const stop = runOnSignals(stack);
 * stack.add('tmpfs', () => umount(mnt), () => umount(mnt));
 * try { ... } finally { await stack.run(); stop(); }
 * ```
 */
export class CleanupStack {
  readonly #steps: Array<{ what: string; fn: () => Promise<void> | void; sync?: () => void }> = [];

  constructor(readonly stepTimeoutMs = 15_000) {
    installExitHook();
  }

  add(what: string, fn: () => Promise<void> | void, syncFallback?: () => void): void {
    this.#steps.push({ what, fn, sync: syncFallback });
    if (syncFallback) exitSteps.push(syncFallback);
  }

  async run(): Promise<void> {
    while (this.#steps.length > 0) {
      const s = this.#steps.pop()!;
      if (s.sync) {
        const i = exitSteps.lastIndexOf(s.sync);
        if (i >= 0) exitSteps.splice(i, 1);
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([s.fn(), new Promise<void>((r) => (timer = setTimeout(r, this.stepTimeoutMs)))]);
      } catch (e) {
        console.error(`cleanup: ${s.what}: ${(e as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/** On SIGINT or SIGTERM: runs the stack, then exits with 130. Returns the function that removes the handlers. */
export function runOnSignals(stack: CleanupStack): () => void {
  const onSignal = (sig: NodeJS.Signals): void => {
    console.error(`${sig}: cleaning up`);
    void stack.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
