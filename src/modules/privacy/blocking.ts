/**
 * XEP-0191 Blocking Command, on the default privacy list: the blocklist is the default
 * list's plain jid+deny items; blocking adds such items first (making a default list
 * when the user has none), unblocking removes them (and the list, when nothing else is
 * left in it).
 * References: XEP-0191 §3.1 (retrieving the blocklist), §3.2 (blocking, with pushes),
 * §3.3 (unblocking; with no items, everything), §4 (the blocklist and privacy lists), §5
 * (JID matching).
 */
import { x, type XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import type { IqHandler } from '../../core/module.js';
import { blockedJids } from './engine.js';
import { defaultOf, type UserLists } from './cache.js';
import { requireSelf, type PrivacyParts } from './changes.js';
import { MAX_ITEMS } from './privacy-lists.js';
import type { PrivacyItem, PrivacyList } from './store.js';

/** The list the blocking command creates when the user has no default list. */
const BLOCKLIST_NAME = 'blocklist';

/** The urn:xmpp:blocking handlers: blocklist (get), block and unblock (set). */
export function blockingHandlers(p: PrivacyParts): { blocklist: IqHandler; block: IqHandler; unblock: IqHandler } {
  const { host, store, cache, sessions, changes } = p;

  const blocklist: IqHandler = async (req) => {
    const session = requireSelf(req);
    sessions.of(session).wantsBlocklist = true;
    const st = await cache.ensure(req.from.toBare());
    const el = x('blocklist', { xmlns: NS.BLOCKING });
    for (const j of blockedJids(defaultOf(st))) el.append(x('item', { jid: j }));
    return el;
  };

  const block: IqHandler = async (req) => {
    requireSelf(req);
    const user = req.from.toBare();
    const jids = readJids(req.payload);
    if (jids.length === 0) throw new StanzaError('bad-request', 'block at least one JID');
    if (jids.includes(user.bare)) throw new StanzaError('not-acceptable', 'an account cannot block itself');
    await changes.serial(user, async () => {
      const st = await cache.ensure(user);
      const def = defaultOf(st);
      const already = blockedJids(def);
      const fresh = jids.filter((j) => !already.includes(j));
      if (fresh.length === 0) return;
      const existing = def ? def.items.map((ci) => ci.item) : [];
      if (existing.length + fresh.length > MAX_ITEMS) throw new StanzaError('not-acceptable', 'the blocklist is full');
      const items = prependBlocks(
        existing,
        fresh.map((value) => ({ type: 'jid', value, action: 'deny', order: 0, kinds: [] })),
      );
      const name = def ? def.name : freeName(st);
      const list: PrivacyList = { name, items };
      await changes.withPresence(user, async () => {
        if (def) await store.putList(host, user.local, list);
        else await store.putDefaultList(host, user.local, list);
        await cache.setList(user, st, list, name);
        st.defaultName = name;
      });
      changes.pushBlocking(user, 'block', fresh);
      changes.pushPrivacy(user, name);
    });
    return null;
  };

  const unblock: IqHandler = async (req) => {
    requireSelf(req);
    const user = req.from.toBare();
    const jids = readJids(req.payload);
    await changes.serial(user, async () => {
      const st = await cache.ensure(user);
      const def = defaultOf(st);
      if (!def) return;
      const all = jids.length === 0;
      const removed: string[] = [];
      const keepItems: PrivacyItem[] = [];
      for (const ci of def.items) {
        if (ci.isBlock && (all || jids.includes(ci.jid!.full))) {
          if (!removed.includes(ci.jid!.full)) removed.push(ci.jid!.full);
        } else keepItems.push(ci.item);
      }
      if (removed.length === 0) return;
      const name = def.name;
      await changes.withPresence(user, async () => {
        if (keepItems.length === 0) {
          // Nothing left: the list goes, and with it the default.
          await store.removeList(host, user.local, name);
          await cache.setList(user, st, null, name);
          st.defaultName = null;
          for (const s of p.resources(user.bare)) {
            const ps = sessions.get(s);
            if (ps?.active === name) await sessions.setActive(s, ps, null);
          }
        } else {
          const list = { name, items: keepItems };
          await store.putList(host, user.local, list);
          await cache.setList(user, st, list, name);
        }
      });
      changes.pushBlocking(user, 'unblock', all ? [] : removed);
      changes.pushPrivacy(user, name);
    });
    return null;
  };

  return { blocklist, block, unblock };
}

/** The JIDs of the items of a block or unblock command, in canonical form. */
function readJids(el: XmlElement): string[] {
  const out: string[] = [];
  for (const item of el.getChildren('item', NS.BLOCKING)) {
    const jid = Jid.tryParse(item.attrs.jid);
    if (!jid) throw new StanzaError('jid-malformed', 'an item needs a valid jid');
    if (!out.includes(jid.full)) out.push(jid.full);
  }
  return out;
}

/**
 * New blocklist items go first (XEP-0191 §4). Orders stay as they were when there is
 * room below the lowest one; otherwise the list is renumbered in its current order.
 */
export function prependBlocks(existing: PrivacyItem[], blocks: PrivacyItem[]): PrivacyItem[] {
  const sorted = [...existing].sort((a, b) => a.order - b.order);
  const k = blocks.length;
  const min = sorted.length > 0 ? sorted[0]!.order : k;
  if (min >= k) return [...blocks.map((b, i) => ({ ...b, order: min - k + i })), ...sorted];
  return [...blocks, ...sorted].map((it, i) => ({ ...it, order: i }));
}

function freeName(st: Pick<UserLists, 'lists'>): string {
  if (!st.lists.has(BLOCKLIST_NAME)) return BLOCKLIST_NAME;
  for (let i = 2; ; i++) if (!st.lists.has(`${BLOCKLIST_NAME}-${i}`)) return `${BLOCKLIST_NAME}-${i}`;
}
