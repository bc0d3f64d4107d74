/** The generator's TCP client: a plaintext XML stream (servers allow it on loopback). */
import { connect, type Socket } from 'node:net';
import { XmlStreamParser } from '../../src/xml/parser.js';
import { LoadClient, type ClientOptions } from './client.js';

const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 256, maxNameLength: 512 };

export class TcpLoadClient extends LoadClient {
  #socket: Socket | null = null;
  readonly #parser: XmlStreamParser;
  #header: string;

  constructor(opts: ClientOptions) {
    super(opts);
    this.#header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${opts.domain}' version='1.0'>`;
    this.#parser = new XmlStreamParser(
      {
        onStreamStart: () => undefined,
        onElement: (el) => this.received(el),
        onStreamEnd: () => this.ended('stream-closed'),
        onError: (c) => this.ended('xml:' + c),
      },
      { limits: LIMITS },
    );
  }

  async login(): Promise<void> {
    const o = this.opts;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: o.host, port: o.port, localAddress: o.localAddress }, () => resolve(s));
      s.once('error', (e: NodeJS.ErrnoException) => reject({ condition: 'connect:' + (e.code ?? 'error') }));
    });
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#parser.write(d));
    socket.on('error', () => undefined);
    socket.on('close', () => this.ended('connection-closed'));
    socket.write(this.#header);
    await this.expect((el) => el.localName === 'features');
    await this.authenticate((x) => socket.write(x));
    this.#parser.reset();
    socket.write(this.#header);
    const features = await this.expect((el) => el.localName === 'features');
    this.smOffered = features.getChild('sm', 'urn:xmpp:sm:3') !== undefined;
    await this.bind((x) => socket.write(x));
  }

  send(xml: string): void {
    if (!this.closed) this.#socket?.write(xml);
  }

  close(polite: boolean): void {
    if (this.closed) return;
    const s = this.#socket;
    this.closed = true;
    this.online = false;
    if (!s) return;
    if (polite) {
      s.end('</stream:stream>');
      setTimeout(() => s.destroy(), 2000).unref();
    } else s.destroy();
  }
}
