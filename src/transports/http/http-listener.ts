/**
 * The HTTP listener: BOSH at /http-bind and /bosh, WebSocket at /xmpp-websocket, and
 * room for the API, metrics and web pages of later issues (`routes`).
 *
 * Connections start on the lean HTTP/1.1 path (http1.ts), which answers BOSH and takes
 * WebSocket upgrades; any other request moves its connection to Node's http server,
 * which serves the routes (and BOSH and WebSocket too, through the same handlers).
 * HTTP concerns live here: keep-alive, CORS (with preflight), bounded bodies, content
 * types, safe default headers, slow clients.
 *
 * SECURITY: every response of both paths carries `X-Content-Type-Options: nosniff` and
 * the no-page CSP (`default-src 'none'; frame-ancestors 'none'`): a response a browser
 * is made to navigate to (a form POST to BOSH, an API answer) runs nothing and cannot be
 * framed, whatever a stanza in it contains. Routes that serve pages (the demo portal)
 * replace the CSP with their own strict one. Content types are fixed by the handlers
 * (BOSH: text/xml; node:http defaults to text/plain).
 */
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { C2sEndpoint } from '../../c2s/c2s-endpoint.js';
import { C2sSession } from '../../c2s/session.js';
import type { BoshManager } from '../bosh/bosh-manager.js';
import { WsTransport } from '../websocket/ws-transport.js';
import { Http1Connection, type HttpExchange, type Http1Routes } from './http1.js';
import { clientAddress, connectionAddress, forwardedClientAddress, rememberClientAddress, trustedProxiesOf } from '../../support/client-address.js';
import { acceptConnection } from '../proxy-protocol.js';

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
const TERMINATE_BAD_REQUEST = "<body type='terminate' condition='bad-request' xmlns='http://jabber.org/protocol/httpbind'/>";

