/**
 * The portal's HTTP API (JSON under /api/v1/ on the HTTP listener), documented in
 * docs/api.md and docs/openapi.yaml:
 *
 *   POST /api/v1/events    one event {id, type, ...} (events.ts): friendships, accounts,
 *                          profiles, notifications, broadcasts; a repeated id is applied once
 *   POST /api/v1/prebind   {user, resource?} → {jid, sid, rid, url}: a BOSH session the page attaches to
 *   POST /api/v1/tokens    {user, ttl?} → {token, expires}: a login token (for portals that
 *                          would rather not sign tokens themselves)
 *
 * On only when `portal.secret` is set and `portal.api.enabled`; answers only addresses in
 * `portal.api.allowFrom` (loopback by default). Every request is authenticated with the
 * secret: `Authorization: Bearer <secret>`, or signed (`X-Parley-Timestamp` and
 * `X-Parley-Signature`, tokens.ts, in canonical form only) so the secret never travels; a
 * signed request is good once (in the whole cluster: the replay memory is the cluster's,
 * src/core/replay-guard.ts) and only within `portal.api.maxSkew` of its timestamp. Bad input gets 4xx with
 * `{"error", "field", "problem"}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerCore } from '../core/server.js';
import type { UserStore } from '../auth/user-store.js';
import type { HttpRoute } from '../transports/http/http-listener.js';
import type { BoshManager } from '../transports/bosh/bosh-manager.js';
import { StanzaError } from '../xmpp/errors.js';
import { StorageError, ConfigError } from '../support/errors.js';
import { bearerMatches, signLoginToken, verifyRequestSignature } from './tokens.js';
import { EventError, PortalEvents } from './events.js';
import { checkPortalUser, prebind } from './prebind.js';
import { BOSH_COOKIE } from '../ops/haproxy-config.js';
import { addressAllowed, blockListOf } from '../support/address-list.js';
import { clientAddress } from '../support/client-address.js';

const JSON_TYPE = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };
/** Large enough for a profile event with an avatar (vcard.maxSize is 64 KiB by default). */
const MAX_BODY = 256 * 1024;

export interface PortalApi {
  route: HttpRoute;
  events: PortalEvents;
  stop(): void;
}

