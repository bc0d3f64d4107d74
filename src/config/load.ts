/**
 * Loading the configuration: a YAML file (or nothing: built-in defaults), validated
 * against the schema. A bad file stops startup with the key's path and the reason.
 */
import { readFileSync } from 'node:fs';
import { resolve, dirname, isAbsolute } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError } from '../support/errors.js';
import { CORE_SCHEMA, type Config, type ConfigSchema } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** The file it came from, if any. */
  file?: string;
}

/**
 * Validates an already-parsed object (tests build configs this way). `schema`: the keys
 * known, the core's and the modules' (`CONFIG_SCHEMA` of src/modules/index.ts); the
 * core's alone by default, for tools that read no module key.
 */
export function parseConfig(input: unknown, schema: ConfigSchema = CORE_SCHEMA): Config {
  const config = schema.root.parse(input ?? {}, '') as unknown as Config;
  checkAcrossKeys(config);
  return config;
}

/** The placeholder of deploy/parley.example.yaml: a copied example must not run with it. */
export const EXAMPLE_SECRET = 'replace-me-with-32-or-more-random-characters';
/** Shortest admin.token and portal.secret: 32 characters (e.g. `openssl rand -base64 24`). */
export const MIN_SECRET_LENGTH = 32;

/** A bearer token or HMAC key anyone on the network may try to guess. */
function checkSecret(key: string, value: string | undefined): void {
  if (value === undefined) return;
  // SECURITY: a short or published secret opens the admin API or lets anyone sign portal
  // events and login tokens; startup stops instead.
  if (value === EXAMPLE_SECRET) throw new ConfigError(key, 'is the placeholder of the example configuration; set a random secret (openssl rand -base64 32)');
  if (value.length < MIN_SECRET_LENGTH) throw new ConfigError(key, `must be at least ${MIN_SECRET_LENGTH} characters (it has ${value.length}); e.g. openssl rand -base64 32`);
}

/** Rules that tie several keys together. */
function checkAcrossKeys(c: Config): void {
  if (c.cluster.lease < 2 * c.cluster.heartbeat) throw new ConfigError('cluster.lease', `must last at least two heartbeats (cluster.heartbeat is ${c.cluster.heartbeat} ms, the lease ${c.cluster.lease} ms)`);
  const p = c.portal;
  if (p.auth.source === 'http' && !p.auth.url) throw new ConfigError('portal.auth.url', 'is required when portal.auth.source is http');
  if (p.auth.source === 'sql' && !p.auth.query) throw new ConfigError('portal.auth.query', 'is required when portal.auth.source is sql');
  if (p.roster.source === 'http' && !p.roster.url) throw new ConfigError('portal.roster.url', 'is required when portal.roster.source is http');
  if (p.roster.source === 'sql' && !p.roster.query) throw new ConfigError('portal.roster.query', 'is required when portal.roster.source is sql');
  if (p.auth.existsUrl !== undefined && p.auth.source !== 'http') throw new ConfigError('portal.auth.existsUrl', 'is only used when portal.auth.source is http');
  if (p.auth.existsQuery !== undefined && p.auth.source !== 'sql') throw new ConfigError('portal.auth.existsQuery', 'is only used when portal.auth.source is sql');
  if ((p.auth.source === 'sql' || p.roster.source === 'sql') && !p.db) throw new ConfigError('portal.db', 'is required when a portal source is sql');
  if (p.db !== undefined && !/^(mysql|mariadb):\/\/|^sqlite:/.test(p.db)) throw new ConfigError('portal.db', 'must be mysql://user:pass@host:port/db or sqlite:/path/file.db');
  for (const u of [['portal.auth.url', p.auth.url], ['portal.auth.existsUrl', p.auth.existsUrl], ['portal.roster.url', p.roster.url]] as const) {
    if (u[1] !== undefined && !/^https?:\/\//.test(u[1])) throw new ConfigError(u[0], 'must be an http:// or https:// URL');
  }
  checkSecret('portal.secret', p.secret);
  checkSecret('admin.token', c.admin.token);
  if (c.log.destination !== 'stdout' && c.log.syslog.transport === 'unix' && !isAbsolute(c.log.syslog.path)) throw new ConfigError('log.syslog.path', 'must be an absolute path (the local syslog socket, e.g. /dev/log)');
  if (c.cluster.nodeId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(c.cluster.nodeId)) throw new ConfigError('cluster.nodeId', 'letters, digits, - and _ only (1 to 64 characters)');
}

/**
 * Reads a YAML file into plain data; an unreadable file or a syntax error is a
 * ConfigError naming the file (and the line), with `key` as the key path (or none).
 */
export function readYamlFile(file: string, key = ''): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(key, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const pos = err.linePos?.[0];
    throw new ConfigError('', `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: YAML syntax: ${err.message.split('\n')[0]}`);
  }
  return doc.toJS();
}

/** Reads and validates a YAML file; relative paths in it are relative to the file. */
export function loadConfigFile(file: string, schema: ConfigSchema = CORE_SCHEMA): LoadedConfig {
  const data = readYamlFile(file);
  const config = parseConfig(data, schema);
  config.dataDir = resolveFrom(dirname(resolve(file)), config.dataDir);
  config.storage.mysql.shardMap = resolveFrom(dirname(resolve(file)), config.storage.mysql.shardMap);
  if (config.tls.cert) config.tls.cert = resolveFrom(dirname(resolve(file)), config.tls.cert);
  if (config.tls.key) config.tls.key = resolveFrom(dirname(resolve(file)), config.tls.key);
  return { config, file: resolve(file) };
}

/** Loads `file`, or the built-in defaults when no file is given. */
export function loadConfig(file?: string, schema: ConfigSchema = CORE_SCHEMA): LoadedConfig {
  if (file) return loadConfigFile(file, schema);
  const config = parseConfig({}, schema);
  config.dataDir = resolve(config.dataDir);
  return { config };
}

function resolveFrom(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}