export async function startHttpListener(c2s: C2sEndpoint, opts: { bosh: BoshManager | null; routes?: HttpRoute[] }): Promise<HttpListener> {
  const core = c2s.core;
  const cfg = core.config.listen.http;
  const limits = core.config.limits;
  const cors = corsPolicy(cfg.corsOrigins, cfg.secure);
  const routes = opts.routes ?? [];
  const trusted = trustedProxiesOf(cfg.trustedProxies, 'listen.http.trustedProxies');
  /** The client of one request: the connection's address, or X-Forwarded-For when that is a trusted proxy. */
  const requestAddress = (connection: string, headers: Record<string, string | string[] | undefined>): string => {
    const xff = headers['x-forwarded-for'];
    return forwardedClientAddress(connection, Array.isArray(xff) ? xff.join(', ') : xff, trusted);
  };

  // ------------------------------------------------------------------ BOSH (both paths)

  /** A BOSH request with its body read, from either HTTP path. */
  function bosh(method: string, headers: Record<string, string | undefined>, body: Buffer | null, ex: HttpExchange): void {
    const h = cors(headers.origin, headers.host);
    // SECURITY: a page of a foreign origin may send a "simple" POST (a text/plain form)
    // without preflight: it is refused here, before the body is parsed, so it creates no
    // session and sends no stanza; and it gets no CORS headers, so it reads nothing.
    if (h === null) return ex.respond(403, TEXT, 'origin not allowed\n');
    if (method === 'OPTIONS') return ex.respond(204, { ...h, ...PREFLIGHT }, '');
    if (method === 'GET' || method === 'HEAD') return ex.respond(200, { ...TEXT, ...h }, 'Parley BOSH endpoint (XEP-0124, XEP-0206): POST <body/> here.\n');
    if (method !== 'POST') return ex.respond(405, { ...TEXT, ...h, Allow: 'POST, GET, OPTIONS' }, 'use POST\n');
    if (!opts.bosh) return ex.respond(404, { ...TEXT, ...h }, 'BOSH is disabled\n');
    const type = headers['content-type'];
    if (type !== undefined && !BOSH_CONTENT_TYPES.test(type)) return ex.respond(400, { ...XML, ...h }, TERMINATE_BAD_REQUEST);
    opts.bosh.handle(body ?? Buffer.alloc(0), ex, h ?? {});
  }

  // ------------------------------------------------------------------ WebSocket (both paths)

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

  function upgrade(req: { method: string; url: string; headers: Record<string, string | undefined> }, socket: Duplex, head: Buffer, remoteAddress: string): void {
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\n${SAFE_HEADER_LINES}Connection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const url = new URL(req.url, 'http://localhost');
    if (!wss || !WS_PATHS.has(url.pathname)) return refuse(404, 'Not Found');
    // SECURITY: a page of a foreign origin cannot open an XMPP stream (cross-site WebSocket hijacking).
    if (cors(req.headers.origin, req.headers.host) === null) return refuse(403, 'Forbidden');
    // RFC 7395 §3.1: the sub-protocol must be "xmpp".
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    if (!protocols.includes('xmpp')) return refuse(400, 'Bad Request');
    // SECURITY: limits.unauthenticatedPerIp, refused before the upgrade.
    if (!core.limits.canConnect(remoteAddress)) return refuse(429, 'Too Many Requests');
    wss.handleUpgrade(req as unknown as IncomingMessage, socket, head, (ws) => {
      const t = new WsTransport(ws, remoteAddress, {
        limits: { maxStanzaBytes: limits.maxStanzaSize, maxDepth: limits.maxStanzaDepth, maxAttributes: limits.maxAttributes, maxNameLength: 256 },
        isSecure: cfg.secure,
        closeTimeoutMs: limits.closeTimeout,
        maxSendBuffer: limits.maxSendBuffer,
      });
      sockets.add(t);
      ws.on('close', () => sockets.delete(t));
      t.bind(new C2sSession(c2s, t));
    });
  }

  // ------------------------------------------------------------------ node:http (everything else)

  const node = createHttpServer({ keepAliveTimeout: cfg.keepAliveTimeout, requestTimeout: cfg.requestTimeout, headersTimeout: Math.min(cfg.requestTimeout, 10_000) }, (req, res) => {
    handleNode(req, res).catch((err: unknown) => {
      core.logs.for('http').error({ err, url: req.url?.split('?')[0] }, 'HTTP request failed');
      if (!res.headersSent) {
        res.writeHead(500, TEXT);
        res.end('internal server error\n');
      } else res.destroy();
    });
  });
  node.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrade({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers as Record<string, string> }, socket, head, requestAddress(connectionAddress(req.socket), req.headers));
  });

  async function handleNode(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Defaults for every response of this path; a route's writeHead may replace them
    // (its own Content-Type; a page's own CSP).
    res.setHeader('Content-Type', TEXT['Content-Type']);
    for (const k in SAFE_HEADERS) res.setHeader(k, SAFE_HEADERS[k as keyof typeof SAFE_HEADERS]);
    // Routes (API, metrics, admin) and BOSH read the client's address with clientAddress(req).
    if (trusted !== null) rememberClientAddress(req, requestAddress(connectionAddress(req.socket), req.headers));
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (BOSH_PATHS.has(url.pathname)) {
      const body = req.method === 'POST' ? await readBody(req, cfg.maxBodySize) : Buffer.alloc(0);
      if (body === null) {
        core.limits.hit('bosh-body-size');
        res.writeHead(413, { ...XML, Connection: 'close' });
        res.end("<body type='terminate' condition='policy-violation' xmlns='http://jabber.org/protocol/httpbind'/>");
        return;
      }
      bosh(req.method ?? 'GET', req.headers as Record<string, string>, body, nodeExchange(req, res));
      return;
    }
    if (WS_PATHS.has(url.pathname)) {
      res.writeHead(426, { ...TEXT, Upgrade: 'websocket' });
      res.end('WebSocket (RFC 7395, sub-protocol xmpp) only\n');
      return;
    }
    for (const route of routes) if (await route(req, res, url)) return;
    res.writeHead(404, TEXT);
    res.end('not found\n');
  }

  // ------------------------------------------------------------------ the lean path

  const fast: Http1Routes = {
    claims: (method, path, headers) => BOSH_PATHS.has(path) || (WS_PATHS.has(path) && method === 'GET' && headers.upgrade !== undefined),
    request: (req, ex) => {
      const address = requestAddress(req.remoteAddress, req.headers);
      bosh(req.method, req.headers, req.body, address === ex.remoteAddress ? ex : withRemoteAddress(ex, address));
    },
    upgrade: (req, socket, head) => upgrade({ method: req.method, url: req.target, headers: req.headers }, socket, head, requestAddress(req.remoteAddress, req.headers)),
    handOff(socket: Socket, unread: Buffer) {
      // node:http would read straight from the socket's handle; make it read the stream,
      // so the bytes already read (put back below) come first.
      const handle = (socket as unknown as { _handle?: { _consumed?: boolean } })._handle;
      if (handle) handle._consumed = true;
      if (unread.length > 0) socket.unshift(unread);
      node.emit('connection', socket);
      socket.resume();
    },
  };
  const http1Limits = {
    maxBodySize: cfg.maxBodySize,
    keepAliveTimeoutMs: cfg.keepAliveTimeout,
    requestTimeoutMs: cfg.requestTimeout,
    onBodyTooLarge: () => core.limits.hit('bosh-body-size'),
  };
  const conns = new Set<Socket>();
  const server = createNetServer({ noDelay: true }, (socket) => {
    conns.add(socket);
    socket.once('close', () => conns.delete(socket));
    acceptConnection(
      socket,
      trusted,
      (address, proxied) => {
        if (!proxied) {
          new Http1Connection(socket, fast, http1Limits, SAFE_HEADER_LINES);
          return;
        }
        rememberClientAddress(socket, address); // for node:http, should the connection move there
        new Http1Connection(socket, fast, http1Limits, SAFE_HEADER_LINES, address);
        socket.resume(); // paused after the header, with the bytes after it put back
      },
      (proxy, reason) => core.logs.for('http').warn({ proxy, reason }, 'connection from a trusted proxy without a valid PROXY v2 header closed'),
    );
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
        node.closeIdleConnections();
        // Sessions get their terminate responses meanwhile; then keep-alive connections go.
        setTimeout(() => {
          for (const s of conns) s.destroy();
          node.closeAllConnections();
        }, 500);
      }),
  };
}

