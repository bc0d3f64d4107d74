/**
 * A TCP forwarder on a free loopback port: a second address for the same database server
 * (a replica's VIP, a failover address) that a test can close, cutting every connection.
 * With `tamper`, a man in the middle: each chunk passes through `up` (client → target) or
 * `down` (target → client) with the connection's number (1, 2, …), which returns the
 * bytes to forward instead.
 */
import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Stops listening and destroys every connection through it. */
  close(): Promise<void>;
}

export interface ProxyTamper {
  up?(chunk: Buffer, conn: number): Buffer;
  down?(chunk: Buffer, conn: number): Buffer;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1', tamper?: ProxyTamper): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((client) => {
    const conn = ++accepted;
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    if (tamper?.up) client.on('data', (c: Buffer) => upstream.write(tamper.up!(c, conn)));
    else client.pipe(upstream);
    if (tamper?.down) upstream.on('data', (c: Buffer) => client.write(tamper.down!(c, conn)));
    else upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size / 2;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
