/**
 * Privacy: privacy lists, blocking and invisibility, on one engine (engine.ts) and one
 * store (store.ts). This file wires the parts: the lists in memory (cache.ts), the
 * per-session state (session-state.ts), the router's filters (filters.ts), how changes
 * are made (changes.ts), and the IQ handlers of each protocol (privacy-lists.ts,
 * blocking.ts, invisibility.ts).
 * References: XEP-0016 (privacy lists: named lists, active and default list, items by
 * jid, group and subscription, for message, iq, presence-in and presence-out, pushes,
 * conflict rules), XEP-0191 (blocking command, with the blocklist mapped to the default
 * list's jid+deny items, §4), XEP-0186 (invisible command, urn:xmpp:invisible:0 and the
 * `probe` attribute of urn:xmpp:invisible:1), XEP-0126 (invisibility through a
 * presence-out deny list: no code of its own, it is a privacy list).
 *
 * Where the rules live: the router's stanza filters (synchronous) read each user's lists
 * from memory. Users with a session are kept loaded (from 'session-bound' on); other
 * users' lists — needed for stanzas to offline accounts and to accounts that do not
 * exist — are loaded on demand through the router's `prepare` step (the router holds the
 * stanza until the lists are in memory) and kept in a bounded LRU cache. Presence that
 * the server fans out itself is filtered by the presence module, which asks the same
 * filters (router.checkOut/checkIn) and this module's `privacy` service (invisibility).
 *
 * Deliberate choices:
 * - An active list replaces the default list (XEP-0016 §2.2 rule 1) except for the JIDs
 *   blocked in the default list: those stay blocked whatever list is active, so an
 *   XEP-0126 invisible list never lets a blocked contact through.
 * - While invisible, IQ get/set to the session's full JID from anyone it has not
 *   addressed since going invisible get service-unavailable, as for a resource that does
 *   not exist (XEP-0186 says to deliver them; that would tell a prober the user is online).
 * - While invisible (XEP-0186), no presence of the resource reaches anyone but the user's
 *   own resources: not what the server makes for it (broadcast, probe answers, avatar
 *   updates) and not a directed presence its client sends, which is refused with
 *   not-acceptable, as a privacy list denying presence-out refuses it (XEP-0016 §2.13).
 *   XEP-0186 §3.1.1 lets directed presence out; issue 18 forbids it, so that an invisible
 *   user cannot be shown online by anything (ejabberd and Prosody hide presence-out the
 *   same way for XEP-0126 lists, directed presence included).
 * - The out-filter is the one gate for presence leaving a resource, on every path and for
 *   sessions of other cluster nodes too: their invisibility (SessionFlag.Invisible) and
 *   their active list's name (LocalSession.privacyList) are published in the directory,
 *   and a node that does not have the user's lists in memory sends no available presence
 *   for them (it fails closed; callers load the lists first through router.prepare).
 * - Privacy list pushes go to the resources that used jabber:iq:privacy in their session
 *   (like blocklist pushes go to those that asked for the blocklist): a client that never
 *   fetched a list has nothing to refresh, and would only answer with an error.
 */
import { NS } from '../../xmpp/ns.js';
import type { Jid } from '../../xmpp/jid.js';
import { defineModule } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import type { PresenceService } from '../presence/api.js';
import type { PrivacyService } from './api.js';
import { PrivacyListCache } from './cache.js';
import { PrivacyChanges, type PrivacyParts } from './changes.js';
import { privacyFilters } from './filters.js';
import { PrivacySessions } from './session-state.js';
import { privacyListHandlers } from './privacy-lists.js';
import { blockingHandlers } from './blocking.js';
import { invisibilityHandlers } from './invisibility.js';
import { createPrivacyStore } from './store-sql.js';
import { privacySchema } from './schema.js';
import type { PrivacyStore } from './store.js';

export default defineModule({
  name: 'privacy',
  schema: privacySchema,
  setup(ctx) {
    const host = ctx.domain;
    const store: PrivacyStore = createPrivacyStore(ctx.storage);
    const rosterItems = (user: Jid) => ctx.service('roster').getItems(user);
    const resources = (bare: string) => ctx.sessions.resources(bare);
    const sync = (s: LocalSession) => ctx.sessions.sync(s);
    const cache = new PrivacyListCache({ host, store, hasSessions: (bare) => resources(bare).length > 0, rosterItems });
    const sessions = new PrivacySessions(sync);
    const changes = new PrivacyChanges({
      sessions,
      resources,
      invalidate: (bare) => ctx.invalidate('privacy', bare),
      presence: (): PresenceService | null => (ctx.hasService('presence') ? ctx.service('presence') : null),
    });
    const parts: PrivacyParts = { host, store, cache, sessions, changes, resources, sync, rosterItems };

    ctx.addFeature(NS.PRIVACY);
    ctx.addFeature(NS.BLOCKING);
    ctx.addFeature(NS.INVISIBLE_0);
    ctx.addFeature(NS.INVISIBLE_1);

    // ------------------------------------------------------------------ state in memory

    ctx.onInvalidate(
      'privacy',
      (bare) => cache.forget(bare),
      () => cache.clear(),
    );

    ctx.hook('session-bound', async (session) => {
      await cache.ensure(session.jid.toBare());
    });

    ctx.hook('session-closed', (session) => {
      cache.sessionGone(session.jid.bare);
    });

    ctx.hook('roster-changed', (user, contact, item) => {
      // Lists by group or subscription read the roster: other nodes read it again.
      ctx.invalidate('privacy', user.bare);
      cache.rosterChanged(user, contact, item);
    });

    // ------------------------------------------------------------------ the filters

    const filters = privacyFilters({ host, cache, sessions, sessionOf: (jid) => ctx.sessions.get(jid) ?? null });
    ctx.addFilter('in', filters.in, (user) => cache.prepare(user));
    ctx.addFilter('out', filters.out);

    const service: PrivacyService = {
      probesContacts(session) {
        const inv = sessions.get(session)?.invisible;
        return !inv || inv.probe;
      },
    };
    ctx.provide('privacy', service);

    // ------------------------------------------------------------------ XEP-0016

    const lists = privacyListHandlers(parts);
    ctx.handleIq('get', NS.PRIVACY, 'query', lists.get, { scope: 'account' });
    ctx.handleIq('set', NS.PRIVACY, 'query', lists.set, { scope: 'account' });

    // ------------------------------------------------------------------ XEP-0191

    const blocking = blockingHandlers(parts);
    ctx.handleIq('get', NS.BLOCKING, 'blocklist', blocking.blocklist, { scope: 'account' });
    ctx.handleIq('set', NS.BLOCKING, 'block', blocking.block, { scope: 'account' });
    ctx.handleIq('set', NS.BLOCKING, 'unblock', blocking.unblock, { scope: 'account' });

    // ------------------------------------------------------------------ XEP-0186

    for (const ns of [NS.INVISIBLE_0, NS.INVISIBLE_1]) {
      const invisibility = invisibilityHandlers(parts, ns);
      ctx.handleIq('set', ns, 'invisible', invisibility.invisible, { scope: 'account' });
      ctx.handleIq('set', ns, 'visible', invisibility.visible, { scope: 'account' });
    }
  },
});
