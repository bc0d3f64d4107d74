/**
 * The `parley` command.
 *
 *   parley start [--config FILE]
 *   parley user add|del|passwd|list|bulk ... [--config FILE]
 *   parley config check FILE | parley config docs
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { describeSchema } from '../config/schema-dsl.js';
import type { Config } from '../config/schema.js';
import { ParleyError } from '../xmpp/errors.js';
import { PARLEY_VERSION } from '../core/version.js';
import { startServer } from '../main.js';
import { userCommand } from './user.js';
import { shardsCommand } from './shards.js';
import { reloadShards } from '../ops/shards.js';
import { nodeConfig, startNodes } from './nodes.js';

const USAGE = `Parley ${PARLEY_VERSION}: an XMPP server for web portals

Usage:
  parley start [--config FILE]                 run the server (built-in defaults without --config)
  parley start --nodes N [--haproxy]           run N cluster nodes on this machine (one Redis; listener
                                               ports + 100 + i; --haproxy: haproxy on the usual ports)
  parley user add JID PASSWORD                 create an account
  parley user del JID                          delete an account and its data
  parley user passwd JID PASSWORD              change a password
  parley user list                             list accounts
  parley user bulk --prefix P --count N --password PW [--start K]
                                               create P1..PN (load tests)
  parley shards init                           create the shards' databases and schema (mysql)
  parley shards status                         each shard: address, health, breaker, users, latency
  parley shards reload                         make the running server read the shard map again
  parley shards move JID SHARD [--offline]     move one user's data to another shard, online
  parley shards drain SHARD                    move every user off a draining shard
  parley config check FILE                     validate a configuration file
  parley config docs                           print the configuration reference
  parley loadtest [run|register|rosters] ...   the load generator (parley loadtest --help)
  parley version

Every command takes --config FILE. A JID may be given as "name" for the configured domain.`;

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'loadtest') {
    // The load generator is its own program: it shares only xml/ and xmpp/ with the server.
    const { loadtestMain } = await import('../../loadtest/main.js');
    return loadtestMain(argv.slice(1));
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      prefix: { type: 'string' },
      count: { type: 'string' },
      start: { type: 'string' },
      password: { type: 'string' },
      offline: { type: 'boolean' },
      nodes: { type: 'string' },
      'node-index': { type: 'string' },
      haproxy: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [cmd, ...rest] = positionals;
  if (values.help || cmd === undefined || cmd === 'help') {
    console.log(USAGE);
    return cmd === undefined && !values.help ? 1 : 0;
  }
  try {
    switch (cmd) {
      case 'version':
        console.log(PARLEY_VERSION);
        return 0;
      case 'start': {
        const config = loadConfig(values.config).config;
        // No config file: the embedded main job, with the demo portal at http://localhost:5280/.
        if (values.config === undefined && values['node-index'] === undefined && values.nodes === undefined) config.demo.enabled = true;
        if (values.nodes !== undefined) return await startNodes(config, Number(values.nodes), values.config, values.haproxy === true);
        return await start(values['node-index'] !== undefined ? nodeConfig(config, Number(values['node-index'])) : config);
      }
      case 'user':
        return await userCommand(loadConfig(values.config).config, rest, values);
      case 'shards':
        return await shardsCommand(loadConfig(values.config).config, rest, values);
      case 'config':
        return configCommand(rest);
      default:
        console.error(`unknown command "${cmd}"\n\n${USAGE}`);
        return 1;
    }
  } catch (e) {
    if (e instanceof ParleyError) {
      console.error(`parley: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

async function start(config: Config): Promise<number> {
  const server = await startServer(config);
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        console.error(`parley: second ${sig}, exiting now`);
        process.exit(1);
      }
      server.stop().then(
        () => resolve(0),
        (err: unknown) => {
          console.error('parley: shutdown failed:', err);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP: read the shard map again (the operations issue adds limits and log levels).
    process.on('SIGHUP', () => {
      if (config.storage.driver !== 'mysql') {
        server.core.log.info('SIGHUP: nothing to reload (storage is sqlite)');
        return;
      }
      reloadShards(config, server.storage).catch((err: unknown) => server.core.log.error({ err: err instanceof Error ? err.message : err }, 'SIGHUP: shard map reload failed; the map in force is kept'));
    });
  });
}

function configCommand(args: string[]): number {
  const [sub, file] = args;
  if (sub === 'check') {
    if (!file) {
      console.error('usage: parley config check FILE');
      return 1;
    }
    const { config } = loadConfig(file);
    console.log(`${file}: OK (domain ${config.domain}, storage ${config.storage.driver})`);
    return 0;
  }
  if (sub === 'docs') {
    console.log('# Parley configuration reference\n');
    console.log('Generated from the schema by `parley config docs`. Durations are written like "30s", sizes like "64KiB".\n');
    console.log(describeSchema(configSchema).join('\n'));
    return 0;
  }
  console.error('usage: parley config check FILE | parley config docs');
  return 1;
}
