/**
 * One decision for every test that needs an outside tool (haproxy, redis-server,
 * mariadbd, snmpget/snmpwalk, Chromium): on a developer machine a missing tool skips the
 * test with a hint; under CI (`CI=true`) it fails the test file instead, so a heavy suite
 * cannot vanish silently from a CI run because a package was not installed.
 *
 * @example
 * ```ts
 * describe('haproxy in front of two nodes', { skip: needHaproxy() }, () => { ... });
 * ```
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { haveHaproxy } from './haproxy.js';
import { privateMariadbAvailable } from './mariadb-server.js';

/** Where the browser tests find Chromium. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** true when CI=true: a missing tool is a failure, not a skip. */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true';
}

/**
 * The node:test `skip` value for a test that needs `name`: false when it is available; the
 * reason (with `hint`, how to install it) when it is not; under CI=true it throws instead,
 * which fails the test file.
 */
export function requireTool(name: string, available: boolean, hint: string, env: NodeJS.ProcessEnv = process.env): string | false {
  if (available) return false;
  const reason = `${name} is not installed (${hint})`;
  if (isCi(env)) throw new Error(`${reason}: under CI=true a test that needs it fails instead of skipping`);
  return reason;
}

const DEPS = 'scripts/ensure-test-deps.sh installs it as root';

export function haveRedisServer(): boolean {
  return spawnSync('sh', ['-c', 'command -v redis-server || ls /usr/bin/redis-server'], { stdio: 'ignore' }).status === 0;
}

export function haveSnmpTools(): boolean {
  try {
    execFileSync('snmpget', ['--version'], { stdio: 'ignore' });
    execFileSync('snmpwalk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function haveChromium(): boolean {
  return existsSync(CHROMIUM);
}

export const needHaproxy = (): string | false => requireTool('haproxy', haveHaproxy(), `Debian package haproxy; ${DEPS}`);
export const needRedisServer = (): string | false => requireTool('redis-server', haveRedisServer(), `Debian package redis-server; ${DEPS}`);
export const needMariadbd = (): string | false =>
  requireTool('mariadbd / mariadb-install-db', privateMariadbAvailable(), `Debian package mariadb-server; ${DEPS}`);
export const needSnmpTools = (): string | false => requireTool('snmpget/snmpwalk', haveSnmpTools(), `Debian package snmp; ${DEPS}`);
