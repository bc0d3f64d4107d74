/**
 * The privacy engine: one rule evaluator behind privacy lists, blocking and XEP-0126
 * invisibility. Pure and synchronous: the module keeps compiled lists in memory so the
 * router's filters never wait.
 * References: XEP-0016 §2.1 (syntax, JID matching order, fall-through), §2.2 (business
 * rules: ascending order, first match wins, default allow, no layering), §2.8–2.12 (what
 * each stanza child blocks); XEP-0191 §4 (the blocklist is the default list's jid+deny
 * items), §5 (JID matching).
 */
import { Jid } from '../../xmpp/jid.js';
import type { PrivacyItem, PrivacyKind, PrivacyList } from './store.js';

/**
 * What a stanza is, for the rules: the four kinds an item can name, and `other` for
 * what only an item with no kinds (blocking "all") matches — subscription presence,
 * probes, presence errors, and stanzas the user sends that are not presence notifications.
 */
export type StanzaClass = PrivacyKind | 'other';

/** A contact as the rules see it: subscription and roster groups (RFC 6121 §2.1.2). */
export interface RosterView {
  subscription: 'none' | 'to' | 'from' | 'both';
  groups: readonly string[];
}

/** A contact that is not in the roster: subscription none, no groups (XEP-0016 §2.1). */
export const NOT_IN_ROSTER: RosterView = Object.freeze({ subscription: 'none', groups: Object.freeze([]) as readonly string[] });

export interface CompiledItem {
  readonly item: PrivacyItem;
  /** The parsed JID of a jid item. */
  readonly jid: Jid | null;
  /** Bit set of the classes it applies to (all bits when the item names none). */
  readonly mask: number;
  /** A plain jid+deny item for every stanza: what XEP-0191 shows as a blocked JID. */
  readonly isBlock: boolean;
}

export interface CompiledList {
  readonly name: string;
  /** Ascending by order (XEP-0016 §2.2 rule 5). */
  readonly items: readonly CompiledItem[];
  /** Some item depends on the roster (group or subscription). */
  readonly needsRoster: boolean;
}

const BIT: Record<StanzaClass, number> = { message: 1, iq: 2, 'presence-in': 4, 'presence-out': 8, other: 16 };
const ALL = 31;

export function compileList(list: PrivacyList): CompiledList {
  const items = [...list.items]
    .sort((a, b) => a.order - b.order)
    .map((item): CompiledItem => {
      const jid = item.type === 'jid' && item.value !== null ? Jid.tryParse(item.value) : null;
      let mask = 0;
      for (const k of item.kinds) mask |= BIT[k];
      if (mask === 0) mask = ALL;
      return { item, jid, mask, isBlock: item.type === 'jid' && item.action === 'deny' && item.kinds.length === 0 && jid !== null };
    });
  return { name: list.name, items, needsRoster: items.some((i) => i.item.type === 'group' || i.item.type === 'subscription') };
}

/**
 * XEP-0016 §2.1 JID matching. The item's form decides: `user@domain/resource` matches
 * only that resource; `user@domain` any resource; `domain/resource` that resource of any
 * address on the domain (as ejabberd and Prosody do); `domain` the domain, every address
 * on it, and its subdomains.
 */
export function jidMatches(item: Jid, contact: Jid): boolean {
  if (item.local !== '') {
    if (item.local !== contact.local || item.domain !== contact.domain) return false;
    return item.resource === '' || item.resource === contact.resource;
  }
  if (item.resource !== '') return item.domain === contact.domain && item.resource === contact.resource;
  return contact.domain === item.domain || contact.domain.endsWith('.' + item.domain);
}

function itemMatches(ci: CompiledItem, contact: Jid, roster: () => RosterView): boolean {
  const it = ci.item;
  switch (it.type) {
    case null:
      return true; // the fall-through item
    case 'jid':
      return ci.jid !== null && jidMatches(ci.jid, contact);
    case 'subscription':
      return roster().subscription === it.value;
    case 'group':
      return it.value !== null && roster().groups.includes(it.value);
  }
}

/**
 * The first item of `list` that applies to a stanza of class `cls` exchanged with
 * `contact`, or null (the caller then allows: XEP-0016 §2.2 rule 7).
 */
export function firstMatch(list: CompiledList, contact: Jid, cls: StanzaClass, roster: () => RosterView): CompiledItem | null {
  const bit = BIT[cls];
  for (const ci of list.items) {
    if ((ci.mask & bit) === 0) continue;
    if (itemMatches(ci, contact, roster)) return ci;
  }
  return null;
}

/** The blocked JIDs of a list (XEP-0191 §4: jid+deny items for every stanza), in list order. */
export function blockedJids(list: CompiledList | undefined): string[] {
  if (!list) return [];
  const out: string[] = [];
  for (const ci of list.items) if (ci.isBlock && !out.includes(ci.jid!.full)) out.push(ci.jid!.full);
  return out;
}

/** Is `contact` blocked by the blocklist items of `list` (jid+deny, every stanza)? */
export function blockedBy(list: CompiledList | undefined, contact: Jid): boolean {
  if (!list) return false;
  for (const ci of list.items) if (ci.isBlock && jidMatches(ci.jid!, contact)) return true;
  return false;
}

/** The outcome for one stanza: the deciding item, and whether it is a blocklist item. */
export interface Decision {
  action: 'allow' | 'deny';
  /** Denied by an XEP-0191 block (the error then carries `<blocked/>`). */
  blocked: boolean;
}

const ALLOW: Decision = Object.freeze({ action: 'allow', blocked: false }) as Decision;

/**
 * The policy of a user on one stanza. `active` is the session's active list (null: the
 * default applies, XEP-0016 §2.2 rule 2). An active list replaces the default list, with
 * one exception taken for safety: the JIDs blocked in the default list (the XEP-0191
 * blocklist) stay blocked, so an active list — an XEP-0126 "invisible" list, say — never
 * lets a blocked contact through.
 */
export function decide(
  defaultList: CompiledList | undefined,
  active: CompiledList | undefined,
  contact: Jid,
  cls: StanzaClass,
  roster: () => RosterView,
): Decision {
  if (active !== undefined && active !== defaultList) {
    if (blockedBy(defaultList, contact)) return { action: 'deny', blocked: true };
    const m = firstMatch(active, contact, cls, roster);
    return m === null ? ALLOW : { action: m.item.action, blocked: false };
  }
  if (defaultList === undefined) return ALLOW;
  const m = firstMatch(defaultList, contact, cls, roster);
  return m === null ? ALLOW : { action: m.item.action, blocked: m.isBlock && m.item.action === 'deny' };
}

/** The class of a stanza reaching the user (XEP-0016: presence notifications are no type or unavailable). */
export function classifyIn(name: string, type: string | undefined): StanzaClass {
  if (name === 'message') return 'message';
  if (name === 'iq') return 'iq';
  return type === undefined || type === 'unavailable' ? 'presence-in' : 'other';
}

/** The class of a stanza the user sends: only presence notifications have a kind of their own. */
export function classifyOut(name: string, type: string | undefined): StanzaClass {
  return name === 'presence' && (type === undefined || type === 'unavailable') ? 'presence-out' : 'other';
}
