/**
 * A client's address: its socket's, unless the socket comes from a trusted proxy
 * (`listen.*.trustedProxies`). Then the transports take it from the PROXY v2 header
 * (src/transports/proxy-protocol.ts) and, on HTTP, from X-Forwarded-For. Every consumer
 * (per-address limits, allow-lists, logs, the admin session list) reads the result:
 * the transport's `remoteAddress`, or `clientAddress(req)` in a node:http route.
 */
import type { IncomingMessage } from 'node:http';
import { isIP, type BlockList, type Socket } from 'node:net';
import { addressAllowed, blockListOf } from './address-list.js';

/** The trusted proxies of a listener, or null when there are none (the default). */
export function trustedProxiesOf(entries: string[], key: string): BlockList | null {
  return entries.length === 0 ? null : blockListOf(entries, key);
}

export function isTrustedProxy(trusted: BlockList | null, address: string): boolean {
  return trusted !== null && addressAllowed(trusted, address);
}

/**
 * The client behind `peer` (a connection's address, after any PROXY header) given its
 * X-Forwarded-For: from a trusted proxy, the right-most address that is not a trusted
 * proxy (each proxy appends the address it saw, as haproxy's `option forwardfor` does,
 * so only what trusted proxies appended is believed); from anyone else, `peer`.
 */
export function forwardedClientAddress(peer: string, forwardedFor: string | undefined, trusted: BlockList | null): string {
  // SECURITY: X-Forwarded-For is the client's own word unless a trusted proxy sent it.
  if (forwardedFor === undefined || !isTrustedProxy(trusted, peer)) return peer;
  let client = peer;
  const hops = forwardedFor.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim();
    // SECURITY: a hop that is not an address (a port, "unknown", garbage) ends the walk:
    // the last address we could believe stands.
    if (isIP(hop) === 0) break;
    client = hop;
    if (!isTrustedProxy(trusted, hop)) break;
  }
  return client;
}

const requestAddresses = new WeakMap<object, string>();

/** Set by the HTTP listener for each request (or connection) it hands to node:http. */
export function rememberClientAddress(key: IncomingMessage | object, address: string): void {
  requestAddresses.set(key, address);
}

/** A connection's address: the one its PROXY header gave (remembered by the listener), else its socket's. */
export function connectionAddress(socket: Socket): string {
  return requestAddresses.get(socket) ?? socket.remoteAddress ?? '';
}

/** The client's address of a node:http request, as the HTTP listener resolved it. */
export function clientAddress(req: IncomingMessage): string {
  return requestAddresses.get(req) ?? requestAddresses.get(req.socket) ?? req.socket.remoteAddress ?? '';
}
