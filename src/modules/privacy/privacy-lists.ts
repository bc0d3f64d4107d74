/**
 * XEP-0016 Privacy Lists, the protocol: getting the names of the lists and one list,
 * setting the active list, the default list and a list's items, removing a list; with the
 * conflict rules and the bounds on what one user may store.
 * References: XEP-0016 §2.1 (syntax: items by jid, group, subscription, with kinds),
 * §2.3 (retrieving), §2.4 (the active list), §2.5 (the default list), §2.6 (editing, with
 * pushes), §2.7 (adding), §2.8–§2.12 (the kinds an item blocks), §3 (error conditions).
 */
import { x, type XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import type { IqHandler } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import { blockedJids, type CompiledList } from './engine.js';
import { defaultOf, type UserLists } from './cache.js';
import { requireSelf, type PrivacyParts } from './changes.js';
import type { PrivacyItem, PrivacyKind, PrivacyList } from './store.js';

/** SECURITY: bounds on what one user may store. */
export const MAX_LISTS = 64;
export const MAX_ITEMS = 1000;
export const MAX_NAME = 128;
const KINDS: readonly PrivacyKind[] = ['message', 'iq', 'presence-in', 'presence-out'];
const SUBSCRIPTIONS = new Set(['none', 'to', 'from', 'both']);

/** The jabber:iq:privacy get and set handlers. */
export function privacyListHandlers(p: PrivacyParts): { get: IqHandler; set: IqHandler } {
  const { host, store, cache, sessions, changes } = p;

  /** Does another session of the user run on the default list (no active list of its own)? */
  function defaultInUseByOthers(user: Jid, sender: LocalSession): boolean {
    for (const s of p.resources(user.bare)) {
      if (s !== sender && sessions.activeOf(s) === null) return true;
    }
    return false;
  }

  /** Is the list `name` applied to another session of the user (as its active list or as the default)? */
  function inUseByOthers(user: Jid, st: UserLists, sender: LocalSession, name: string): boolean {
    for (const s of p.resources(user.bare)) {
      if (s === sender) continue;
      const effective = sessions.activeOf(s) ?? st.defaultName;
      if (effective === name) return true;
    }
    return false;
  }

  const get: IqHandler = async (req) => {
    const session = requireSelf(req);
    const me = sessions.of(session);
    me.usesPrivacy = true;
    const user = req.from.toBare();
    const st = await cache.ensure(user);
    const children = req.payload.elements();
    if (children.length === 0) {
      const q = x('query', { xmlns: NS.PRIVACY });
      if (me.active !== null && st.lists.has(me.active)) q.append(x('active', { name: me.active }));
      if (st.defaultName !== null) q.append(x('default', { name: st.defaultName }));
      for (const name of [...st.lists.keys()].sort()) q.append(x('list', { name }));
      return q;
    }
    if (children.length !== 1 || !children[0]!.is('list', NS.PRIVACY)) throw new StanzaError('bad-request', 'ask for one list at a time');
    const name = children[0]!.attrs.name;
    const list = name !== undefined ? st.lists.get(name) : undefined;
    if (!list) throw new StanzaError('item-not-found');
    return x('query', { xmlns: NS.PRIVACY }, listElement(list));
  };

  const set: IqHandler = async (req) => {
    const session = requireSelf(req);
    const me = sessions.of(session);
    me.usesPrivacy = true;
    const user = req.from.toBare();
    const children = req.payload.elements();
    if (children.length !== 1) throw new StanzaError('bad-request', 'a privacy set carries exactly one of active, default or list');
    const el = children[0]!;
    if (el.ns !== NS.PRIVACY) throw new StanzaError('bad-request');
    const name = el.attrs.name;
    switch (el.localName) {
      case 'active':
        await changes.serial(user, async () => {
          const st = await cache.ensure(user);
          if (name !== undefined && !st.lists.has(name)) throw new StanzaError('item-not-found');
          // XEP-0016 §2.4: applied before the result goes back.
          await changes.withPresence(user, () => sessions.setActive(session, me, name ?? null));
        });
        return null;
      case 'default':
        await changes.serial(user, async () => {
          const st = await cache.ensure(user);
          if (name !== undefined && !st.lists.has(name)) throw new StanzaError('item-not-found');
          const wanted = name ?? null;
          if (wanted === st.defaultName) return;
          if (st.defaultName !== null && defaultInUseByOthers(user, session)) {
            throw new StanzaError('conflict', 'the default list applies to another resource');
          }
          const before = blockedJids(defaultOf(st));
          await changes.withPresence(user, async () => {
            await store.setDefault(host, user.local, wanted);
            st.defaultName = wanted;
          });
          changes.pushBlocklistDiff(user, before, blockedJids(defaultOf(st)));
        });
        return null;
      case 'list': {
        if (name === undefined || name === '') throw new StanzaError('bad-request', 'a list needs a name');
        if (name.length > MAX_NAME) throw new StanzaError('not-acceptable', 'the list name is too long');
        const itemEls = el.elements();
        if (itemEls.length === 0) {
          await changes.serial(user, () => removeList(user, session, name));
          return null;
        }
        const items = await readItems(p, user, itemEls);
        await changes.serial(user, async () => {
          const st = await cache.ensure(user);
          if (!st.lists.has(name) && st.lists.size >= MAX_LISTS) throw new StanzaError('not-acceptable', 'too many privacy lists');
          const before = blockedJids(defaultOf(st));
          const list: PrivacyList = { name, items };
          await changes.withPresence(user, async () => {
            await store.putList(host, user.local, list);
            await cache.setList(user, st, list, name);
          });
          changes.pushPrivacy(user, name);
          if (st.defaultName === name) changes.pushBlocklistDiff(user, before, blockedJids(defaultOf(st)));
        });
        return null;
      }
      default:
        throw new StanzaError('bad-request');
    }
  };

  async function removeList(user: Jid, session: LocalSession, name: string): Promise<void> {
    const st = await cache.ensure(user);
    if (!st.lists.has(name)) throw new StanzaError('item-not-found');
    if (inUseByOthers(user, st, session, name)) throw new StanzaError('conflict', 'the list applies to another resource');
    const before = blockedJids(defaultOf(st));
    const me = sessions.of(session);
    await changes.withPresence(user, async () => {
      await store.removeList(host, user.local, name);
      await cache.setList(user, st, null, name);
      if (st.defaultName === name) st.defaultName = null;
      if (me.active === name) await sessions.setActive(session, me, null);
    });
    changes.pushPrivacy(user, name);
    changes.pushBlocklistDiff(user, before, blockedJids(defaultOf(st)));
  }

  return { get, set };
}

/** Reads and checks the items of a list set (XEP-0016 §2.1). */
async function readItems(p: PrivacyParts, user: Jid, els: XmlElement[]): Promise<PrivacyItem[]> {
  if (els.length > MAX_ITEMS) throw new StanzaError('not-acceptable', 'too many items in one list');
  const orders = new Set<number>();
  const items: PrivacyItem[] = [];
  let groups: Set<string> | null = null;
  for (const el of els) {
    if (!el.is('item', NS.PRIVACY)) throw new StanzaError('bad-request', 'a list holds only items');
    const action = el.attrs.action;
    if (action !== 'allow' && action !== 'deny') throw new StanzaError('bad-request', 'an item needs action allow or deny');
    const orderText = el.attrs.order;
    const order = orderText !== undefined && /^\d{1,10}$/.test(orderText) ? Number(orderText) : NaN;
    if (!Number.isInteger(order) || order > 0xffffffff) throw new StanzaError('bad-request', 'an item needs an unsigned integer order');
    if (orders.has(order)) throw new StanzaError('bad-request', 'item orders must be unique');
    orders.add(order);
    const type = el.attrs.type;
    let value: string | null = null;
    if (type === undefined) {
      value = null;
    } else if (type === 'jid') {
      const jid = Jid.tryParse(el.attrs.value);
      if (!jid) throw new StanzaError('bad-request', 'a jid item needs a valid JID');
      value = jid.full;
    } else if (type === 'group') {
      value = el.attrs.value ?? '';
      if (value === '') throw new StanzaError('bad-request', 'a group item needs a group name');
      groups ??= new Set((await p.rosterItems(user)).filter((i) => i.inRoster).flatMap((i) => i.groups));
      // XEP-0016 §2.1: a group that is not in the roster.
      if (!groups.has(value)) throw new StanzaError('item-not-found', `no roster group ${value}`);
    } else if (type === 'subscription') {
      value = el.attrs.value ?? '';
      if (!SUBSCRIPTIONS.has(value)) throw new StanzaError('bad-request', 'subscription must be none, to, from or both');
    } else {
      throw new StanzaError('bad-request', `unknown item type ${type}`);
    }
    const kinds: PrivacyKind[] = [];
    for (const k of el.elements()) {
      const kind = KINDS.find((n) => k.is(n, NS.PRIVACY));
      if (!kind) throw new StanzaError('bad-request', `unknown element ${k.name} in an item`);
      if (!kinds.includes(kind)) kinds.push(kind);
    }
    items.push({ type: type === undefined ? null : (type as PrivacyItem['type']), value, action, order, kinds });
  }
  return items;
}

/** A list element with its items, as stored (XEP-0016 §2.3). */
function listElement(list: CompiledList): XmlElement {
  const el = x('list', { name: list.name });
  for (const { item } of list.items) {
    const it = x('item', {
      type: item.type ?? undefined,
      value: item.value ?? undefined,
      action: item.action,
      order: String(item.order),
    });
    for (const k of item.kinds) it.append(x(k));
    el.append(it);
  }
  return el;
}
