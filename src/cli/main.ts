/**
 * The `parley` command.
 *
 *   parley start [--config FILE]
 *   parley user add|del|passwd|list|bulk ... [--config FILE]
 *   parley config check FILE | parley config docs
 *   parley status | sessions list|kick | reload   (the running server, through the admin API)
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { CONFIG_SCHEMA } from '../modules/index.js';
import { describeSchema } from '../config/schema-dsl.js';
import type { Config } from '../config/schema.js';
import { ConfigError, ParleyError } from '../support/errors.js';
import { XmppError } from '../xmpp/errors.js';
import { PARLEY_VERSION } from '../support/version.js';
import { startServer } from '../main.js';
import { userCommand } from './user.js';
import { shardsCommand } from './shards.js';
import { nodeConfig, startNodes } from './nodes.js';
import { checkClusterSecret } from '../cluster/secret.js';
import { printReload, reloadCommand, sessionsCommand, statusCommand } from './admin.js';

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
  parley status [--json]                       the running server: node, uptime, sessions, cluster, shards
  parley sessions list [--user JID] [--limit N] [--offset N]
                                               sessions of this node, or of one user on every node
  parley sessions kick JID [--reason TEXT]     end a user's sessions (or one, with a full JID)
  parley reload                                make the running server read its config file again
                                               (limits, log levels, shard map; SIGHUP does the same)
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
      user: { type: 'string' },
      reason: { type: 'string' },
      limit: { type: 'string' },
      offset: { type: 'string' },
      json: { type: 'boolean' },
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
        const { config, file } = loadConfig(values.config, CONFIG_SCHEMA);
        // No config file: the embedded main job, with the demo portal at http://localhost:5280/.
        if (values.config === undefined && values['node-index'] === undefined && values.nodes === undefined) config.demo.enabled = true;
        if (values.nodes !== undefined) return await startNodes(config, Number(values.nodes), values.config, values.haproxy === true);
        return await start(values['node-index'] !== undefined ? nodeConfig(config, Number(values['node-index']), values.haproxy === true) : config, file);
      }
      case 'user':
        return await userCommand(loadConfig(values.config, CONFIG_SCHEMA).config, rest, values);
      case 'shards':
        return await shardsCommand(loadConfig(values.config, CONFIG_SCHEMA).config, rest, values);
      case 'config':
        return configCommand(rest);
      case 'status':
        return await statusCommand(loadConfig(values.config, CONFIG_SCHEMA).config, values);
      case 'sessions':
        return await sessionsCommand(loadConfig(values.config, CONFIG_SCHEMA).config, rest, values);
      case 'reload':
        return await reloadCommand(loadConfig(values.config, CONFIG_SCHEMA).config);
      default:
        console.error(`unknown command "${cmd}"\n\n${USAGE}`);
        return 1;
    }
  } catch (e) {
    if (e instanceof ParleyError || e instanceof XmppError) {
      console.error(`parley: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

async function start(config: Config, file: string | undefined): Promise<number> {
  const server = await startServer(config, { configFile: file });
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
    // SIGHUP: read the config file again and apply limits, log levels and the shard map.
    process.on('SIGHUP', () => {
      server.reload().then(
        (r) => printReload(r, (line) => console.error(`parley: SIGHUP: ${line.trim()}`)),
        (err: unknown) => server.core.log.error({ err }, 'SIGHUP: reload failed'),
      );
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
    try {
      const { config } = loadConfig(file, CONFIG_SCHEMA);
      // Checked when a node starts (a `--nodes` run makes one when unset): reported here too.
      if (config.cluster.driver === 'redis') checkClusterSecret(config.cluster.secret);
      console.log(`${file}: OK (domain ${config.domain}, storage ${config.storage.driver})`);
      return 0;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      console.error(e.path ? `${file}: ${e.path}: ${e.reason}` : `${file}: ${e.reason.replace(`${file}: `, '')}`);
      return 1;
    }
  }
  if (sub === 'docs') {
    console.log('# Parley configuration reference\n');
    console.log('Generated from the schema by `parley config docs`. Durations are written like "30s", sizes like "64KiB".\n');
    console.log(describeSchema(CONFIG_SCHEMA.root).join('\n'));
    return 0;
  }
  console.error('usage: parley config check FILE | parley config docs');
  return 1;
}
