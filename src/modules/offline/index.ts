/**
 * Offline messages: stored while a user has no available resource, delivered with a
 * delay stamp on the next initial presence, and the safety net that makes "nothing is
 * lost" hold: messages a closing session could not deliver come back here.
 * References: XEP-0160 (best practices for offline messages), XEP-0203 (delayed
 * delivery), RFC 6121 §8.5.2.1.1, XEP-0334 (processing hints), XEP-0013 (flexible
 * offline message retrieval: count, headers, view, remove, fetch, purge).
 *
 * XEP-0013 §2.2: a session that asks for the offline node (disco#info or #items) or
 * fetches before its initial presence chose POP3-like retrieval: no flood at its initial
 * presence, nor at the initial presence of the user's other resources while it is online.
 * Its messages stay stored until it removes or purges them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { x, type XmlElement } from '../../xml/element.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { options } from './options.js';
import { defineModule, type IqRequest } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import { SqlOfflineStore } from './store-sql.js';
import type { OfflineStore } from './store.js';

/**
 * What identifies a message in offline storage: with an id, its sender, recipient, type,
 * id, body and thread (the sender's resend after a "wait" error, or the copy a closing
 * session hands back, is the same message and is stored once); without one, nothing can
 * tell a resend, and a random key only makes a retried write idempotent.
 */
export function messageKey(stanza: XmlElement, to: Jid): string {
  const id = stanza.attrs.id;
  if (!id) return randomBytes(18).toString('base64url');
  const from = Jid.tryParse(stanza.attrs.from)?.bare ?? stanza.attrs.from ?? '';
  const parts = [from, to.bare, stanza.attrs.type ?? 'normal', id, stanza.getChildText('body') ?? '', stanza.getChildText('thread') ?? ''];
  return createHash('sha256').update(parts.join('\0')).digest('base64url');
}

const CHAT_STATES = 'http://jabber.org/protocol/chatstates';
const HINTS = 'urn:xmpp:hints';
const BATCH = 200;
/** Most messages one XEP-0013 request lists or sends. */
const FLEX_MAX = 10_000;

