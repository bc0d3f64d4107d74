/**
 * Health endpoints for haproxy and orchestrators, on the HTTP listener:
 *   GET /health/live   200 while the process serves HTTP at all
 *   GET /health/ready  200 when this node takes new sessions; 503 while it starts,
 *                      drains (shutting down) or, in a cluster, is not a member
 * Both answer a small JSON body (node, sessions, members) and are not authenticated: they
 * say nothing a load balancer may not know.
 */
import type { ServerCore } from '../core/server.js';
import type { HttpRoute } from '../transports/http/http-listener.js';

export function healthRoutes(core: ServerCore): HttpRoute {
  return (req, res, url) => {
    const path = url.pathname.replace(/\/+$/, '');
    if (path !== '/health/live' && path !== '/health/ready') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return true;
    }
    const c = core.cluster;
    const member = c.members().includes(c.nodeId);
    const ready = !core.draining && member;
    const status = path === '/health/live' ? 200 : ready ? 200 : 503;
    const body = JSON.stringify({
      status: path === '/health/live' ? 'live' : ready ? 'ready' : core.draining ? 'draining' : 'not-a-member',
      node: c.clustered ? c.nodeId : null,
      sessions: core.sessions.size,
      members: c.clustered ? c.members() : null,
    });
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body + '\n');
    return true;
  };
}
