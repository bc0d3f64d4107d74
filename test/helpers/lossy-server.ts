/**
 * A deliberately broken XMPP server for testing the load generator: plaintext TCP, any
 * PLAIN credentials accepted, messages routed between connected users, and every n-th
 * message silently dropped (counted, so a test knows how many were lost).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { XmlStreamParser } from '../../src/xml/parser.js';

export interface LossyServer {
  port: number;
  dropped(): number;
  routed(): number;
  close(): Promise<void>;
}

export async function startLossyServer(domain: string, dropEvery: number): Promise<LossyServer> {
  const sessions = new Map<string, Socket>();
  let count = 0;
  let dropped = 0;
  let routed = 0;
  const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='${domain}' id='x' version='1.0'>`;
  const server: Server = createServer((socket) => {
    let user = '';
    let bare = '';
    const parser: XmlStreamParser = new XmlStreamParser(
      {
        onStreamStart() {
          socket.write(header);
          socket.write(
            user
              ? "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
              : "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
          );
        },
        onElement(el) {
          if (el.name === 'auth') {
            user = Buffer.from(el.text(), 'base64').toString().split('\0')[1] ?? '';
            socket.write("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
            parser.reset();
          } else if (el.name === 'iq' && el.getChild('bind')) {
            bare = `${user}@${domain}`;
            sessions.set(bare, socket);
            socket.write(`<iq type='result' id='${el.attrs.id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${bare}/load</jid></bind></iq>`);
          } else if (el.name === 'message') {
            count++;
            if (count % dropEvery === 0) {
              dropped++;
              return;
            }
            const to = (el.attrs.to ?? '').split('/')[0]!;
            el.attrs.from = `${bare}/load`;
            routed++;
            sessions.get(to)?.write(el.toString());
          }
        },
        onStreamEnd() {
          socket.end('</stream:stream>');
        },
        onError() {
          socket.destroy();
        },
      },
    );
    socket.on('data', (d: Buffer) => parser.write(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (sessions.get(bare) === socket) sessions.delete(bare);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    dropped: () => dropped,
    routed: () => routed,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions.values()) s.destroy();
        server.close(() => r());
      }),
  };
}