/** The API's route, or null when the API is off (no secret, or disabled). */
export function portalApi(core: ServerCore<UserStore>, bosh: BoshManager | null): PortalApi | null {
  const cfg = core.config.portal;
  const secret = cfg.secret;
  if (!secret || !cfg.api.enabled) return null;
  const allowed = blockListOf(cfg.api.allowFrom, 'portal.api.allowFrom');
  const events = new PortalEvents(core);
  /** Signatures used within the skew window, on this node or in the cluster (a signed request is good once). */
  const replayGuard = () => core.cluster.replayGuard;

  const route: HttpRoute = async (req, res, url) => {
    if (!url.pathname.startsWith('/api/')) return false;
    const remote = clientAddress(req);
    if (!addressAllowed(allowed, remote)) {
      send(res, 403, { error: 'forbidden', problem: `the API does not answer ${remote} (portal.api.allowFrom)` });
      return true;
    }
    const path = url.pathname.replace(/\/+$/, '');
    if (req.method === 'OPTIONS' || req.method === 'GET' || req.method === 'HEAD') {
      res.setHeader('Allow', 'POST');
      send(res, 405, { error: 'method-not-allowed', problem: 'the API takes POST with a JSON body' });
      return true;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (e) {
      send(res, 413, { error: 'too-large', field: 'body', problem: (e as Error).message });
      return true;
    }
    let auth: string | null;
    try {
      auth = await authenticate(req, path, raw);
    } catch (e) {
      // The cluster's replay memory (Redis) did not answer: refused, never let through unchecked.
      core.logs.for('portal').warn({ err: e, path }, 'portal API: the replay memory did not answer');
      send(res, 503, { error: 'unavailable', problem: 'cannot check signed requests for replays now; try again', transient: true });
      return true;
    }
    if (auth !== null) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="parley-portal"');
      send(res, 401, { error: 'unauthorized', problem: auth });
      return true;
    }
    let body: Record<string, unknown>;
    try {
      body = parseJson(raw);
    } catch (e) {
      const err = e as EventError;
      send(res, 400, { error: 'bad-request', field: err.field, problem: err.problem });
      return true;
    }
    try {
      switch (`${req.method} ${path}`) {
        case 'POST /api/v1/events':
          send(res, 200, await events.apply(body));
          return true;
        case 'POST /api/v1/prebind': {
          if (!bosh) throw new EventError('bosh', 'BOSH is off on this server (bosh.enabled)', 409);
          const user = stringField(body, 'user');
          const resource = body.resource === undefined ? undefined : stringField(body, 'resource');
          // In a cluster the session lives on this node: the page's BOSH requests must come
          // here, so the answer names the haproxy cookie that pins them (haproxy-config.ts).
          const node = core.cluster.clustered ? core.cluster.nodeId : null;
          send(res, 200, { ...(await prebind(core, bosh, user, { resource })), url: '/http-bind', node, cookie: node ? `${BOSH_COOKIE}=${node}` : null });
          return true;
        }
        case 'POST /api/v1/tokens': {
          const user = stringField(body, 'user');
          const ttl = body.ttl === undefined ? 300 : body.ttl;
          const maxTtl = Math.floor(cfg.tokenMaxTtl / 1000);
          if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > maxTtl) throw new EventError('ttl', `must be a whole number of seconds from 1 to ${maxTtl} (portal.tokenMaxTtl)`);
          const expires = Math.floor(Date.now() / 1000) + ttl;
          const jid = await checkPortalUser(core, user);
          send(res, 200, { jid: jid.bare, token: signLoginToken(secret, core.domain, jid.local, expires), expires });
          return true;
        }
        default:
          send(res, 404, { error: 'not-found', problem: `no such endpoint: ${req.method} ${path}` });
          return true;
      }
    } catch (e) {
      if (e instanceof EventError) send(res, e.status, { error: e.status === 404 ? 'not-found' : e.status === 409 ? 'conflict' : 'bad-request', field: e.field, problem: e.problem });
      else if (e instanceof StorageError) send(res, 503, { error: 'unavailable', problem: e.message, transient: e.transient });
      else if (e instanceof StanzaError) send(res, 409, { error: e.condition, problem: e.text ?? e.condition });
      else if (e instanceof ConfigError) send(res, 400, { error: 'bad-request', field: e.path, problem: e.message });
      else {
        core.logs.for('portal').error({ err: e, path }, 'portal API request failed');
        send(res, 500, { error: 'internal', problem: 'internal error (logged)' });
      }
      return true;
    }
  };

  /** Null when the request carries the secret (bearer) or a fresh, unused signature; else why not. */
  async function authenticate(req: IncomingMessage, path: string, raw: Buffer): Promise<string | null> {
    const authorization = req.headers.authorization;
    if (authorization !== undefined) return bearerMatches(authorization, secret!) ? null : 'wrong bearer secret';
    const ts = header(req, 'x-parley-timestamp');
    const sig = header(req, 'x-parley-signature');
    if (ts === undefined || sig === undefined) return 'send Authorization: Bearer <portal.secret>, or X-Parley-Timestamp and X-Parley-Signature';
    // SECURITY: canonical forms only (no leading zeros, no whitespace of any kind).
    if (!/^(?:0|[1-9]\d{0,11})$/.test(ts)) return 'X-Parley-Timestamp must be Unix seconds';
    const timestamp = Number(ts);
    const now = Date.now();
    if (Math.abs(now - timestamp * 1000) > cfg.api.maxSkew) return `X-Parley-Timestamp is more than ${cfg.api.maxSkew / 1000} s from this server's clock (expired or replayed)`;
    // SECURITY: strict v1=<64 lowercase hex> (tokens.ts); the replay memory is keyed on the
    // MAC that was verified, so another spelling of a used signature is the same key.
    const mac = verifyRequestSignature(secret!, req.method ?? 'POST', path, timestamp, raw, sig);
    if (mac === null) return 'wrong signature';
    // SECURITY: a captured signed request cannot be sent again, to this node or (in a
    // cluster, the memory is in Redis) to any other; good while its timestamp is.
    if (!(await replayGuard().claim(`api:${mac.toString('hex')}`, 2 * cfg.api.maxSkew))) return 'this signed request was used already (replay)';
    return null;
  }

  return { route, events, stop: () => events.stop() };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function stringField(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '') throw new EventError(name, 'is required (a non-empty string)');
  return v;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, JSON_TYPE);
  res.end(JSON.stringify(body) + '\n');
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new Error(`larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks, size);
}

function parseJson(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0) throw new EventError('body', 'is empty (a JSON object is required)');
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new EventError('body', `is not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new EventError('body', 'must be a JSON object');
  return v as Record<string, unknown>;
}
