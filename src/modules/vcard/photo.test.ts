import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serializer.js';
import { photoHashOf, readPhoto, stampPresence, withPhoto } from './photo.js';

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
const b64 = PNG.toString('base64');
const sha1 = createHash('sha1').update(PNG).digest('hex');

test('the photo hash is the hex SHA-1 of the decoded BINVAL, folded base64 included', () => {
  const folded = b64.slice(0, 8) + '\n  ' + b64.slice(8);
  const v = parseElement(`<vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>${folded}</BINVAL></PHOTO></vCard>`);
  assert.equal(photoHashOf(v), sha1);
  assert.equal(readPhoto(v)?.type, 'image/png');
  assert.equal(photoHashOf(parseElement("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")), '');
  assert.equal(photoHashOf(parseElement("<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>http://x/y.png</EXTVAL></PHOTO></vCard>")), '');
});

test('withPhoto replaces or removes the PHOTO and keeps the rest', () => {
  const v = parseElement("<vCard xmlns='vcard-temp'><FN>A</FN><PHOTO><BINVAL>AAAA</BINVAL></PHOTO></vCard>");
  const replaced = withPhoto(v, { type: 'image/png', data: PNG });
  assert.equal(replaced.getChildText('FN', 'vcard-temp'), 'A');
  assert.equal(photoHashOf(replaced), sha1);
  assert.match(serialize(replaced), /^<vCard xmlns='vcard-temp'><FN>A<\/FN><PHOTO><TYPE>image\/png<\/TYPE><BINVAL>/);
  const removed = withPhoto(v, null);
  assert.equal(serialize(removed), "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>");
});

test('the presence stamp replaces whatever update element the client wrote', () => {
  const p = parseElement("<presence xmlns='jabber:client'><show>away</show><x xmlns='vcard-temp:x:update'><photo/></x><x xmlns='vcard-temp:x:update'/></presence>");
  stampPresence(p, sha1);
  assert.equal(serialize(p), `<presence xmlns='jabber:client'><show>away</show><x xmlns='vcard-temp:x:update'><photo>${sha1}</photo></x></presence>`);
  stampPresence(p, '');
  assert.equal(serialize(p), "<presence xmlns='jabber:client'><show>away</show><x xmlns='vcard-temp:x:update'><photo/></x></presence>");
});