export default defineModule({
  name: 'offline',
  options,
  setup(ctx) {
    const host = ctx.domain;
    const store: OfflineStore = new SqlOfflineStore(ctx.storage);
    /** One delivery at a time per user, so no message is fetched twice. */
    const delivering = new Map<string, Promise<void>>();

    ctx.addFeature(NS.OFFLINE);
    ctx.addFeature(NS.FLEX_OFFLINE);
    /** Per user: the sessions that chose flexible retrieval (XEP-0013). */
    const flexible = new Map<string, Set<LocalSession>>();

    ctx.hook('message-offline', async ({ to, stanza }) => {
      if (!worthStoring(stanza)) return { dropped: 'not-worth-storing' }; // chat states and no-store hints: dropped by design (XEP-0160 §3, XEP-0334)
      // Read at the moment of use: a live reload of the configuration applies at once.
      const result = await store.push(host, to.local, serialize(stanza), ctx.options.maxPerUser, messageKey(stanza, to));
      if (result === 'full') {
        ctx.limits.hit('offline-per-user');
        throw new StanzaError('resource-constraint', 'the recipient’s offline storage is full', 'wait');
      }
      // The user may have come online while this was being written.
      const now = ctx.sessions.available(to.bare).find((s) => s.priority >= 0);
      if (now && !isFlexible(to.bare)) deliverTo(now);
      return 'stored';
    });

    ctx.hook('session-available', (session, initial) => {
      if (initial && session.priority >= 0 && !isFlexible(session.jid.bare)) deliverTo(session);
    });

    // (Nothing is lost: the core routes a closed session's undelivered messages again.)
    ctx.hook('session-closed', (session) => {
      const flex = flexible.get(session.jid.bare);
      if (flex?.delete(session) && flex.size === 0) flexible.delete(session.jid.bare);
    });

    // ---------------------------------------------------------------- XEP-0013

    function isFlexible(bare: string): boolean {
      const set = flexible.get(bare);
      if (!set) return false;
      for (const s of set) if (!s.isClosed) return true;
      return false;
    }

    /** The session asked for the offline node: no flood for it (XEP-0013 §2.2). */
    function chooseFlexible(req: IqRequest): void {
      // SECURITY: only the account itself reads its offline messages (XEP-0013 §4).
      if (!req.isSelf) throw new StanzaError('forbidden');
      const s = req.session;
      if (!s || s.isClosed) return;
      let set = flexible.get(s.jid.bare);
      if (!set) flexible.set(s.jid.bare, (set = new Set()));
      set.add(s);
    }

    ctx.addDiscoNode(NS.FLEX_OFFLINE, 'account', {
      async info(req) {
        chooseFlexible(req);
        const n = await store.count(host, req.to.local);
        return x(
          'query',
          { xmlns: NS.DISCO_INFO, node: NS.FLEX_OFFLINE },
          x('identity', { category: 'automation', type: 'message-list' }),
          x('feature', { var: NS.FLEX_OFFLINE }),
          x(
            'x',
            { xmlns: NS.X_DATA, type: 'result' },
            x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, NS.FLEX_OFFLINE)),
            x('field', { var: 'number_of_messages' }, x('value', null, String(n))),
          ),
        );
      },
      async items(req) {
        chooseFlexible(req);
        const q = x('query', { xmlns: NS.DISCO_ITEMS, node: NS.FLEX_OFFLINE });
        for (const m of await store.fetch(host, req.to.local, FLEX_MAX)) {
          const el = parse(m.stanza, m.id);
          q.append(x('item', { jid: req.to.bare, node: String(m.id), name: el?.attrs.from }));
        }
        return q;
      },
    });

    // <offline/>: view (get) and remove (set) by node, fetch (get) and purge (set).
    const offlineCommand = async (req: IqRequest): Promise<null> => {
      if (!req.isSelf) throw new StanzaError('forbidden');
      const user = req.to.local;
      const cmd = req.payload;
      const fetchAll = cmd.getChild('fetch');
      const purge = cmd.getChild('purge');
      const items = cmd.getChildren('item');
      if (req.type === 'get' && fetchAll && items.length === 0) {
        chooseFlexible(req);
        send(req, await store.fetch(host, user, FLEX_MAX));
        return null;
      }
      if (req.type === 'set' && purge && items.length === 0) {
        await store.clear(host, user);
        return null;
      }
      const action = req.type === 'get' ? 'view' : 'remove';
      if (items.length === 0 || fetchAll || purge || items.some((i) => i.attrs.action !== action)) {
        throw new StanzaError('bad-request', req.type === 'get' ? 'use <fetch/> or items with action view' : 'use <purge/> or items with action remove');
      }
      const ids: number[] = [];
      for (const i of items) {
        const node = i.attrs.node ?? '';
        if (!/^\d{1,15}$/.test(node)) throw new StanzaError('item-not-found');
        ids.push(Number(node));
      }
      const found = await store.fetchByIds(host, user, ids);
      if (found.length !== new Set(ids).size) throw new StanzaError('item-not-found');
      if (action === 'view') send(req, found);
      else await store.remove(host, user, ids);
      return null;
    };
    ctx.handleIq('get', NS.FLEX_OFFLINE, 'offline', offlineCommand, { scope: 'account' });
    ctx.handleIq('set', NS.FLEX_OFFLINE, 'offline', offlineCommand, { scope: 'account' });

    /** Sends stored messages to the requesting resource, each marked with its node (before the IQ result). */
    function send(req: IqRequest, messages: Array<{ id: number; stanza: string; createdAt: number }>): void {
      for (const m of messages) {
        const el = parse(m.stanza, m.id);
        if (!el) continue;
        el.append(x('delay', { xmlns: NS.DELAY, from: host, stamp: new Date(m.createdAt).toISOString() }, 'Offline storage'));
        el.append(x('offline', { xmlns: NS.FLEX_OFFLINE }, x('item', { node: String(m.id) })));
        if (req.session && !req.session.isClosed) req.session.deliver(el);
        else ctx.route(el, Jid.tryParse(el.attrs.from) ?? ctx.domainJid, req.from);
      }
    }

    function parse(xml: string, id: number): XmlElement | null {
      try {
        return parseElement(xml);
      } catch (err) {
        ctx.log.error({ err, id }, 'stored offline message is not valid XML');
        return null;
      }
    }

    // ---------------------------------------------------------------- flood at initial presence

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
