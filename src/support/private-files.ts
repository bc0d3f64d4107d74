/**
 * Files only Parley's own user may read: the data directory (SQLite database with SCRAM
 * keys and archived messages, the generated TLS key, the demo portal's secret) is made
 * 0700 and the database files 0600, whatever the umask.
 *
 * SECURITY: another local account on the machine must not read the archive or the keys.
 * An existing directory or file that others may read is tightened (when we own it) and
 * reported, so that an installation from before this rule is fixed by its next start.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

const OTHERS = 0o077;

/** Makes `dir` (and missing parents) 0700; returns true when an existing one was tightened. */
export function ensurePrivateDir(dir: string): boolean {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask; this is not
    return false;
  }
  return tighten(dir, 0o700);
}

/** Creates `file` 0600 when missing (empty), or tightens it; returns true when tightened. */
export function ensurePrivateFile(file: string): boolean {
  if (!existsSync(file)) {
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
    return false;
  }
  return tighten(file, 0o600);
}

function tighten(path: string, mode: number): boolean {
  const st = statSync(path);
  if ((st.mode & OTHERS) === 0) return false;
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) return false; // not ours: leave it, the operator chose
  chmodSync(path, mode);
  return true;
}
