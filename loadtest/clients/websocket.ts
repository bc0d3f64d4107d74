/** The generator's WebSocket client (RFC 7395). */
import { WebSocket } from 'ws';
import { XmlStreamParser } from '../../src/xml/parser.js';
import { LoadClient, type ClientOptions } from './client.js';

const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const LIMITS = { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 256, maxNameLength: 512 };

export class WsLoadClient extends LoadClient {
  #ws: WebSocket | null = null;
  readonly #parser: XmlStreamParser;

  constructor(opts: ClientOptions) {
    super(opts);
    this.#parser = new XmlStreamParser(
      {
        onStreamStart: () => undefined,
        onElement: (el) => {
          if (el.ns === FRAMING) {
            if (el.name === 'close') this.ended('stream-closed');
            return;
          }
          this.received(el);
        },
        onStreamEnd: () => undefined,
        onError: (c) => this.ended('xml:' + c),
      },
      { framed: true, limits: LIMITS },
    );
  }

  async login(): Promise<void> {
    const o = this.opts;
    const ws = new WebSocket(`ws://${o.host}:${o.port}${o.path}`, ['xmpp'], { localAddress: o.localAddress, perMessageDeflate: false });
    this.#ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (e: NodeJS.ErrnoException) => reject({ condition: 'connect:' + (e.code ?? e.message) }));
    });
    ws.on('message', (d: Buffer) => this.#parser.write(d));
    ws.on('close', () => this.ended('connection-closed'));
    ws.on('error', () => undefined);
    const open = `<open xmlns='${FRAMING}' to='${o.domain}' version='1.0'/>`;
    ws.send(open);
    await this.expect((el) => el.localName === 'features');
    await this.authenticate((x) => ws.send(x));
    ws.send(open);
    const features = await this.expect((el) => el.localName === 'features');
    this.smOffered = features.getChild('sm', 'urn:xmpp:sm:3') !== undefined;
    await this.bind((x) => ws.send(x));
  }

  send(xml: string): void {
    if (!this.closed) this.#ws?.send(xml);
  }

  close(polite: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.online = false;
    const ws = this.#ws;
    if (!ws) return;
    if (polite) {
      ws.send(`<close xmlns='${FRAMING}'/>`);
      ws.close();
      setTimeout(() => ws.terminate(), 2000).unref();
    } else ws.terminate();
  }
}
