import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArchiveIds, decodeId, encodeId, firstIdAt, timeOfId } from './ids.js';
import { parseDateTime } from './query.js';
import { isArchivable, stripOurStanzaIds } from './index.js';
import { isEligible } from '../carbons/index.js';
import { parseElement } from '../../xml/parse.js';

test('archive ids increase, even within one millisecond, and keep their time', () => {
  const g = new ArchiveIds();
  const a = g.next(1_700_000_000_000);
  const b = g.next(1_700_000_000_000);
  const c = g.next(1_699_999_999_999); // a clock step back does not reorder
  assert.ok(a < b && b < c);
  assert.equal(timeOfId(a), 1_700_000_000_000);
  assert.equal(firstIdAt(1_700_000_000_000), a);
});

test('encoded ids sort like the numbers and decode back; anything else is not an id', () => {
  const ids = [0, 1, 31, 32, 1_700_000_000_000 * 1024, Number.MAX_SAFE_INTEGER];
  const enc = ids.map(encodeId);
  assert.deepEqual([...enc].sort(), enc);
  assert.deepEqual(enc.map(decodeId), ids);
  for (const bad of ['', 'abc', '0000000000i', '0000000000L', 'zzzzzzzzzzz', '00000000000x']) assert.equal(decodeId(bad), null, bad);
});

test('XEP-0082 dates: fractions and offsets are read, impossible dates refused', () => {
  assert.equal(parseDateTime('2010-06-07T00:00:00Z'), Date.UTC(2010, 5, 7));
  assert.equal(parseDateTime('2010-06-07T02:00:00.123456+02:00'), Date.UTC(2010, 5, 7, 0, 0, 0, 123));
  for (const bad of ['2010-06-07', '2010-02-30T00:00:00Z', '2010-06-07T24:00:00Z', 'yesterday', '2010-06-07T00:00:00']) assert.equal(parseDateTime(bad), null, bad);
});

test('what is archived and what is carbon-copied', () => {
  const m = (s: string) => parseElement(s);
  assert.ok(isArchivable(m(`<message type='chat'><body>x</body></message>`)));
  assert.ok(isArchivable(m(`<message><body>x</body></message>`)));
  assert.ok(isArchivable(m(`<message type='chat'><store xmlns='urn:xmpp:hints'/><displayed xmlns='urn:xmpp:chat-markers:0' id='1'/></message>`)));
  assert.ok(!isArchivable(m(`<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)));
  assert.ok(!isArchivable(m(`<message type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`)));
  assert.ok(!isArchivable(m(`<message type='headline'><body>x</body></message>`)));
  assert.ok(!isArchivable(m(`<message type='error'><body>x</body></message>`)));
  assert.ok(isEligible(m(`<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)));
  assert.ok(isEligible(m(`<message><received xmlns='urn:xmpp:receipts' id='1'/></message>`)));
  assert.ok(isEligible(m(`<message type='error'><body>x</body><error type='cancel'/></message>`)));
  assert.ok(!isEligible(m(`<message><subject>x</subject></message>`)));
  assert.ok(!isEligible(m(`<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>`)));
  assert.ok(!isEligible(m(`<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>`)));
  assert.ok(!isEligible(m(`<message type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>`)));
  assert.ok(!isEligible(m(`<message type='groupchat'><body>x</body></message>`)));
});

test('stanza-ids claiming this server or its accounts are removed, others kept', () => {
  const el = parseElement(
    `<message><stanza-id xmlns='urn:xmpp:sid:0' by='a@here.test' id='1'/><stanza-id xmlns='urn:xmpp:sid:0' by='here.test' id='2'/><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.there.test' id='3'/><origin-id xmlns='urn:xmpp:sid:0' id='4'/></message>`,
  );
  stripOurStanzaIds(el, 'here.test');
  assert.deepEqual(el.elements().map((e) => `${e.name}:${e.attrs.id}`), ['stanza-id:3', 'origin-id:4']);
});
