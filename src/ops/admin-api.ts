/**
 * The authenticated admin HTTP API (JSON under /admin/v1/ on the HTTP listener). Off
 * unless `admin.token` is set; every request carries `Authorization: Bearer TOKEN`
 * (compared in constant time). The operations issue adds sessions, limits and logs here.
 *
 *   GET  /admin/v1/shards            status of every shard (health, breaker, latency, counters)
 *   POST /admin/v1/shards/reload     read the shard map file again and apply it
 *   POST /admin/v1/shards/move       {"jid": "alice@example.com", "shard": "s2"}
 *   POST /admin/v1/shards/drain      {"shard": "s3"}: move every user off a draining shard
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerCore } from '../core/server.js';
import type { HttpRoute } from '../transports/http/http-listener.js';
import { ConfigError, StorageError } from '../xmpp/errors.js';
import type { ShardedStorage } from '../storage/sharded.js';
import { drainShard, moveUser, reloadShards } from './shards.js';

const JSON_TYPE = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };
const MAX_BODY = 64 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, JSON_TYPE);
  res.end(JSON.stringify(body, null, 2) + '\n');
}

/** Constant-time comparison of the bearer token (hashes first, so lengths leak nothing). */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = createHash('sha256').update(m ? m[1]! : '').digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ConfigError('body', `larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ConfigError('body', 'is not valid JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError('body', 'must be a JSON object');
  return v as Record<string, unknown>;
}

function field(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '') throw new ConfigError(name, 'is required (a non-empty string)');
  return v;
}

export function adminRoutes(core: ServerCore, storage: ShardedStorage): HttpRoute {
  const token = core.config.admin.token;
  return async (req, res, url) => {
    if (!url.pathname.startsWith('/admin/')) return false;
    if (!token) {
      send(res, 404, { error: 'the admin API is off (set admin.token)' });
      return true;
    }
    if (!tokenMatches(req.headers.authorization, token)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="parley-admin"');
      send(res, 401, { error: 'a valid bearer token is required' });
      return true;
    }
    const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
    try {
      switch (route) {
        case 'GET /admin/v1/shards':
          send(res, 200, { driver: core.config.storage.driver, shards: storage.status() });
          return true;
        case 'POST /admin/v1/shards/reload':
          send(res, 200, await reloadShards(core.config, storage));
          return true;
        case 'POST /admin/v1/shards/move': {
          const body = await readJson(req);
          send(res, 200, await moveUser(core.config, storage, field(body, 'jid'), field(body, 'shard')));
          return true;
        }
        case 'POST /admin/v1/shards/drain': {
          const body = await readJson(req);
          send(res, 200, await drainShard(core.config, storage, field(body, 'shard'), core.logs.for('admin')));
          return true;
        }
        default:
          send(res, 404, { error: `no such admin endpoint: ${route}` });
          return true;
      }
    } catch (e) {
      if (e instanceof ConfigError) send(res, 400, { error: e.message, field: e.path });
      else if (e instanceof StorageError) send(res, 503, { error: e.message, transient: e.transient });
      else {
        core.logs.for('admin').error({ err: e, route }, 'admin API failed');
        send(res, 500, { error: 'internal error' });
      }
      return true;
    }
  };
}
