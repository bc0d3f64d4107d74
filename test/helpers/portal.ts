/**
 * For the portal tests: a fake portal (a real HTTP server on a free port whose answers
 * the test sets and whose requests it counts) and raw SASL attempts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RawClient, STREAM_HEADER } from './client.js';
import { ScramClient } from '../../src/xmpp/sasl/client.js';

export type PortalHandler = (req: IncomingMessage, body: string, res: ServerResponse) => void | Promise<void>;

export interface FakePortal {
  url: string;
  /** Requests seen, by path (without the query). */
  hits: Map<string, number>;
  handler: PortalHandler;
  close(): Promise<void>;
}

export async function startFakePortal(handler: PortalHandler): Promise<FakePortal> {
  const portal: FakePortal = { url: '', hits: new Map(), handler, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      portal.hits.set(path, (portal.hits.get(path) ?? 0) + 1);
      Promise.resolve(portal.handler(req, Buffer.concat(chunks).toString('utf8'), res)).catch(() => {
        res.statusCode = 500;
        res.end();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  portal.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  portal.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return portal;
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

/** The `<mechanisms/>` a plain TCP stream offers. */
export async function offeredMechanisms(port: number): Promise<string[]> {
  const c = await RawClient.connect(port);
  c.write(STREAM_HEADER);
  const text = await c.until(/<\/stream:features>/);
  c.close();
  return [...text.matchAll(/<mechanism>([^<]+)<\/mechanism>/g)].map((m) => m[1]!);
}

/** One PLAIN attempt on plain TCP (requireTls: false): `<success…` or the `<failure>` element. */
export async function plainAttempt(port: number, user: string, password: string): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    c.write(STREAM_HEADER);
    await c.until(/<\/stream:features>/);
    c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
    const text = await c.until(/<success|<\/failure>/, 10_000);
    return text.slice(text.search(/<success|<failure/));
  } finally {
    c.close();
  }
}

/** One SCRAM-SHA-256 login on plain TCP: `<success…` or the `<failure>` element. */
export async function scramAttempt(port: number, user: string, password: string): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    c.write(STREAM_HEADER);
    await c.until(/<\/stream:features>/);
    const client = new ScramClient('SHA-256', user, password, { supportsPlus: false });
    c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${client.first().toString('base64')}</auth>`);
    const ch = await c.until(/<\/challenge>|<\/failure>/, 10_000);
    const m = /<challenge[^>]*>([^<]*)<\/challenge>/.exec(ch);
    if (!m) return ch.slice(ch.search(/<failure/));
    const before = c.text.length;
    c.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${(await client.final(Buffer.from(m[1]!, 'base64'))).toString('base64')}</response>`);
    await c.until(new RegExp(`^[\\s\\S]{${before}}[\\s\\S]*(<success|</failure>)`), 10_000);
    const rest = c.text.slice(before);
    return rest.slice(rest.search(/<success|<failure/));
  } finally {
    c.close();
  }
}

/** The SASL condition of a `<failure>` element text, or 'success'. */
export function outcome(text: string): string {
  if (text.startsWith('<success')) return 'success';
  const m = /<failure[^>]*><([a-z-]+)/.exec(text);
  return m ? m[1]! : text;
}
