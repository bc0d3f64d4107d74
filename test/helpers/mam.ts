/**
 * Helpers for archive and carbons tests: a client over WebSocket (the @xmpp/client
 * library, as a browser would use it), and MAM queries (XEP-0313) with their results.
 */
// @ts-expect-error @xmpp/client ships no type declarations
import { client as xmppClient } from '@xmpp/client';
import { WebSocket as NodeWebSocket } from 'ws';
import { DOMAIN } from './server.js';
import { TestClient, xml, type Element } from './client.js';

export const MAM = 'urn:xmpp:mam:2';
export const RSM = 'http://jabber.org/protocol/rsm';
export const SID = 'urn:xmpp:sid:0';
export const FORWARD = 'urn:xmpp:forward:0';
export const CARBONS = 'urn:xmpp:carbons:2';

/** Logs in over WebSocket (RFC 7395) with @xmpp/client. Node 20 has no global WebSocket: `ws` stands in. */
export async function connectWebSocket(opts: { httpPort: number; username: string; resource: string; password?: string; presence?: boolean }): Promise<TestClient> {
  (globalThis as { WebSocket?: unknown }).WebSocket ??= NodeWebSocket;
  const xmpp = xmppClient({
    service: `ws://127.0.0.1:${opts.httpPort}/xmpp-websocket`,
    domain: DOMAIN,
    resource: opts.resource,
    credentials: async (authenticate: (c: unknown, m: string) => Promise<void>, mechanisms: string[]) => {
      await authenticate({ username: opts.username, password: opts.password ?? 'secret' }, mechanisms.find((m) => m.startsWith('SCRAM')) ?? mechanisms[0]!);
    },
  });
  // A loaded 2-core machine (tests in parallel) can take more than the default 2 s to answer a stream open.
  xmpp.timeout = 10_000;
  xmpp.reconnect.stop();
  const c = new TestClient(xmpp);
  c.jid = String(await xmpp.start());
  if (opts.presence !== false) await xmpp.send(xml('presence'));
  return c;
}

export interface QueryOptions {
  with?: string;
  start?: string;
  end?: string;
  afterId?: string;
  beforeId?: string;
  ids?: string[];
  max?: number;
  after?: string;
  /** '' asks for the last page. */
  before?: string;
  index?: number;
  flip?: boolean;
  /** Extra raw fields. */
  fields?: Array<[string, string]>;
}

export interface QueryResult {
  reply: Element;
  /** The result messages, in the order received. */
  results: Element[];
  /** Archive ids of the results. */
  ids: string[];
  /** Bodies of the forwarded messages. */
  bodies: string[];
  fin?: Element;
  first?: string;
  firstIndex?: number;
  last?: string;
  count?: number;
  complete: boolean;
}

let seq = 0;

export async function mamQuery(c: TestClient, o: QueryOptions = {}): Promise<QueryResult> {
  const queryid = `q${++seq}`;
  const field = (name: string, ...values: string[]) => xml('field', { var: name }, ...values.map((v) => xml('value', null, v)));
  const fields = [field('FORM_TYPE', MAM)];
  if (o.with) fields.push(field('with', o.with));
  if (o.start) fields.push(field('start', o.start));
  if (o.end) fields.push(field('end', o.end));
  if (o.afterId) fields.push(field('after-id', o.afterId));
  if (o.beforeId) fields.push(field('before-id', o.beforeId));
  if (o.ids) fields.push(field('ids', ...o.ids));
  for (const [k, v] of o.fields ?? []) fields.push(field(k, v));
  const set: Element[] = [];
  if (o.max !== undefined) set.push(xml('max', null, String(o.max)));
  if (o.after !== undefined) set.push(xml('after', null, o.after));
  if (o.before !== undefined) set.push(xml('before', null, o.before));
  if (o.index !== undefined) set.push(xml('index', null, String(o.index)));
  const query = xml(
    'query',
    { xmlns: MAM, queryid },
    xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...fields),
    set.length ? xml('set', { xmlns: RSM }, ...set) : null,
    o.flip ? xml('flip-page') : null,
  );
  const reply = await c.iq(xml('iq', { type: 'set' }, query));
  const results = c.received.filter((el) => el.name === 'message' && el.getChild('result', MAM)?.attrs.queryid === queryid);
  const fin = reply.getChild('fin', MAM);
  const rsm = fin?.getChild('set', RSM);
  const firstEl = rsm?.getChild('first');
  const countText = rsm?.getChildText('count');
  return {
    reply,
    results,
    ids: results.map((r) => r.getChild('result', MAM)!.attrs.id!),
    bodies: results.map((r) => forwardedMessage(r)?.getChildText('body') ?? ''),
    fin,
    first: firstEl?.text(),
    firstIndex: firstEl?.attrs.index === undefined ? undefined : Number(firstEl.attrs.index),
    last: rsm?.getChildText('last') ?? undefined,
    count: countText == null ? undefined : Number(countText),
    complete: fin?.attrs.complete === 'true',
  };
}

/** The message inside a MAM result or a carbon copy. */
export function forwardedMessage(el: Element): Element | undefined {
  const wrapper = el.getChild('result', MAM) ?? el.getChild('received', CARBONS) ?? el.getChild('sent', CARBONS);
  return wrapper?.getChild('forwarded', FORWARD)?.getChild('message');
}

/** The stanza-id a message carries from `by`. */
export function stanzaId(el: Element, by: string): string | undefined {
  return el.getChildren('stanza-id', SID).find((s) => s.attrs.by === by)?.attrs.id;
}

/** The condition of an IQ error. */
export function errorCondition(reply: Element): string | undefined {
  const err = reply.getChild('error');
  return err?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas')?.name;
}
