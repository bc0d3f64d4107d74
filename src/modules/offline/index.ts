/**
 * Offline messages: stored while a user has no available resource, delivered with a
 * delay stamp on the next initial presence, and the safety net that makes "nothing is
 * lost" hold: messages a closing session could not deliver come back here.
 * References: XEP-0160 (best practices for offline messages), XEP-0203 (delayed
 * delivery), RFC 6121 §8.5.2.1.1, XEP-0334 (processing hints).
 */
import { x, type XmlElement } from '../../xml/element.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import { SqlOfflineStore } from './store-sql.js';
import type { OfflineStore } from './store.js';

const CHAT_STATES = 'http://jabber.org/protocol/chatstates';
const HINTS = 'urn:xmpp:hints';
const BATCH = 200;

export default defineModule({
  name: 'offline',
  setup(ctx) {
    const server = ctx.server;
    const host = server.domain;
    const store: OfflineStore = new SqlOfflineStore(server.storage);
    const max = server.config.offline.maxPerUser;
    /** One delivery at a time per user, so no message is fetched twice. */
    const delivering = new Map<string, Promise<void>>();

    ctx.addFeature(NS.OFFLINE);

    ctx.hook('message-offline', async ({ to, stanza }) => {
      if (!worthStoring(stanza)) return true; // chat states and no-store hints: dropped by design (XEP-0160 §3, XEP-0334)
      const result = await store.push(host, to.local, serialize(stanza), max);
      if (result === 'full') throw new StanzaError('resource-constraint', 'the recipient’s offline storage is full', 'wait');
      // The user may have come online while this was being written.
      const now = server.sessions.available(to.bare).find((s) => s.priority >= 0);
      if (now) deliverTo(now);
      return true;
    });

    ctx.hook('session-available', (session, initial) => {
      if (initial && session.priority >= 0) deliverTo(session);
    });

    // Nothing is lost: messages the session did not get to its client are routed again
    // (to another resource of the user, or into offline storage).
    ctx.hook('session-closed', (session, { undelivered }) => {
      for (const msg of undelivered) {
        const from = Jid.tryParse(msg.attrs.from) ?? server.router.domainJid;
        server.router.route(msg, from, session.jid.toBare());
      }
    });

    function deliverTo(session: LocalSession): void {
      const bare = session.jid.bare;
      const prev = delivering.get(bare) ?? Promise.resolve();
      const next = prev
        .then(() => drain(session))
        .catch((err: unknown) => ctx.log.error({ err, user: bare }, 'offline delivery failed'))
        .finally(() => {
          if (delivering.get(bare) === next) delivering.delete(bare);
        });
      delivering.set(bare, next);
    }

    async function drain(session: LocalSession): Promise<void> {
      const user = session.jid.local;
      for (;;) {
        if (session.isClosed || !session.isAvailable) return;
        const batch = await store.fetch(host, user, BATCH);
        if (batch.length === 0) return;
        if (session.isClosed) return;
        for (const m of batch) {
          let el: XmlElement;
          try {
            el = parseElement(m.stanza);
          } catch (err) {
            ctx.log.error({ err, id: m.id }, 'stored offline message is not valid XML; dropped');
            continue;
          }
          el.append(x('delay', { xmlns: NS.DELAY, from: host, stamp: new Date(m.createdAt).toISOString() }, 'Offline storage'));
          session.deliver(el);
        }
        await store.remove(
          host,
          user,
          batch.map((m) => m.id),
        );
        if (batch.length < BATCH) return;
      }
    }
  },
});

/** Messages with only a chat state, or marked no-store, are not kept for later. */
function worthStoring(stanza: XmlElement): boolean {
  if (stanza.getChild('no-store', HINTS) || stanza.getChild('no-permanent-store', HINTS)) return false;
  if (stanza.getChild('store', HINTS)) return true;
  if (stanza.getChild('body') || stanza.getChild('subject')) return true;
  // Only chat state notifications: not worth storing.
  const payload = stanza.elements().filter((e) => e.name !== 'thread');
  return !(payload.length > 0 && payload.every((e) => e.ns === CHAT_STATES));
}
