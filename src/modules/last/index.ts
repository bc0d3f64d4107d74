/**
 * XEP-0012: Last Activity.
 * - To the server: its uptime (§3).
 * - To a user's bare JID: when the user's last resource went offline and the status it
 *   gave then (§4), for those allowed to see the user's presence: a subscription from the
 *   user (`from` or `both`; portal friends are mirrored into the roster as `both`).
 *   Others get `forbidden` (§4, "not authorized"); so do users the account blocks presence
 *   to (XEP-0016/0191) and everyone while the user is invisible (XEP-0186): nothing tells
 *   them the user is online. A user online (visible) is answered with 0 seconds.
 * - To a full JID: the router hands the query to the client, which answers its idle time.
 * References: https://xmpp.org/extensions/xep-0012.html §3, §4, §5, §7 (security)
 *
 * Stored per user in one row, written when a visible resource goes offline (unavailable
 * presence or session end); every cluster node reads the same storage.
 */
import { x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule } from '../../core/module.js';
import { SessionFlag, type LocalSession } from '../../core/session.js';
import { SqlLastActivityStore } from './store-sql.js';
import type { LastActivityStore } from './store.js';

/** Longest status text kept (the presence limits bound it before; this bounds the row). */
const MAX_STATUS = 1024;

export default defineModule({
  name: 'last',
  setup(ctx) {
    const host = ctx.domain;
    const store: LastActivityStore = new SqlLastActivityStore(ctx.storage);
    const isInvisible = (s: LocalSession) => (s.flags & SessionFlag.Invisible) !== 0;

    ctx.addFeature(NS.LAST, 'host');
    ctx.addFeature(NS.LAST, 'account');

    ctx.handleIq('get', NS.LAST, 'query', () => x('query', { xmlns: NS.LAST, seconds: String(Math.floor((Date.now() - ctx.startedAt.getTime()) / 1000)) }), { scope: 'host' });

    ctx.handleIq(
      'get',
      NS.LAST,
      'query',
      async (req) => {
        const user = req.to.toBare();
        const visible = ctx.sessions.available(user.bare).filter((s) => !isInvisible(s));
        if (!req.isSelf) {
          // SECURITY: the answer a stranger gets for anyone not allowed to see presence now.
          const forbidden = () => new StanzaError('forbidden', 'not allowed to see this user\'s last activity');
          const item = await ctx.service('roster').getItem(user, req.from.bare);
          if (!item || (item.subscription !== 'from' && item.subscription !== 'both')) throw forbidden();
          const invisible = ctx.sessions.available(user.bare).some(isInvisible);
          if (invisible) throw forbidden();
          await ctx.policy.prepare(user);
          if (ctx.policy.checkOut(x('presence'), user, req.from, null) !== null) throw forbidden();
        }
        if (visible.length > 0) return x('query', { xmlns: NS.LAST, seconds: '0' });
        const seen = await store.get(host, user.local);
        if (!seen) throw new StanzaError('item-not-found', 'no last activity is known');
        const seconds = Math.max(0, Math.floor((Date.now() - seen.at) / 1000));
        return x('query', { xmlns: NS.LAST, seconds: String(seconds) }, seen.status || null);
      },
      { scope: 'account' },
    );

    const record = (session: LocalSession, status: string) => {
      // An invisible resource was never online for the others: it leaves no trace here.
      if (isInvisible(session) || session.jid.local === '') return;
      const task = store.set(host, session.jid.local, { at: Date.now(), status: status.slice(0, MAX_STATUS) }).catch((err: unknown) => ctx.log.warn({ err, jid: session.jid.bare }, 'last activity not stored'));
      void ctx.track(task);
    };

    ctx.hook(
      'presence-from-client',
      (session, stanza, to) => {
        // A broadcast unavailable presence: its time and status. It may be handled after the
        // session ended (the stream closed right after it, its privacy lists still loading):
        // the later time wins in the store, so its status replaces the end's empty one.
        if (to === null && stanza.attrs.type === 'unavailable') record(session, stanza.getChildText('status') ?? '');
        return false;
      },
      900,
    );

    // A session that ends while available (no unavailable presence of its own); before
    // the presence module (priority 0) marks it unavailable.
    ctx.hook(
      'session-closed',
      (session) => {
        if (session.isAvailable) record(session, '');
      },
      100,
    );
  },
});
