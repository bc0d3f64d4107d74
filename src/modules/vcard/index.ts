/**
 * vCards, avatar hashes in presence, and the conversion between vCard photos and PEP
 * avatars.
 * References: XEP-0054 §3.1 (own vCard: an IQ without `to`), §3.2 (only the owner sets
 * it), §3.3 (another user's vCard from their bare JID, answered by the server; with no
 * vCard, the same error as for a user that does not exist); XEP-0153 §4 (the photo hash
 * in presence, stamped here by the server as ejabberd's mod_vcard_xupdate does, and a
 * fresh presence when it changes); XEP-0398 §3 (a PEP avatar becomes the vCard PHOTO,
 * a vCard PHOTO becomes a PEP avatar); XEP-0084 §4 (avatar data and metadata nodes).
 */
import { x, type XmlElement } from '../../xml/element.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { options } from './options.js';
import { defineModule } from '../../core/module.js';
import { photoHashOf, readPhoto, sha1Hex, stampPresence, withPhoto, type Photo } from './photo.js';
import { SqlVcardStore } from './store-sql.js';
import type { VcardStore } from './store.js';

/** Users whose photo hash is kept in memory (read at every available presence). */
const HASH_CACHE = 50_000;

export default defineModule({
  name: 'vcard',
  options,
  setup(ctx) {
    const host = ctx.domain;
    const maxSize = ctx.options.maxSize;
    const store: VcardStore = new SqlVcardStore(ctx.storage);
    /** bare JID → photo hash ('' without photo), least recently used out first. */
    const hashes = new Map<string, string>();
    /** One vCard write at a time per user, so the hash and the stored vCard agree. */
    const writes = new Map<string, Promise<unknown>>();
    const conversion = ctx.hasService('pep');

    ctx.addFeature(NS.VCARD, 'host');
    ctx.addFeature(NS.VCARD, 'account');
    if (conversion) ctx.addFeature(NS.PEP_VCARD_CONVERSION, 'account');

    // ------------------------------------------------------------------ vcard-temp

    ctx.handleIq(
      'get',
      NS.VCARD,
      'vCard',
      async (req) => {
        const stored = await store.get(host, req.to.local);
        if (stored) return parseElement(stored.xml);
        // XEP-0054 §3.1: an empty vCard for oneself. §3.3: for others, the error the router
        // gives for an account that does not exist, so no one learns which accounts exist.
        if (req.isSelf) return x('vCard', { xmlns: NS.VCARD });
        throw new StanzaError('service-unavailable');
      },
      { scope: 'account' },
    );

    ctx.handleIq(
      'set',
      NS.VCARD,
      'vCard',
      async (req) => {
        if (!req.isSelf) throw new StanzaError('forbidden', 'a vCard is set by its owner only');
        const vcard = req.payload.clone();
        vcard.attrs = { xmlns: NS.VCARD, ...vcard.attrs };
        await setVcard(req.from.toBare(), vcard);
        return null;
      },
      { scope: 'account' },
    );

    async function setVcard(user: Jid, vcard: XmlElement): Promise<string | null> {
      const hash = await save(user, vcard);
      if (hash !== null && conversion) await vcardToPep(user, readPhoto(vcard), hash).catch((err: unknown) => ctx.log.warn({ err }, 'vCard photo to PEP avatar failed'));
      return hash;
    }
    ctx.provide('vcard', { set: setVcard });

    /**
     * Stores a vCard (the size limit applies) and, when its photo changed, tells the
     * user's contacts through a fresh presence. Returns the new hash when it changed.
     */
    async function save(user: Jid, vcard: XmlElement): Promise<string | null> {
      const xml = serialize(vcard);
      // SECURITY: a bound on what one account stores (and sends to everyone who asks).
      if (Buffer.byteLength(xml) > maxSize) throw new StanzaError('not-acceptable', `a vCard may be at most ${maxSize} bytes`, 'modify', x('policy-violation', { xmlns: NS.STANZAS }));
      const hash = photoHashOf(vcard);
      const before = await serialized(user, async () => {
        const old = await currentHash(user);
        await store.set(host, user.local, { xml, photoHash: hash });
        remember(user, hash);
        return old;
      });
      if (before === hash) return null;
      rebroadcast(user);
      return hash;
    }

    function serialized<T>(user: Jid, fn: () => Promise<T>): Promise<T> {
      const prev = writes.get(user.bare) ?? Promise.resolve();
      const next = prev.then(fn, fn);
      const tail = next.catch(() => undefined);
      writes.set(user.bare, tail);
      void tail.then(() => {
        if (writes.get(user.bare) === tail) writes.delete(user.bare);
      });
      return next;
    }

    // ------------------------------------------------------------------ XEP-0153

    async function currentHash(user: Jid): Promise<string> {
      const cached = hashes.get(user.bare);
      if (cached !== undefined) return cached;
      const hash = (await store.photoHash(host, user.local)) ?? '';
      remember(user, hash);
      return hash;
    }

    function remember(user: Jid, hash: string): void {
      hashes.delete(user.bare);
      hashes.set(user.bare, hash);
      ctx.invalidate('vcard-hash', user.bare);
      while (hashes.size > HASH_CACHE) hashes.delete(hashes.keys().next().value!);
    }

    // Every available presence of a client carries the current hash, broadcast or directed.
    ctx.hook(
      'presence-from-client',
      async (session, stanza) => {
        if (stanza.attrs.type !== undefined) return false;
        try {
          stampPresence(stanza, await currentHash(session.jid.toBare()));
        } catch (err) {
          // A storage failure costs the stamp, not the presence.
          ctx.log.warn({ err, jid: session.jid.full }, 'no avatar hash for presence');
        }
        return false; // the presence goes on to the presence module
      },
      1100,
    );

    /**
     * Each available resource's presence again, now with the new hash (as ejabberd's
     * force_update_presence), sent as the resource's own broadcast: through the same
     * presence handling and privacy gate as one its client sends. A node does this for
     * its own sessions only; the nodes holding the user's other sessions are told.
     */
    function rebroadcast(user: Jid): void {
      let elsewhere = false;
      for (const s of ctx.sessions.available(user.bare)) {
        if (s.node !== undefined) {
          elsewhere = true;
          continue;
        }
        if (!s.presence || s.isClosed) continue;
        const p = s.presence.clone();
        delete p.attrs.to;
        p.attrs.from = s.jid.full;
        ctx.sendAsClient(s, p, null);
      }
      if (elsewhere) ctx.invalidate('vcard-presence', user.bare);
    }

    // ------------------------------------------------------------------ XEP-0398

    /** A vCard photo becomes the PEP avatar (data, then metadata: XEP-0084 §4.1). */
    async function vcardToPep(user: Jid, photo: Photo | null, hash: string): Promise<void> {
      const pep = ctx.service('pep');
      if (photo) {
        const type = photo.type || 'image/png';
        await pep.publish(user, NS.AVATAR_DATA, { id: hash, payload: x('data', { xmlns: NS.AVATAR_DATA }, photo.data.toString('base64')) }, { accessModel: 'open' });
        const info = x('info', { bytes: String(photo.data.length), id: hash, type });
        await pep.publish(user, NS.AVATAR_METADATA, { id: hash, payload: x('metadata', { xmlns: NS.AVATAR_METADATA }, info) }, { accessModel: 'open' });
        return;
      }
      // XEP-0084 §4.2: no avatar any more is an empty metadata item.
      const last = await pep.getItem(user, NS.AVATAR_METADATA);
      if (last && last.payload.getChild('info', NS.AVATAR_METADATA)) {
        await pep.publish(user, NS.AVATAR_METADATA, { id: 'current', payload: x('metadata', { xmlns: NS.AVATAR_METADATA }) });
      }
    }

    /** A PEP avatar published by a client becomes the vCard PHOTO. */
    ctx.hook('pep-published', async (owner, node, item, byServer) => {
      if (byServer || node !== NS.AVATAR_METADATA || !conversion) return;
      const photo = await photoFromMetadata(owner, item.payload);
      if (photo === undefined) return; // nothing this server can turn into a vCard photo
      const stored = await store.get(host, owner.local);
      const current = stored ? parseElement(stored.xml) : x('vCard', { xmlns: NS.VCARD });
      const currentPhoto = readPhoto(current);
      if (photo === null ? currentPhoto === null : currentPhoto !== null && currentPhoto.data.equals(photo.data)) return;
      try {
        await save(owner, withPhoto(current, photo));
      } catch (err) {
        // Too large for a vCard: the PEP avatar stays, the vCard keeps its old photo.
        ctx.log.info({ err, user: owner.bare }, 'PEP avatar not copied into the vCard');
      }
    });

    /**
     * The photo a metadata item points to: null for "no avatar" (no `<info/>`),
     * undefined when the data is not on this service (only a URL, or missing).
     */
    async function photoFromMetadata(owner: Jid, metadata: XmlElement): Promise<Photo | null | undefined> {
      if (!metadata.is('metadata', NS.AVATAR_METADATA)) return undefined;
      const infos = metadata.getChildren('info', NS.AVATAR_METADATA);
      if (infos.length === 0) return null;
      const pep = ctx.service('pep');
      // XEP-0398 §3: the one whose data is in the PEP data node (no url); PNG first, as XEP-0084 requires it.
      const candidates = infos.filter((i) => i.attrs.url === undefined && i.attrs.id);
      candidates.sort((a, b) => Number(b.attrs.type === 'image/png') - Number(a.attrs.type === 'image/png'));
      for (const info of candidates) {
        const item = await pep.getItem(owner, NS.AVATAR_DATA, info.attrs.id!);
        if (!item || !item.payload.is('data', NS.AVATAR_DATA)) continue;
        const data = Buffer.from(item.payload.text().replace(/\s+/g, ''), 'base64');
        if (data.length === 0) continue;
        // SECURITY: the id is the SHA-1 of the data (XEP-0084 §4.2.1); a mismatch is refused.
        if (sha1Hex(data) !== info.attrs.id!.toLowerCase()) continue;
        return { type: info.attrs.type ?? 'image/png', data };
      }
      return undefined;
    }

    ctx.hook('user-deleted', async (user) => {
      await store.remove(host, user.local);
      hashes.delete(user.bare);
    });
    ctx.onInvalidate('vcard-hash', (bare) => hashes.delete(bare), () => hashes.clear());
    // Another node changed the photo of a user with sessions here: their presence again.
    ctx.onInvalidate('vcard-presence', (bare) => {
        hashes.delete(bare);
        const user = Jid.tryParse(bare);
        if (user) rebroadcast(user);
      });
  },
});
