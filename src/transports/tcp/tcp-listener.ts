/**
 * The TCP listeners: c2s with STARTTLS and c2s with direct TLS (XEP-0368).
 */
import { createServer as createNetServer, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { ServerCore } from '../../core/server.js';
import { C2sSession } from '../../c2s/session.js';
import { StreamError } from '../../xmpp/errors.js';
import { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';

export interface TcpListener {
  readonly name: string;
  readonly address: AddressInfo;
  /** Stops accepting connections at once; resolves when the existing ones are gone too. */
  close(): Promise<void>;
}

function transportOptions(core: ServerCore, directTls: boolean): TcpTransportOptions {
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

function accept(core: ServerCore, socket: Socket, opts: TcpTransportOptions): void {
  const transport = new TcpTransport(socket, opts);
  // SECURITY: limits.unauthenticatedPerIp: refused at once, with a stream error.
  if (!core.limits.canConnect(transport.remoteAddress)) {
    transport.close(new StreamError('policy-violation', 'too many unauthenticated connections from your address'));
    return;
  }
  transport.bind(new C2sSession(core, transport));
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

/** c2s with STARTTLS (RFC 6120 §5). */
export function startC2sListener(core: ServerCore): Promise<TcpListener> {
  const cfg = core.config.listen.c2s;
  // Options are read per connection: a live reload of `limits` applies to new connections.
  const server = createNetServer({ noDelay: true }, (socket) => accept(core, socket, transportOptions(core, false)));
  return listen(server, cfg.host, cfg.port, 'c2s');
}

/** c2s with direct TLS (XEP-0368). */
export function startC2sTlsListener(core: ServerCore): Promise<TcpListener> {
  const cfg = core.config.listen.c2sTls;
  const server = createTlsServer({ cert: core.tls.cert, key: core.tls.key, minVersion: 'TLSv1.2', ALPNProtocols: ['xmpp-client'] }, (socket: TLSSocket) =>
    accept(core, socket, transportOptions(core, true)),
  );
  server.on('tlsClientError', () => {
    // A failed handshake is the client's problem; the socket is already destroyed.
  });
  return listen(server, cfg.host, cfg.port, 'c2sTls');
}