/**
 * On every response (both paths). The CSP is for responses that are not pages: nothing
 * loads, nothing runs, no framing. Pages (the demo portal) send their own.
 */
export const SAFE_HEADERS = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
});
const SAFE_HEADER_LINES = Object.entries(SAFE_HEADERS)
  .map(([k, v]) => `${k}: ${v}\r\n`)
  .join('');
const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' };
const XML = { 'Content-Type': 'text/xml; charset=utf-8' };
const PREFLIGHT = {
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type',
  'Access-Control-Max-Age': '86400',
};

/** An HttpExchange over node:http. */
function nodeExchange(req: IncomingMessage, res: ServerResponse): HttpExchange {
  let done = false;
  const ex: HttpExchange = {
    remoteAddress: clientAddress(req),
    onAbort: null,
    respond(status, headers, body) {
      if (done) return;
      done = true;
      if (res.writableEnded || res.destroyed) return;
      res.writeHead(status, { ...headers, 'Content-Length': String(typeof body === 'string' ? Buffer.byteLength(body) : body.length) });
      res.end(body);
    },
    destroy() {
      done = true;
      res.destroy();
    },
    isOpen: () => !done && !res.destroyed,
  };
  res.once('close', () => {
    if (!done) {
      done = true;
      ex.onAbort?.();
    }
  });
  return ex;
}

/** `ex` answering for another client address (X-Forwarded-For from a trusted proxy). */
function withRemoteAddress(ex: HttpExchange, remoteAddress: string): HttpExchange {
  return {
    remoteAddress,
    get onAbort() {
      return ex.onAbort;
    },
    set onAbort(f) {
      ex.onAbort = f;
    },
    respond: (status, headers, body) => ex.respond(status, headers, body),
    destroy: () => ex.destroy(),
    isOpen: () => ex.isOpen(),
  };
}

/** Reads a request body up to `max` bytes; null beyond that. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
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
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks, size));
      }
    });
    req.on('error', () => {
      if (!done) {
        done = true;
        resolve(null);
      }
    });
  });
}

/**
 * CORS: the headers for a request from an allowed origin (none for a request without
 * Origin, or from the server's own origin), or null when its origin is not allowed.
 *
 * Allowed: the configured origins (`listen.http.corsOrigins`; "*" allows any), and the
 * server's own origin: an Origin equal to https://<Host>, or http://<Host> unless
 * `secure` (TLS is terminated in front, so a page on plain http://<Host> could only come
 * from someone on the network path).
 *
 * SECURITY: why comparing Origin with Host is sound. A browser sets both; a page can
 * choose neither. A foreign page's request carries its own origin, which is not the host
 * it is sent to. A page that gets the same Host as its origin must be served under that
 * very host name (a DNS rebinding attacker's name, say): the browser then sends only
 * that name's cookies, so the page gets what any client connecting directly gets.
 * Requests without Origin (non-browser clients; current browsers send it on every POST
 * and WebSocket handshake) are served: CORS protects browsers, not servers. A browser
 * that sent none would still get a text/xml response under the no-page CSP.
 */
export function corsPolicy(origins: string[], secure: boolean): (origin: string | undefined, host: string | undefined) => Record<string, string> | null {
  const any = origins.includes('*');
  const allowed = new Set(origins.map((o) => o.toLowerCase().replace(/\/$/, '')));
  const ANY = Object.freeze({ 'Access-Control-Allow-Origin': '*' });
  const NONE = Object.freeze({});
  return (origin, host): Record<string, string> | null => {
    if (origin === undefined) return NONE;
    if (any) return ANY;
    const o = origin.toLowerCase();
    if (allowed.has(o)) return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
    if (host !== undefined && host !== '') {
      const h = host.toLowerCase();
      if (o === `https://${h}` || (!secure && o === `http://${h}`)) return NONE;
    }
    return null;
  };
}
