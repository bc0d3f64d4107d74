/**
 * The authenticated admin HTTP API (JSON under /admin/v1/ on the HTTP listener). Off
 * unless `admin.token` is set; every request carries `Authorization: Bearer TOKEN`
 * (compared in constant time).
 *
 *   GET  /admin/v1/status            node, version, uptime, sessions by transport, cluster members, shard health
 *   GET  /admin/v1/sessions          this node's sessions, paged (?offset=0&limit=100); ?user=JID: that
 *                                    user's sessions on every node of the cluster
 *   POST /admin/v1/sessions/kick     {"jid": "alice@example.com[/res]", "reason"?: "..."}: ends the
 *                                    session(s) with the stream error policy-violation (on any node)
 *   POST /admin/v1/reload            read the config file again; apply limits, log levels, shard map
 *   GET  /admin/v1/shards            status of every shard (health, breaker, latency, counters)
 *   POST /admin/v1/shards/reload     read the shard map file again and apply it
 *   POST /admin/v1/shards/move       {"jid": "alice@example.com", "shard": "s2"}
 *   POST /admin/v1/shards/drain      {"shard": "s3"}: move every user off a draining shard
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerCore } from '../core/server.js';
import type { HttpRoute } from '../transports/http/http-listener.js';
import { ConfigError, StorageError } from '../support/errors.js';
import type { ShardedStorage } from '../storage/sharded.js';
import { drainShard, moveUser, reloadShards } from './shards.js';
import type { Reloader } from './reload.js';
import { PARLEY_VERSION } from '../support/version.js';
import type { LocalSession, TransportKind } from '../core/session.js';
import { Jid } from '../xmpp/jid.js';
import { StreamError } from '../xmpp/errors.js';

export const KICK_TEXT = 'kicked by an administrator';
const MAX_PAGE = 1000;

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

/** What `GET /admin/v1/status` and `parley status` show. */
export function serverStatus(core: ServerCore, storage: ShardedStorage): Record<string, unknown> {
  const byTransport: Record<TransportKind, number> = { tcp: 0, bosh: 0, websocket: 0 };
  for (const s of core.sessions.all()) byTransport[s.transport]++;
  const c = core.cluster;
  const shards = storage.status().map((s) => ({ name: s.name, address: s.address, healthy: s.healthy, breaker: s.breaker, draining: s.draining, latencyMs: s.latencyMs, lastError: s.lastError }));
  return {
    node: c.clustered ? c.nodeId : null,
    version: PARLEY_VERSION,
    domain: core.domain,
    startedAt: core.startedAt.toISOString(),
    uptimeSeconds: Math.round((Date.now() - core.startedAt.getTime()) / 1000),
    draining: core.draining,
    sessions: { total: core.sessions.size, users: core.sessions.users, byTransport },
    connections: core.connections.size,
    cluster: c.clustered ? { members: c.members() } : null,
    storage: { driver: core.config.storage.driver, healthy: shards.every((s) => s.healthy), shards },
    memory: { rssBytes: process.memoryUsage().rss, heapUsedBytes: process.memoryUsage().heapUsed },
  };
}

function sessionInfo(s: LocalSession, here: string | null): Record<string, unknown> {
  return {
    jid: s.jid.full,
    node: s.node ?? here,
    transport: s.transport,
    secure: s.isSecure,
    available: s.isAvailable,
    priority: s.priority,
    remoteAddress: s.node === undefined ? s.remoteAddress : null,
    boundAt: s.boundAt ? new Date(s.boundAt).toISOString() : null,
  };
}

function parseJid(v: string, name: string): Jid {
  const j = Jid.tryParse(v);
  if (!j || j.local === '') throw new ConfigError(name, `"${v}" is not a user JID (name@domain or name@domain/resource)`);
  return j;
}

function intParam(url: URL, name: string, def: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new ConfigError(name, `must be an integer from 0 to ${max}`);
  return n;
}

/** A page of sessions: one user's on every node, or this node's. */
export function listSessions(core: ServerCore, opts: { user?: string; offset: number; limit: number }): Record<string, unknown> {
  const here = core.cluster.clustered ? core.cluster.nodeId : null;
  if (opts.user !== undefined) {
    const j = parseJid(opts.user, 'user');
    const all = core.sessions.resources(j.bare).filter((s) => j.resource === '' || s.jid.resource === j.resource);
    return { total: all.length, offset: opts.offset, sessions: all.slice(opts.offset, opts.offset + opts.limit).map((s) => sessionInfo(s, here)) };
  }
  const page: Record<string, unknown>[] = [];
  let i = 0;
  for (const s of core.sessions.all()) {
    if (i >= opts.offset && page.length < opts.limit) page.push(sessionInfo(s, here));
    i++;
  }
  return { total: core.sessions.size, offset: opts.offset, sessions: page };
}

/** Ends a user's sessions (bare JID) or one session (full JID), on whichever node holds them. */
export function kickSessions(core: ServerCore, jid: string, reason?: string): { kicked: string[] } {
  const j = parseJid(jid, 'jid');
  const targets = core.sessions.resources(j.bare).filter((s) => j.resource === '' || s.jid.resource === j.resource);
  const text = reason ?? KICK_TEXT;
  const kicked: string[] = [];
  for (const s of [...targets]) {
    if (s.isClosed) continue;
    const local = s as LocalSession & { kick?: (text: string) => void };
    if (s.node === undefined && typeof local.kick === 'function') local.kick(text);
    else s.close(new StreamError('policy-violation', text));
    kicked.push(s.jid.full);
  }
  core.logs.for('admin').info({ jid: j.full, kicked: kicked.length }, 'sessions kicked');
  return { kicked };
}

export function adminRoutes(core: ServerCore, storage: ShardedStorage, reloader?: Reloader): HttpRoute {
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
        case 'GET /admin/v1/status':
          send(res, 200, serverStatus(core, storage));
          return true;
        case 'GET /admin/v1/sessions':
          send(res, 200, listSessions(core, { user: url.searchParams.get('user') ?? undefined, offset: intParam(url, 'offset', 0, Number.MAX_SAFE_INTEGER), limit: intParam(url, 'limit', 100, MAX_PAGE) }));
          return true;
        case 'POST /admin/v1/sessions/kick': {
          const body = await readJson(req);
          const reason = body.reason;
          if (reason !== undefined && (typeof reason !== 'string' || reason.length > 1024)) throw new ConfigError('reason', 'must be a string of at most 1024 characters');
          const r = kickSessions(core, field(body, 'jid'), reason as string | undefined);
          send(res, r.kicked.length > 0 ? 200 : 404, r.kicked.length > 0 ? r : { ...r, error: `no session of ${String(body.jid)}` });
          return true;
        }
        case 'POST /admin/v1/reload': {
          if (!reloader) {
            send(res, 501, { error: 'this server cannot reload its configuration' });
            return true;
          }
          const r = await reloader.reload();
          send(res, r.ok ? 200 : 400, r);
          return true;
        }
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
