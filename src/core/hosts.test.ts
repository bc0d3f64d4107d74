/** The routing table of hosts, and what the router, IQ dispatch and disco do with it. */
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
import { DiscoRegistry } from './disco.js';
import { ANY_HOST, HostError, HostTable, scopeKey, type HostEntry } from './hosts.js';
import type { LocalSession } from './session.js';

const DOMAIN = 'example.test';

function entry(host: string, got: Array<[string, string, string]> = [], kind: HostEntry['kind'] = 'module', name?: string): HostEntry {
  return { host, kind, owner: 'test', name, deliver: (s, from, to) => void got.push([s.name, from.full, to.full]) };
}

test('the table serves a host once: not the user domain, not twice, only DNS names; removal frees it', () => {
  const t = new HostTable(DOMAIN);
  const remove = t.add(entry('echo.example.test'));
  assert.equal(t.get('echo.example.test')?.owner, 'test');
  assert.equal(t.get('elsewhere.example'), undefined);
  assert.equal(t.get(DOMAIN), undefined); // the user domain is the router's own path, never an entry
  const refused = (h: string, code: string) => assert.throws(() => t.add(entry(h)), (e: unknown) => e instanceof HostError && e.code === code);
  refused(DOMAIN, 'HOST_TAKEN');
  refused('echo.example.test', 'HOST_TAKEN');
  refused('Echo.Example.Test', 'HOST_INVALID');
  refused('echo..example', 'HOST_INVALID');
  refused('', 'HOST_INVALID');
  remove();
  assert.equal(t.get('echo.example.test'), undefined);
  assert.doesNotThrow(() => t.add(entry('echo.example.test')));
});

test('a removal returned for an entry that was replaced does not remove the new one', () => {
  const t = new HostTable(DOMAIN);
  const remove = t.add(entry('a.example.test'));
  remove();
  t.add(entry('a.example.test', [], 'component'));
  remove();
  assert.equal(t.get('a.example.test')?.kind, 'component');
});

test('disco items: module hosts first, then components, each with its name', () => {
  const t = new HostTable(DOMAIN);
  t.add(entry('gw.example.test', [], 'component', 'Gateway'));
  t.add(entry('conference.example.test', [], 'module', 'Rooms'));
  t.add(entry('upload.example.test'));
  assert.deepEqual(
    t.discoItems().map((i) => [i.attrs.jid, i.attrs.name]),
    [
      ['conference.example.test', 'Rooms'],
      ['upload.example.test', undefined],
      ['gw.example.test', 'Gateway'],
    ],
  );
});

test('scope keys tell the server, accounts and each host apart', () => {
  const keys = [scopeKey('host'), scopeKey('account'), scopeKey({ host: 'a.example.test' }), scopeKey({ host: 'b.example.test' }), scopeKey({ host: ANY_HOST })];
  assert.equal(new Set(keys).size, keys.length);
  assert.equal(scopeKey({ host: 'a.example.test' }), scopeKey({ host: 'a.example.test' }));
});

test('disco registrations per host, with what is registered for every module host after the host\'s own', () => {
  const d = new DiscoRegistry();
  const a = { host: 'a.example.test' };
  d.addFeature('urn:a', a);
  d.addFeature('urn:any', { host: ANY_HOST });
  d.addFeature('urn:server', 'host');
  d.addIdentity({ category: 'service', type: 'a' }, a);
  assert.deepEqual(d.features(a), ['urn:a', 'urn:any']);
  assert.deepEqual(d.features({ host: 'b.example.test' }), ['urn:any']);
  assert.deepEqual(d.features('host'), ['urn:server']);
  assert.deepEqual(d.identities(a), [{ category: 'service', type: 'a' }]);
  assert.deepEqual(d.identities('host'), []);
});

