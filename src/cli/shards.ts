/**
 * `parley shards ...`: the MySQL shard map from the command line.
 *
 *   init                 create every shard's database and bring its schema up to date
 *   status               each shard: address, health, breaker, users, latency
 *   reload               make the running server read the shard map file again
 *   move JID SHARD       move one user's data to a shard, online
 *   drain SHARD          move every user off a draining shard, online
 *
 * reload, move and drain talk to the running server through the admin API (admin.token),
 * which holds the per-user write freeze; `move --offline` works on the databases directly
 * and is only for a stopped server. status falls back to probing the shards itself.
 */
import type { Config } from '../config/schema.js';
import { ConfigError, ParleyError } from '../support/errors.js';
import { loadShardMap, shardAddress, type ShardSpec } from '../storage/shard-map.js';
import { createDatabase, openMysqlBackend } from '../storage/mysql.js';
import { mysqlSettings, openMysqlShard, openStorage } from '../storage/open.js';
import { MODULE_SCHEMAS } from '../modules/index.js';
import { accountName } from './user.js';

const USAGE = 'usage: parley shards init | status | reload | move JID SHARD [--offline] | drain SHARD';

class ServerUnreachable extends ParleyError {
  readonly code = 'SERVER_UNREACHABLE';
}

/** Calls the running server's admin API. */
export async function admin(config: Config, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const token = config.admin.token;
  if (!token) throw new ConfigError('admin.token', 'is not set: the running server cannot be reached without it');
  const h = config.listen.http;
  const host = h.host === '0.0.0.0' || h.host === '::' ? '127.0.0.1' : h.host.includes(':') ? `[${h.host}]` : h.host;
  const url = `http://${host}:${h.port}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10 * 60_000),
    });
  } catch (e) {
    throw new ServerUnreachable(`no running server answers at ${url} (${(e as { cause?: { code?: string } }).cause?.code ?? String(e)})`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: text.trim() };
  }
  if (!res.ok) throw new ConfigError('', `server answered ${res.status}: ${(json as { error?: string }).error ?? text}`);
  return json;
}

export async function shardsCommand(config: Config, args: string[], opts: { offline?: boolean }): Promise<number> {
  if (config.storage.driver !== 'mysql') throw new ConfigError('storage.driver', 'is sqlite: shards exist with the mysql driver only');
  const [sub, a1, a2] = args;
  switch (sub) {
    case 'init':
      return init(config);
    case 'status':
      return status(config);
    case 'reload': {
      loadShardMap(config.storage.mysql.shardMap); // a bad file is reported here, with the key
      const r = (await admin(config, 'POST', '/admin/v1/shards/reload')) as Record<string, unknown>;
      console.log(`shard map reloaded: ${JSON.stringify(r)}`);
      return 0;
    }
    case 'move': {
      if (!a1 || !a2) throw new ConfigError('', USAGE);
      const name = accountName(a1, config.domain);
      const jid = `${name}@${config.domain}`;
      if (opts.offline) {
        const storage = await openStorage(config, MODULE_SCHEMAS);
        try {
          const r = await storage.moveUser(config.domain, name, a2);
          console.log(r.moved ? `moved ${jid} from ${r.from} to ${r.to} (${r.rows} rows)` : `${jid} is already on ${r.to}`);
        } finally {
          await storage.close();
        }
        return 0;
      }
      const r = (await admin(config, 'POST', '/admin/v1/shards/move', { jid, shard: a2 })) as { moved: boolean; from: string; to: string; rows: number; frozenMs: number };
      console.log(r.moved ? `moved ${jid} from ${r.from} to ${r.to} (${r.rows} rows, writes held ${Math.round(r.frozenMs)} ms)` : `${jid} is already on ${r.to}`);
      return 0;
    }
    case 'drain': {
      if (!a1) throw new ConfigError('', USAGE);
      const r = (await admin(config, 'POST', '/admin/v1/shards/drain', { shard: a1 })) as { moved: number; failed: Array<{ jid: string; error: string }>; remaining: number };
      console.log(`shard ${a1}: ${r.moved} users moved, ${r.failed.length} failed, ${r.remaining} left`);
      for (const f of r.failed) console.log(`  ${f.jid}: ${f.error}`);
      return r.failed.length === 0 && r.remaining === 0 ? 0 : 1;
    }
    default:
      console.error(USAGE);
      return 1;
  }
}

async function init(config: Config): Promise<number> {
  const map = loadShardMap(config.storage.mysql.shardMap);
  const t = mysqlSettings(config);
  for (const spec of map.shards) {
    await createDatabase(spec, t);
    const b = await openMysqlShard(spec, t, MODULE_SCHEMAS);
    await b.close();
    console.log(`shard ${spec.name}: ${shardAddress(spec)} ready${spec.name === map.directory ? ' (directory)' : ''}`);
  }
  return 0;
}

interface Row {
  name: string;
  address: string;
  healthy: boolean;
  breaker: string;
  users: number | string;
  latencyMs: number | null;
  note: string;
}

async function status(config: Config): Promise<number> {
  const map = loadShardMap(config.storage.mysql.shardMap);
  let rows: Row[];
  let source: string;
  try {
    const r = (await admin(config, 'GET', '/admin/v1/shards')) as { shards: Array<{ name: string; address: string; healthy: boolean; breaker: string; latencyMs: number | null; draining: boolean; lastError: string | null }> };
    const counts = await Promise.all(map.shards.map((s) => countUsers(s, config)));
    rows = r.shards.map((s) => ({
      name: s.name,
      address: s.address,
      healthy: s.healthy,
      breaker: s.breaker,
      users: counts[map.shards.findIndex((m) => m.name === s.name)] ?? '?',
      latencyMs: s.latencyMs,
      note: [s.draining ? 'draining' : '', s.name === map.directory ? 'directory' : '', s.lastError && !s.healthy ? s.lastError : ''].filter(Boolean).join(', '),
    }));
    source = 'running server';
  } catch (e) {
    if (!(e instanceof ServerUnreachable) && !(e instanceof ConfigError && e.path === 'admin.token')) throw e;
    source = `probed directly (${e.message})`;
    rows = await Promise.all(
      map.shards.map(async (s) => {
        const b = openMysqlBackend(s, mysqlSettings(config));
        try {
          const latencyMs = await b.ping(2000);
          return { name: s.name, address: shardAddress(s), healthy: true, breaker: 'n/a', users: await countUsers(s, config), latencyMs, note: [s.draining ? 'draining' : '', s.name === map.directory ? 'directory' : ''].filter(Boolean).join(', ') };
        } catch (err) {
          return { name: s.name, address: shardAddress(s), healthy: false, breaker: 'n/a', users: '?', latencyMs: null, note: (err as { code?: string }).code ?? String(err) };
        } finally {
          await b.close();
        }
      }),
    );
  }
  console.log(`shards (${source}):`);
  const table = [['SHARD', 'ADDRESS', 'HEALTH', 'BREAKER', 'USERS', 'LATENCY', 'NOTE'], ...rows.map((r) => [r.name, r.address, r.healthy ? 'up' : 'DOWN', r.breaker, String(r.users), r.latencyMs === null ? '-' : `${r.latencyMs.toFixed(1)} ms`, r.note])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  return rows.every((r) => r.healthy) ? 0 : 1;
}

/** Accounts stored on a shard (a count on its users table). */
async function countUsers(spec: ShardSpec, config: Config): Promise<number | string> {
  const b = openMysqlBackend(spec, { ...mysqlSettings(config), poolSize: 1 });
  try {
    const r = await b.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    return Number(r?.n ?? 0);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_DB_ERROR') return 'uninitialised (run parley shards init)';
    return code ?? '?';
  } finally {
    await b.close();
  }
}
