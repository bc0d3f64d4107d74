import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x, type XmlElement } from '../xml/element.js';
import { ServerStats } from '../support/stats.js';
import type { C2sCore } from './c2s-endpoint.js';
import { OutboundPipeline, type OutboundHost } from './outbound-pipeline.js';
import type { SmDriver } from './sm-driver.js';
import type { C2sTransport, OutboundKind } from './transport.js';

interface Written {
  xml: string;
  kind: OutboundKind;
  el: XmlElement | undefined;
}

/** A pipeline over a connection that records what is written, with csi.maxHeld = `maxHeld`. */
function pipeline(maxHeld = 100): { out: OutboundPipeline; host: { connection: C2sTransport; streamManagement: SmDriver | null; isHibernated: boolean }; written: Written[]; stats: ServerStats } {
  const written: Written[] = [];
  const connection = { send: (xml: string, kind: OutboundKind, el?: XmlElement) => written.push({ xml, kind, el }) } as unknown as C2sTransport;
  const stats = new ServerStats();
  const core = { stats, config: { csi: { maxHeld } } } as unknown as C2sCore;
  const host: OutboundHost & { streamManagement: SmDriver | null; isHibernated: boolean } = { connection, streamManagement: null, isHibernated: false };
  return { out: new OutboundPipeline(core, host), host, written, stats };
}

const presence = (from: string, show?: string) => x('presence', { from }, show ? x('show', null, show) : null);
const message = (from: string, body: string) => x('message', { from, type: 'chat' }, x('body', null, body));

test('without stream management or held presence a stanza is counted and written once, serialized', () => {
  const { out, written, stats } = pipeline();
  const m = message('a@x/1', 'hi');
  out.deliver(m);
  assert.equal(written.length, 1);
  assert.equal(written[0]!.xml, m.toString());
  assert.equal(written[0]!.kind, 'message');
  assert.equal(written[0]!.el, m);
  assert.equal(stats.stanzasOut.message, 1);
});

test('a stanza delivered serialized is written with the bytes it came with', () => {
  const { out, written, stats } = pipeline();
  const p = presence('a@x/1');
  out.deliverSerialized('<presence from="a@x/1"/>', 'presence', p);
  assert.deepEqual(written, [{ xml: '<presence from="a@x/1"/>', kind: 'presence', el: p }]);
  assert.equal(stats.stanzasOut.presence, 1);
});

test('an inactive client gets the latest presence of each sender, before the next message', () => {
  const { out, written } = pipeline();
  out.setInactive(true);
  assert.equal(out.isInactive, true);
  out.deliver(presence('a@x/1', 'away'));
  out.deliver(presence('b@x/1'));
  out.deliver(presence('a@x/1', 'dnd'));
  assert.equal(written.length, 0);
  out.deliver(x('iq', { type: 'get', id: '1', from: 'x' }));
  assert.deepEqual(
    written.map((w) => w.kind),
    ['iq'],
    'an IQ does not need the presence before it',
  );
  out.deliver(message('c@x/1', 'hello'));
  assert.deepEqual(
    written.slice(1).map((w) => `${w.kind} ${w.el?.attrs.from}`),
    ['presence b@x/1', 'presence a@x/1', 'message c@x/1'],
  );
  assert.match(written[2]!.xml, /dnd/);
});

test('subscription requests are never held', () => {
  const { out, written } = pipeline();
  out.setInactive(true);
  out.deliver(x('presence', { from: 'a@x', type: 'subscribe' }));
  assert.equal(written.length, 1);
});

test('going active sends what was held and stops holding', () => {
  const { out, written } = pipeline();
  out.setInactive(true);
  out.deliver(presence('a@x/1'));
  out.setInactive(false);
  assert.equal(written.length, 1);
  out.deliver(presence('b@x/1'));
  assert.equal(written.length, 2);
});

test('held presence beyond csi.maxHeld is sent, and holding goes on while inactive', () => {
  const { out, written } = pipeline(2);
  out.setInactive(true);
  out.deliver(presence('a@x/1'));
  out.deliver(presence('b@x/1'));
  assert.equal(written.length, 0);
  out.deliver(presence('c@x/1'));
  assert.equal(written.length, 3);
  out.deliver(presence('d@x/1'));
  assert.equal(written.length, 3);
});

test('a hibernated session writes nothing: stanzas go to stream management, nonzas are dropped', () => {
  const { out, host, written } = pipeline();
  const queued: string[] = [];
  host.streamManagement = { push: (xml: string) => queued.push(xml) } as unknown as SmDriver;
  host.isHibernated = true;
  out.holdPresence();
  out.deliver(message('a@x/1', 'while away'));
  out.deliver(presence('b@x/1'));
  out.send(x('r', { xmlns: 'urn:xmpp:sm:3' }));
  assert.equal(written.length, 0);
  assert.equal(queued.length, 1, 'the message is queued; the presence is held');
  host.isHibernated = false;
  out.setInactive(false);
  assert.equal(queued.length, 2, 'the held presence goes out once resumed');
});

test('once stopped nothing is held any more', () => {
  const { out, written } = pipeline();
  out.setInactive(true);
  out.deliver(presence('a@x/1'));
  out.stop();
  out.setInactive(false);
  assert.equal(written.length, 0);
});
