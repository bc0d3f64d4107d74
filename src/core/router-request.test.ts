/** Router.request(): IQs the server sends and the replies it accepts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { x, type XmlElement } from '../xml/element.js';
import { Jid } from '../xmpp/jid.js';
import { StanzaError } from '../xmpp/errors.js';
import { HookBus } from './hooks.js';
import { IqDispatcher } from './iq.js';
import { SessionRegistry } from './registry.js';
import { Router } from './router.js';
import { ServerStats } from '../support/stats.js';
import type { LocalSession } from './session.js';

function setup() {
  const log = pino({ level: 'silent' });
  const sessions = new SessionRegistry();
  const router = new Router({
    domain: 'example.test',
    log,
    hooks: new HookBus(log),
    iq: new IqDispatcher(log),
    sessions,
    userExists: async () => true,
    track: (p) => p,
    stats: new ServerStats(),
  });
  const session = (full: string): LocalSession & { got: XmlElement[] } => {
    const got: XmlElement[] = [];
    const s = {
      id: full,
      jid: Jid.parse(full),
      transport: 'tcp' as const,
      isSecure: true,
      remoteAddress: '127.0.0.1',
      priority: 0,
      presence: x('presence'),
      rosterRequested: false,
      flags: 0,
      isAvailable: true,
      isClosed: false,
      got,
      deliver: (el: XmlElement) => void got.push(el),
      deliverSerialized: () => undefined,
      close: () => undefined,
    };
    sessions.add(s);
    return s;
  };
  return { router, session };
}

const reply = (to: string, id: string, type = 'result') => x('iq', { type, id, to }, x('query', { xmlns: 'urn:test' }));

test('the addressed client’s reply resolves the request; the request carries a fresh id and the account as sender', async () => {
  const { router, session } = setup();
  const a = session('a@example.test/r');
  const p = router.request(x('iq', { type: 'get' }, x('query', { xmlns: 'urn:test' })), Jid.parse('a@example.test'), a.jid);
  const sent = a.got[0]!;
  assert.equal(sent.attrs.from, 'a@example.test');
  assert.equal(sent.attrs.to, 'a@example.test/r');
  assert.match(sent.attrs.id ?? '', /^parley-/);
  const r = reply('a@example.test', sent.attrs.id!);
  r.attrs.from = a.jid.full;
  router.fromClient(a, r, Jid.parse('a@example.test'));
  assert.equal((await p).attrs.type, 'result');
});

test('a reply with the right id from anyone else is ignored (no spoofing), and the request times out', async () => {
  const { router, session } = setup();
  const a = session('a@example.test/r');
  const a2 = session('a@example.test/other');
  const m = session('m@example.test/r');
  const p = router.request(x('iq', { type: 'get' }, x('query', { xmlns: 'urn:test' })), Jid.parse('a@example.test'), a.jid, 200);
  const id = a.got[0]!.attrs.id!;
  const fromOther = reply('a@example.test', id);
  fromOther.attrs.from = a2.jid.full;
  router.fromClient(a2, fromOther, Jid.parse('a@example.test'));
  const fromStranger = reply('a@example.test', id);
  fromStranger.attrs.from = m.jid.full;
  router.fromClient(m, fromStranger, Jid.parse('a@example.test'));
  const keepAlive = setTimeout(() => undefined, 5000); // the request's own timer does not hold the process
  await assert.rejects(p, (e: unknown) => e instanceof StanzaError && e.condition === 'remote-server-timeout');
  clearTimeout(keepAlive);
});

test('a request to a resource that is gone resolves with the router’s error', async () => {
  const { router } = setup();
  const r = await router.request(x('iq', { type: 'get' }, x('query', { xmlns: 'urn:test' })), Jid.parse('a@example.test'), Jid.parse('a@example.test/gone'));
  assert.equal(r.attrs.type, 'error');
  assert.equal(StanzaError.fromStanza(r)?.condition, 'service-unavailable');
});
