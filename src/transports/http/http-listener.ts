/**
 * The HTTP listener: BOSH at /http-bind and /bosh, WebSocket at /xmpp-websocket, and
 * room for the API, metrics and web pages of later issues (`routes`).
 * HTTP concerns live here: keep-alive, CORS (with preflight), bounded bodies,
 * content types, slow clients.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { ServerCore } from '../../core/server.js';
import { C2sSession } from '../../c2s/session.js';
import type { BoshManager } from '../bosh/bosh-manager.js';
import { WsTransport } from '../websocket/ws-transport.js';

export interface HttpListener {
  readonly name: string;
  readonly address: AddressInfo;
  /** Stops accepting connections at once; resolves when the existing ones are gone too. */
  close(): Promise<void>;
}

/** A route of a later module (API, metrics, web): return true when it handled the request. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

const BOSH_PATHS = new Set(['/http-bind', '/http-bind/', '/bosh', '/bosh/']);
const WS_PATHS = new Set(['/xmpp-websocket', '/xmpp-websocket/']);
/** Content types a BOSH client may send (XEP-0124 §5 lets constrained clients use the last three). */
const BOSH_CONTENT_TYPES = /^(text\/xml|application\/xml|text\/plain|application\/x-www-form-urlencoded)\b/i;

export async function startHttpListener(core: ServerCore, opts: { bosh: BoshManager | null; routes?: HttpRoute[] }): Promise<HttpListener> {
  const cfg = core.config.listen.http;
  const limits = core.config.limits;
  const cors = corsPolicy(cfg.corsOrigins);
  const routes = opts.routes ?? [];

  const server = createServer({ keepAliveTimeout: cfg.keepAliveTimeout, requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      core.log.error({ err, url: req.url }, 'HTTP request failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('internal server error\n');
      } else res.destroy();
    });
  });
  // SECURITY: slow or stuck clients cannot hold sockets forever (headers, bodies).
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = cfg.keepAliveTimeout;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const origin = req.headers.origin;
    const corsHeaders = cors(origin);
    if (BOSH_PATHS.has(url.pathname)) {
      if (origin !== undefined && corsHeaders === null) return plain(res, 403, 'origin not allowed\n');
      const h = corsHeaders ?? {};
      if (req.method === 'OPTIONS') return preflight(res, h);
      if (req.method === 'GET') return plain(res, 200, 'Parley BOSH endpoint (XEP-0124, XEP-0206): POST <body/> here.\n', h);
      if (req.method !== 'POST') return plain(res, 405, 'use POST\n', { ...h, Allow: 'POST, GET, OPTIONS' });
      if (!opts.bosh) return plain(res, 404, 'BOSH is disabled\n', h);
      const type = req.headers['content-type'];
      if (type !== undefined && !BOSH_CONTENT_TYPES.test(type)) {
        return plain(res, 400, "<body type='terminate' condition='bad-request' xmlns='http://jabber.org/protocol/httpbind'/>", { ...h, 'Content-Type': 'text/xml; charset=utf-8' });
      }
      const body = await readBody(req, res, cfg.maxBodySize);
      if (body === null) return;
      opts.bosh.handle(req, res, body, { ...h, 'Cache-Control': 'no-store' });
      return;
    }
    if (WS_PATHS.has(url.pathname)) return plain(res, 426, 'WebSocket (RFC 7395, sub-protocol xmpp) only\n', { Upgrade: 'websocket' });
    for (const route of routes) if (await route(req, res, url)) return;
    plain(res, 404, 'not found\n');
  }

  // ------------------------------------------------------------------ WebSocket
  const wsCfg = core.config.websocket;
  const wss = wsCfg.enabled
    ? new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: limits.maxStanzaSize + 1024,
        handleProtocols: (protocols) => (protocols.has('xmpp') ? 'xmpp' : false),
      })
    : null;
  const sockets = new Set<WsTransport>();
  const pinger = setInterval(() => {
    for (const t of sockets) t.keepAlive();
  }, wsCfg.pingInterval);
  pinger.unref();

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!wss || !WS_PATHS.has(url.pathname)) return refuse(404, 'Not Found');
    const origin = req.headers.origin;
    if (origin !== undefined && cors(origin) === null) return refuse(403, 'Forbidden');
    // RFC 7395 §3.1: the sub-protocol must be "xmpp".
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    if (!protocols.includes('xmpp')) return refuse(400, 'Bad Request');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const t = new WsTransport(ws, req.socket.remoteAddress ?? '', {
        limits: { maxStanzaBytes: limits.maxStanzaSize, maxDepth: limits.maxStanzaDepth, maxAttributes: limits.maxAttributes, maxNameLength: 256 },
        isSecure: cfg.secure,
        closeTimeoutMs: limits.closeTimeout,
        maxSendBuffer: limits.maxSendBuffer,
      });
      sockets.add(t);
      ws.on('close', () => sockets.delete(t));
      t.bind(new C2sSession(core, t));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: cfg.host, port: cfg.port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    name: 'http',
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(pinger);
        server.close(() => resolve());
        server.closeIdleConnections();
        // Sessions get their terminate responses meanwhile; then keep-alive connections go.
        setTimeout(() => server.closeAllConnections(), 500);
      }),
  };
}

/** Reads a request body up to `max` bytes; answers 413 and returns null beyond that. */
function readBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    tooLarge(res, max);
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > max) {
        done = true;
        tooLarge(res, max);
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', () => {
      if (!done) {
        done = true;
        resolve(null);
      }
    });
  });
}

function tooLarge(res: ServerResponse, max: number): void {
  plain(res, 413, `<body type='terminate' condition='policy-violation' xmlns='http://jabber.org/protocol/httpbind'><text>bodies are limited to ${max} bytes</text></body>`, {
    'Content-Type': 'text/xml; charset=utf-8',
    Connection: 'close',
  });
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers, 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function preflight(res: ServerResponse, headers: Record<string, string>): void {
  res.writeHead(204, {
    ...headers,
    'Access-Control-Allow-Methods': 'POST, GET, OPTIONS',
    'Access-Control-Allow-Headers': 'Content-Type',
    'Access-Control-Max-Age': '86400',
    'Content-Length': '0',
  });
  res.end();
}

/**
 * CORS: headers for an allowed origin (an empty set for requests without Origin), or
 * null when the origin is not allowed.
 */
function corsPolicy(origins: string[]): (origin: string | undefined) => Record<string, string> | null {
  const any = origins.includes('*');
  const allowed = new Set(origins.map((o) => o.toLowerCase().replace(/\/$/, '')));
  return (origin): Record<string, string> | null => {
    if (origin === undefined) return {};
    if (any) return { 'Access-Control-Allow-Origin': '*' };
    if (allowed.has(origin.toLowerCase())) return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
    return null;
  };
}
