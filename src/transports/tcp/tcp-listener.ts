/**
 * The TCP listeners: c2s with STARTTLS and c2s with direct TLS (XEP-0368).
 */
import { createServer as createNetServer, type BlockList, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import type { C2sCore, C2sEndpoint } from '../../c2s/c2s-endpoint.js';
import { C2sSession } from '../../c2s/session.js';
import { StreamError } from '../../xmpp/errors.js';
import { trustedProxiesOf } from '../../support/client-address.js';
import { acceptConnection } from '../proxy-protocol.js';
import { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';

export interface TcpListener {
  readonly name: string;
  readonly address: AddressInfo;
  /** Stops accepting connections at once; resolves when the existing ones are gone too. */
  close(): Promise<void>;
}

const TLS_HANDSHAKE_TIMEOUT_MS = 120_000;

function transportOptions(core: C2sCore, directTls: boolean): TcpTransportOptions {
  const l = core.config.limits;
  return {
    limits: { maxStanzaBytes: l.maxStanzaSize, maxDepth: l.maxStanzaDepth, maxAttributes: l.maxAttributes, maxNameLength: 256 },
    secureContext: core.tls.context,
    endPointHash: core.tls.endPointHash,
    closeTimeoutMs: l.closeTimeout,
    maxSendBuffer: l.maxSendBuffer,
    directTls,
  };
}

function accept(c2s: C2sEndpoint, socket: Socket, opts: TcpTransportOptions, remoteAddress?: string): void {
  const transport = new TcpTransport(socket, opts, remoteAddress);
  // SECURITY: limits.unauthenticatedPerIp: refused at once, with a stream error.
  if (!c2s.core.limits.canConnect(transport.remoteAddress)) {
    transport.close(new StreamError('policy-violation', 'too many unauthenticated connections from your address'));
    return;
  }
  transport.bind(new C2sSession(c2s, transport));
}

async function listen(server: NetServer, host: string, port: number, name: string): Promise<TcpListener> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    name,
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** PROXY v2 from trusted proxies (listen.*.trustedProxies), then `next` with the client's address. */
function viaProxy(core: C2sCore, listener: string, socket: Socket, trusted: BlockList | null, next: (socket: Socket, remoteAddress: string, proxied: boolean) => void): void {
  acceptConnection(
    socket,
    trusted,
    (address, proxied) => next(socket, address, proxied),
    (proxy, reason) => core.logs.for('tcp').warn({ listener, proxy, reason }, 'connection from a trusted proxy without a valid PROXY v2 header closed'),
  );
}

/** c2s with STARTTLS (RFC 6120 §5). */
export function startC2sListener(c2s: C2sEndpoint): Promise<TcpListener> {
  const core = c2s.core;
  const cfg = core.config.listen.c2s;
  const trusted = trustedProxiesOf(cfg.trustedProxies, 'listen.c2s.trustedProxies');
  // Options are read per connection: a live reload of `limits` applies to new connections.
  const server = createNetServer({ noDelay: true }, (socket) =>
    viaProxy(core, 'c2s', socket, trusted, (s, address, proxied) => {
      accept(c2s, s, transportOptions(core, false), address);
      if (proxied) s.resume(); // paused after the header, with the bytes after it put back
    }),
  );
  return listen(server, cfg.host, cfg.port, 'c2s');
}

/** c2s with direct TLS (XEP-0368). */
export function startC2sTlsListener(c2s: C2sEndpoint): Promise<TcpListener> {
  const core = c2s.core;
  const cfg = core.config.listen.c2sTls;
  const trusted = trustedProxiesOf(cfg.trustedProxies, 'listen.c2sTls.trustedProxies');
  const tlsOptions = { cert: core.tls.cert, key: core.tls.key, minVersion: 'TLSv1.2', ALPNProtocols: ['xmpp-client'] } as const;
  /** Client addresses of the TLS sockets made below, after a PROXY header. */
  const remoteAddresses = new WeakMap<TLSSocket, string>();
  const server = createTlsServer(tlsOptions, (socket: TLSSocket) => accept(c2s, socket, transportOptions(core, true), remoteAddresses.get(socket)));
  server.on('tlsClientError', () => {
    // A failed handshake is the client's problem; the socket is already destroyed.
  });
  if (trusted === null) return listen(server, cfg.host, cfg.port, 'c2sTls');
  // With trusted proxies the PROXY header comes before the ClientHello: a plain TCP
  // server reads it, then TLS starts on the rest of the bytes.
  const front = createNetServer({ noDelay: true }, (raw) =>
    viaProxy(core, 'c2sTls', raw, trusted, (s, address, proxied) => {
      if (!proxied) {
        server.emit('connection', s);
        return;
      }
      // The bytes after the header (the start of the ClientHello, often in the same read)
      // were put back on the socket, where TLS, reading from the handle, would not see
      // them: take them off and hand them to the TLS layer first.
      const head: Buffer[] = [];
      for (let b: Buffer | null; (b = s.read() as Buffer | null) !== null; ) head.push(b);
      const tls = new TLSSocket(s, { isServer: true, server, secureContext: core.tls.context, ALPNProtocols: [...tlsOptions.ALPNProtocols] });
      remoteAddresses.set(tls, address);
      // SECURITY: the handshake is bounded as on tls.Server (its handshakeTimeout default).
      tls.setTimeout(TLS_HANDSHAKE_TIMEOUT_MS, () => tls.destroy());
      tls.once('secure', () => {
        tls.setTimeout(0);
        server.emit('secureConnection', tls);
      });
      tls.on('error', () => tls.destroy());
      const ssl = (tls as unknown as { _handle: { receive(b: Buffer): void } | null })._handle;
      for (const b of head) ssl?.receive(b);
      s.resume();
    }),
  );
  return listen(front, cfg.host, cfg.port, 'c2sTls');
}
