/**
 * The listener of external components (XEP-0114): plain TCP, loopback by default
 * (`listen.component`). The protocol has no TLS: the handshake never sends the secret
 * (only a digest bound to a fresh stream id), but the stanzas go in the clear, so the
 * listener belongs on loopback or a private network.
 * References: XEP-0114 §2 (the stream), §3 (the handshake).
 */
import { createServer, type AddressInfo } from 'node:net';
import { StreamError } from '../../xmpp/errors.js';
import { ComponentStream, type ComponentGateway, type ComponentStreamOptions } from './component-stream.js';

export interface ComponentListenerSettings extends ComponentStreamOptions {
  host: string;
  port: number;
}

export interface ComponentListener {
  readonly name: string;
  readonly address: AddressInfo;
  /** Stops accepting, ends every component stream (system-shutdown), resolves when the connections are gone. */
  close(): Promise<void>;
}

/** Starts listening; every connection is handed to `gateway` (the core's component hub). */
export async function startComponentListener(settings: ComponentListenerSettings, gateway: ComponentGateway): Promise<ComponentListener> {
  const open = new Set<ComponentStream>();
  const server = createServer({ noDelay: true }, (socket) => {
    const stream = new ComponentStream(socket, settings, gateway);
    open.add(stream);
    socket.once('close', () => open.delete(stream));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: settings.host, port: settings.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    name: 'component',
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of [...open]) s.close(new StreamError('system-shutdown', 'the server is shutting down'));
      }),
  };
}
