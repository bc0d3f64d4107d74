/**
 * The photo of a vCard and its hash, as XEP-0153 uses them, and the presence stamp.
 * References: XEP-0054 (PHOTO with TYPE and BINVAL), XEP-0153 §3.1 (hash: hex SHA-1 of
 * the image data), §4.1 (`<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>`;
 * an empty `<photo/>` means no avatar).
 */
import { createHash } from 'node:crypto';
import { x, type XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';

export interface Photo {
  /** MIME type (TYPE), '' when the vCard names none. */
  type: string;
  data: Buffer;
}

/** The binary photo of a vCard, or null when it has none (EXTVAL photos have no data here). */
export function readPhoto(vcard: XmlElement): Photo | null {
  const photo = vcard.getChild('PHOTO', NS.VCARD);
  const binval = photo?.getChild('BINVAL', NS.VCARD);
  if (!photo || !binval) return null;
  // Base64 in vCards is often folded over lines: whitespace is not data.
  const text = binval.text().replace(/\s+/g, '');
  if (text === '') return null;
  const data = Buffer.from(text, 'base64');
  if (data.length === 0) return null;
  return { type: (photo.getChildText('TYPE', NS.VCARD) ?? '').trim(), data };
}

export function sha1Hex(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

/** The XEP-0153 hash of a vCard's photo; '' when it has none. */
export function photoHashOf(vcard: XmlElement): string {
  const p = readPhoto(vcard);
  return p ? sha1Hex(p.data) : '';
}

/** A copy of the vCard with its PHOTO replaced by `photo` (or removed when null). */
export function withPhoto(vcard: XmlElement, photo: Photo | null): XmlElement {
  const copy = vcard.clone();
  copy.removeChildren('PHOTO', NS.VCARD);
  if (photo) {
    // Built top-down so every element inherits the vcard-temp namespace.
    const el = copy.c('PHOTO');
    if (photo.type) el.c('TYPE').t(photo.type);
    el.c('BINVAL').t(photo.data.toString('base64'));
  }
  return copy;
}

/**
 * Puts the server's knowledge of the avatar into an available presence: one
 * `<x xmlns='vcard-temp:x:update'>` with `<photo>hash</photo>`, or `<photo/>` when the
 * user has no photo. The server stores the vCard, so its hash is the current one; what a
 * client wrote (often stale, or an empty `<photo/>` meaning "not known yet") is replaced.
 */
export function stampPresence(presence: XmlElement, hash: string): void {
  presence.children = presence.children.filter((c) => typeof c === 'string' || !(c.localName === 'x' && c.ns === NS.VCARD_UPDATE));
  presence.append(x('x', { xmlns: NS.VCARD_UPDATE }, x('photo', null, hash)));
}