function setup() {
  const log = pino({ level: 'silent' });
  const hosts = new HostTable(DOMAIN);
  const iq = new IqDispatcher(log);
  const sessions = new SessionRegistry();
  const stats = new ServerStats();
  const router = new Router({ domain: DOMAIN, hosts, log, hooks: new HookBus(log), iq, sessions, userExists: async () => true, track: (p) => p, stats });
  const got: XmlElement[] = [];
  const s = {
    id: 'a',
    jid: Jid.parse(`a@${DOMAIN}/r`),
    transport: 'tcp' as const,
    isSecure: true,
    remoteAddress: '127.0.0.1',
    priority: 0,
    presence: x('presence'),
    rosterRequested: false,
    flags: 0,
    isAvailable: true,
    isClosed: false,
    deliver: (el: XmlElement) => void got.push(el),
    deliverSerialized: () => undefined,
    close: () => undefined,
  } satisfies LocalSession;
  sessions.add(s);
  return { router, hosts, iq, session: s, got, stats };
}

const settle = () => new Promise((r) => setImmediate(r));

test('the router hands every stanza for a module host and its JIDs to the host, except IQ get/set to the host itself', async () => {
  const { router, hosts, iq, session, got } = setup();
  const seen: Array<[string, string, string]> = [];
  hosts.add(entry('echo.example.test', seen));
  iq.register('get', { host: 'echo.example.test' }, 'urn:xmpp:ping', 'ping', () => null, 'test');
  const msg = (to: string) => x('message', { to, from: session.jid.full, type: 'chat' }, x('body', null, 'hi'));
  for (const to of ['echo.example.test', 'room@echo.example.test', 'room@echo.example.test/nick', 'echo.example.test/res']) router.fromClient(session, msg(to), Jid.parse(to));
  router.route(x('presence', { to: 'room@echo.example.test/nick', from: session.jid.full }), session.jid, Jid.parse('room@echo.example.test/nick'), session);
  router.fromClient(session, x('iq', { to: 'echo.example.test', type: 'get', id: 'p1', from: session.jid.full }, x('ping', { xmlns: 'urn:xmpp:ping' })), Jid.parse('echo.example.test'));
  router.fromClient(session, x('iq', { to: 'echo.example.test', type: 'get', id: 'v1', from: session.jid.full }, x('query', { xmlns: 'jabber:iq:version' })), Jid.parse('echo.example.test'));
  router.fromClient(session, x('iq', { to: 'room@echo.example.test', type: 'get', id: 'r1', from: session.jid.full }, x('query', { xmlns: 'jabber:iq:version' })), Jid.parse('room@echo.example.test'));
  await settle();
  await settle();
  assert.deepEqual(seen, [
    ['message', session.jid.full, 'echo.example.test'],
    ['message', session.jid.full, 'room@echo.example.test'],
    ['message', session.jid.full, 'room@echo.example.test/nick'],
    ['message', session.jid.full, 'echo.example.test/res'],
    ['presence', session.jid.full, 'room@echo.example.test/nick'],
    ['iq', session.jid.full, 'room@echo.example.test'],
  ]);
  const replies = got.filter((el) => el.name === 'iq').sort((a, b) => (a.attrs.id! < b.attrs.id! ? -1 : 1));
  assert.deepEqual(
    replies.map((r) => [r.attrs.id, r.attrs.type, r.attrs.from, StanzaError.fromStanza(r)?.condition]),
    [
      ['p1', 'result', 'echo.example.test', undefined],
      ['v1', 'error', 'echo.example.test', 'service-unavailable'],
    ],
  );
});

test('a host\'s StanzaError bounces the stanza; an unknown domain gets remote-server-not-found; a removed host is unknown again', async () => {
  const { router, hosts, session, got } = setup();
  const remove = hosts.add({ host: 'picky.example.test', kind: 'module', owner: 'test', deliver: () => Promise.reject(new StanzaError('not-allowed')) });
  const send = (to: string, id: string) => router.fromClient(session, x('message', { to, id, from: session.jid.full, type: 'chat' }, x('body', null, 'x')), Jid.parse(to));
  send('picky.example.test', 'm1');
  send('nowhere.example', 'm2');
  await settle();
  remove();
  send('picky.example.test', 'm3');
  await settle();
  assert.deepEqual(
    got.map((el) => [el.attrs.id, el.attrs.type, StanzaError.fromStanza(el)?.condition]),
    [
      ['m2', 'error', 'remote-server-not-found'],
      ['m1', 'error', 'not-allowed'],
      ['m3', 'error', 'remote-server-not-found'],
    ],
  );
});
