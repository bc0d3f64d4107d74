import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseElement } from '../../xml/parse.js';
import { CapsCache, capsOf, verificationString } from './caps.js';

const SIMPLE = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`;

const COMPLEX = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`;

test('the verification string of XEP-0115 §5.2 (simple example) hashes to its ver', () => {
  assert.equal(verificationString(parseElement(SIMPLE), 'sha-1'), 'QgayPKawpkPSDYmwT/WM94uAlu0=');
});

test('the verification string of XEP-0115 §5.3 (identities in two languages and a form) hashes to its ver', () => {
  assert.equal(verificationString(parseElement(COMPLEX), 'sha-1'), 'q07IKJEyjvHSyhy//CH0CxmKi8w=');
});

test('duplicate features, an unknown hash or a visible FORM_TYPE make a result uncacheable', () => {
  const dup = SIMPLE.replace("<feature var='http://jabber.org/protocol/muc'/>", "<feature var='http://jabber.org/protocol/muc'/><feature var='http://jabber.org/protocol/muc'/>");
  assert.equal(verificationString(parseElement(dup), 'sha-1'), null);
  assert.equal(verificationString(parseElement(SIMPLE), 'crc32'), null);
  assert.equal(verificationString(parseElement(COMPLEX.replace("var='FORM_TYPE' type='hidden'", "var='FORM_TYPE'")), 'sha-1'), null);
});

test('caps are read from a presence; a presence without node or ver has none', () => {
  const p = parseElement("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>");
  assert.deepEqual(capsOf(p), { node: 'n', ver: 'v', hash: 'sha-1' });
  assert.equal(capsOf(parseElement("<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' node='n'/></presence>")), null);
  assert.equal(capsOf(parseElement("<presence xmlns='jabber:client'/>")), null);
});

test('the caps cache forgets the least recently used ver first', () => {
  const c = new CapsCache(2);
  c.set('sha-1', 'a', { features: new Set(['a']) });
  c.set('sha-1', 'b', { features: new Set(['b']) });
  assert.ok(c.get('sha-1', 'a'));
  c.set('sha-1', 'c', { features: new Set(['c']) });
  assert.equal(c.get('sha-1', 'b'), undefined);
  assert.ok(c.get('sha-1', 'a'));
  assert.ok(c.get('sha-1', 'c'));
  assert.equal(c.size, 2);
});
