/**
 * HTTP routes of modules: a module serves the paths under a prefix of its own on the
 * HTTP listener (an upload service, a push gateway's callback). The listener asks this
 * table after the core's own routes (BOSH, WebSocket, the portal and admin APIs, health,
 * metrics); the safe headers (nosniff, CSP) are the listener's and apply here too.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Serves a request and returns true, or returns false to let the next route try. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

/** Paths the core serves itself: a module may not claim them or anything under them. */
const CORE_PREFIXES = ['/http-bind', '/bosh', '/xmpp-websocket', '/api/', '/admin/', '/metrics', '/health', '/.well-known/', '/widget/', '/demo'];

const PREFIX = /^\/[A-Za-z0-9._~\-/]*$/;

export class HttpRoutes {
  readonly #routes: Array<{ prefix: string; handler: HttpRoute; owner: string }> = [];

  /** Adds a prefix; returns its removal. Throws on a bad, core or taken prefix. */
  add(prefix: string, handler: HttpRoute, owner: string): () => void {
    if (!PREFIX.test(prefix) || prefix === '/' || prefix.includes('//') || prefix.includes('/..') || prefix.includes('/./')) throw new Error(`module ${owner}: HTTP route prefix ${JSON.stringify(prefix)} must be a path such as /upload/`);
    if (CORE_PREFIXES.some((c) => prefix.startsWith(c) || c.startsWith(prefix))) throw new Error(`module ${owner}: HTTP route prefix ${prefix} overlaps a path of the core`);
    const taken = this.#routes.find((r) => prefix.startsWith(r.prefix) || r.prefix.startsWith(prefix));
    if (taken) throw new Error(`module ${owner}: HTTP route prefix ${prefix} overlaps ${taken.prefix} of module ${taken.owner}`);
    const entry = { prefix, handler, owner };
    this.#routes.push(entry);
    return () => {
      const i = this.#routes.indexOf(entry);
      if (i >= 0) this.#routes.splice(i, 1);
    };
  }

  /** The prefixes served, with their modules (the haproxy config and docs list them). */
  get prefixes(): Array<{ prefix: string; owner: string }> {
    return this.#routes.map((r) => ({ prefix: r.prefix, owner: r.owner }));
  }

  /** One route for the listener: the module whose prefix the path starts with, else not served. */
  readonly route: HttpRoute = (req, res, url) => {
    for (const r of this.#routes) if (url.pathname.startsWith(r.prefix)) return r.handler(req, res, url);
    return false;
  };
}
