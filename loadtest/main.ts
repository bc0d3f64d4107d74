/**
 * `parley loadtest`: the load generator's command line.
 *
 *   parley loadtest [run] [--scenario FILE] [--key value ...]   run a scenario
 *   parley loadtest register [...]                              create the users by in-band registration
 *   parley loadtest rosters [...]                               make the scenario's friendships (subscriptions)
 *
 * Any scenario key is a flag: --users 1000 --transports tcp:2,bosh:1 --pairs 100 ...
 */
import { writeFileSync } from 'node:fs';
import { DEFAULTS, loadScenarioFile, makeScenario, ScenarioError, type Scenario } from './scenario.js';
import { provisionRosters, run } from './coordinator.js';
import { registerUsers } from './register.js';
import { html, summary } from './report.js';

const USAGE = `parley loadtest [run|register|rosters] [--scenario FILE] [--KEY VALUE ...]

Keys (flags or YAML), with defaults:
${Object.entries(DEFAULTS)
  .map(([k, v]) => `  --${k} ${Array.isArray(v) ? v.join(',') || '(none)' : typeof v === 'object' ? Object.entries(v as Record<string, unknown>).map(([a, b]) => `${a}:${String(b)}`).join(',') : String(v)}`)
  .join('\n')}

Durations: 30s, 500ms, 2m. --transports tcp:1,bosh:1,websocket:1. --serverPids 1234[,5678].
`;

/** Flags → raw scenario keys: --key value, --key=value, --no-key. */
function flags(argv: string[]): { sub: string; input: Record<string, unknown>; file?: string } {
  const input: Record<string, unknown> = {};
  let sub = 'run';
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      if (i === 0) sub = a;
      else throw new ScenarioError(a, 'unexpected argument');
      continue;
    }
    let key = a.slice(2);
    let value: unknown;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    } else if (key.startsWith('no-')) {
      key = key.slice(3);
      value = false;
    } else {
      value = argv[++i];
      if (value === undefined) throw new ScenarioError(key, 'needs a value');
    }
    if (key === 'scenario') file = String(value);
    else input[key] = value;
  }
  return { sub, input, file };
}

export async function loadtestMain(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let sc: Scenario;
  let sub: string;
  try {
    const parsed = flags(argv);
    sub = parsed.sub;
    const fromFile = parsed.file ? loadScenarioFile(parsed.file) : {};
    sc = makeScenario({ ...fromFile, ...parsed.input });
  } catch (e) {
    if (e instanceof ScenarioError) {
      console.error(`parley loadtest: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const tty = process.stderr.isTTY;
  const progress = sc.progress
    ? (line: string): void => {
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      }
    : undefined;

  if (sub === 'register') {
    const r = await registerUsers(sc, progress);
    if (tty) process.stderr.write('\n');
    console.log(`registered ${r.created} users (${r.existing} existed) in ${r.seconds.toFixed(1)} s`);
    return 0;
  }
  if (sub === 'rosters') {
    const r = await provisionRosters(sc, { progress });
    if (tty) process.stderr.write('\n');
    console.log(`rosters: ${r.complete}/${r.users} users have all ${sc.rosterSize - (sc.rosterSize % 2)} friends (${r.seconds.toFixed(1)} s)`);
    return r.complete === r.users ? 0 : 1;
  }
  if (sub !== 'run') {
    console.error(`parley loadtest: unknown subcommand "${sub}"\n\n${USAGE}`);
    return 1;
  }
  const result = await run(sc, { progress });
  if (tty) process.stderr.write('\n');
  console.log(summary(result));
  if (sc.json) writeFileSync(sc.json, JSON.stringify(result, null, 2) + '\n');
  if (sc.html) writeFileSync(sc.html, html(result));
  if (sc.json || sc.html) console.log(`written: ${[sc.json, sc.html].filter(Boolean).join(', ')}`);
  return 0;
}
