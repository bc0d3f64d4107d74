/**
 * Roster management.
 * References: RFC 6121 §2 (roster get, set, remove, pushes), §2.1.6 (interested
 * resources); the subscription state itself changes through the presence module.
 */
import { XmlElement, x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule, type ModuleContext } from '../../core/module.js';
import type { RosterItem, RosterService } from '../../core/services.js';
import { SqlRosterStore } from './store-sql.js';
import type { RosterStore } from './store.js';

/** Longest item name or group name accepted (RFC 6121 §2.1.2.4 lets servers set one). */
const MAX_NAME = 1023;
const MAX_GROUPS = 64;

export default defineModule({
  name: 'roster',
  setup(ctx) {
    const server = ctx.server;
    const store: RosterStore = new SqlRosterStore(server.storage);
    const host = server.domain;
    let pushId = 0;

    /** Sends a roster push for `item` (or a removal) to every interested resource. */
    const push = (user: Jid, item: RosterItem | null, contact: string, version: number): void => {
      const el = item && item.inRoster ? itemElement(item) : x('item', { jid: contact, subscription: 'remove' });
      for (const s of server.sessions.resources(user.bare)) {
        if (!s.rosterRequested || s.isClosed) continue;
        s.deliver(
          x('iq', { type: 'set', id: `push${++pushId}`, to: s.jid.full }, x('query', { xmlns: NS.ROSTER, ver: String(version) }, el)),
        );
      }
    };

    const service: RosterService = {
      getItems: (user) => store.list(host, user.local),
      getItem: (user, contact) => store.get(host, user.local, contact),
      async update(user, contact, change) {
        const { before, after, version } = await store.update(host, user.local, contact, change);
        if (before !== after) await server.hooks.notify('roster-changed', user, contact, after);
        if (visibleChanged(before, after)) push(user, after, contact, version);
        return after;
      },
    };
    ctx.provide('roster', service);

    ctx.handleIq(
      'get',
      NS.ROSTER,
      'query',
      async (req) => {
        if (!req.isSelf) throw new StanzaError('forbidden', 'a roster belongs to its account');
        if (req.session && !req.session.rosterRequested) {
          req.session.rosterRequested = true;
          server.sessions.changed(req.session);
        }
        const [items, version] = await Promise.all([store.list(host, req.from.local), store.version(host, req.from.local)]);
        const ver = String(version);
        const query = x('query', { xmlns: NS.ROSTER, ver });
        // XEP-0237: an up-to-date client gets an empty result and pushes from here on.
        if (req.payload.attrs.ver !== undefined && req.payload.attrs.ver === ver) return null;
        for (const item of items) if (item.inRoster) query.append(itemElement(item));
        return query;
      },
      { scope: 'account' },
    );

    ctx.handleIq(
      'set',
      NS.ROSTER,
      'query',
      async (req) => {
        if (!req.isSelf) throw new StanzaError('forbidden', 'a roster belongs to its account');
        const items = req.payload.getChildren('item', NS.ROSTER);
        if (items.length !== 1) throw new StanzaError('bad-request', 'a roster set carries exactly one item');
        const item = items[0]!;
        const contact = Jid.tryParse(item.attrs.jid);
        if (!contact) throw new StanzaError('bad-request', 'the item needs a valid jid');
        const contactBare = contact.bare;
        const user = req.from.toBare();
        if (item.attrs.subscription === 'remove') {
          await removeItem(ctx, service, user, contact.toBare());
          return null;
        }
        const { name, groups } = readItem(item);
        await service.update(user, contactBare, (cur) => ({
          ...(cur ?? emptyItem(contactBare)),
          name,
          groups,
          inRoster: true,
        }));
        return null;
      },
      { scope: 'account' },
    );
  },
});

function emptyItem(jid: string): RosterItem {
  return { jid, name: null, subscription: 'none', groups: [], askOut: false, askIn: false, askInStanza: null, approved: false, inRoster: false };
}

/** RFC 6121 §2.5: removing an item cancels both directions of the subscription. */
async function removeItem(ctx: ModuleContext, service: RosterService, user: Jid, contact: Jid): Promise<void> {
  const server = ctx.server;
  const current = await service.getItem(user, contact.bare);
  if (!current || !current.inRoster) throw new StanzaError('item-not-found');
  await service.update(user, contact.bare, () => null);
  const send = (type: string) => server.router.route(x('presence', { type, from: user.bare, to: contact.bare }), user, contact);
  if (current.subscription === 'from' || current.subscription === 'both' || current.askIn) {
    send('unsubscribed');
    // The contact no longer sees this user: each available resource goes unavailable for it.
    for (const s of server.sessions.available(user.bare)) {
      server.router.route(x('presence', { type: 'unavailable', from: s.jid.full, to: contact.bare }), s.jid, contact);
    }
  }
  if (current.subscription === 'to' || current.subscription === 'both' || current.askOut) send('unsubscribe');
}

function readItem(item: XmlElement): { name: string | null; groups: string[] } {
  const name = item.attrs.name ?? null;
  if (name !== null && name.length > MAX_NAME) throw new StanzaError('not-acceptable', 'the item name is too long');
  const groups: string[] = [];
  for (const g of item.getChildren('group', NS.ROSTER)) {
    const text = g.text();
    if (text === '') throw new StanzaError('not-acceptable', 'a group name must not be empty');
    if (text.length > MAX_NAME) throw new StanzaError('not-acceptable', 'a group name is too long');
    if (groups.includes(text)) throw new StanzaError('bad-request', `group ${text} is listed twice`);
    groups.push(text);
  }
  if (groups.length > MAX_GROUPS) throw new StanzaError('not-acceptable', 'too many groups');
  return { name, groups };
}

/** The `<item/>` of a roster result or push (RFC 6121 §2.1.2). */
export function itemElement(item: RosterItem): XmlElement {
  const el = x('item', {
    jid: item.jid,
    name: item.name ?? undefined,
    subscription: item.subscription,
    ask: item.askOut ? 'subscribe' : undefined,
    approved: item.approved ? 'true' : undefined,
  });
  for (const g of item.groups) el.append(x('group', null, g));
  return el;
}

/** Did what the client sees of this item change (so a push is due)? */
function visibleChanged(a: RosterItem | null, b: RosterItem | null): boolean {
  const va = a?.inRoster ? a : null;
  const vb = b?.inRoster ? b : null;
  if (va === null || vb === null) return va !== vb;
  return (
    va.name !== vb.name ||
    va.subscription !== vb.subscription ||
    va.askOut !== vb.askOut ||
    va.approved !== vb.approved ||
    va.groups.join('\u0000') !== vb.groups.join('\u0000')
  );
}
