/**
 * Message Archive Management: every one-to-one message a user sends or receives is kept
 * in the user's archive (per the user's preferences), before it is delivered, so a
 * client that reconnects catches up from the archive; clients page through it by JID,
 * time and id. The recipient's copy carries its archive id as a stanza-id.
 * References: XEP-0313 (urn:xmpp:mam:2, §4 querying, §5 business rules, §6 preferences,
 * mam:2#extended: before-id/after-id/ids, flip-page, metadata), XEP-0059 (result set
 * management), XEP-0359 §3 (stanza-id), XEP-0334 (store / no-store hints),
 * XEP-0297 (forwarding), XEP-0203 (delay), XEP-0082 (date formats), XEP-0004 (forms).
 */
import { x, XmlElement } from '../../xml/element.js';
import { escapeAttr } from '../../xml/escape.js';
import { serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';
import { options } from './options.js';
import { defineModule, type IqRequest } from '../../core/module.js';
import type { StagedMessage } from '../../core/message-stages.js';
import { ArchiveIds, decodeId, encodeId, firstIdAt, timeOfId } from './ids.js';
import { SqlArchiveStore } from './store-sql.js';
import type { ArchiveDefault, ArchiveEntry, ArchiveFilter, ArchivePrefs, ArchiveStore } from './store.js';
import { parseQuery, type MamQuery } from './query.js';
import { ArchiveWriter } from './writer.js';

const HINTS = 'urn:xmpp:hints';
/** Users whose preferences are kept in memory (the hot path reads them without I/O). */
const PREFS_CACHE = 50_000;
/** SECURITY: bound on the JIDs of one preference list. */
const MAX_PREF_JIDS = 1000;

/** Preferences as the hot path reads them. */
interface Prefs {
  default: ArchiveDefault;
  always: ReadonlySet<string>;
  never: ReadonlySet<string>;
}

export default defineModule({
  name: 'mam',
  options,
  setup(ctx) {
    const host = ctx.domain;
    const cfg = ctx.options;
    if (!cfg.enabled) return;
    const store: ArchiveStore = new SqlArchiveStore(ctx.storage);
    const ids = new ArchiveIds();
    const writer = new ArchiveWriter(store, ctx.stats);
    const defaults: Prefs = { default: cfg.default, always: new Set(), never: new Set() };
    /** Preferences by username; insertion order is the eviction order. */
    const prefsCache = new Map<string, Prefs>();
    const prefsLoading = new Map<string, Promise<Prefs>>();
    /** What accept() wrote, for rejected() to take back. */
    const written = new WeakMap<StagedMessage, Array<{ user: string; id: number }>>();

    ctx.addFeature(NS.MAM, 'account');
    ctx.addFeature(NS.MAM_EXTENDED, 'account');
    ctx.addFeature(NS.SID, 'account');

    // ------------------------------------------------------------ preferences

    function cachePrefs(user: string, p: Prefs): Prefs {
      prefsCache.delete(user);
      prefsCache.set(user, p);
      if (prefsCache.size > PREFS_CACHE) prefsCache.delete(prefsCache.keys().next().value!);
      return p;
    }

    function prefsOf(user: string): Prefs | Promise<Prefs> {
      const cached = prefsCache.get(user);
      if (cached) return cached;
      let loading = prefsLoading.get(user);
      if (!loading) {
        loading = store
          .getPrefs(host, user)
          .then((p) => cachePrefs(user, p ? toPrefs(p) : defaults))
          .finally(() => prefsLoading.delete(user));
        prefsLoading.set(user, loading);
      }
      return loading;
    }

    /** Does `user` archive messages with `peer`? Synchronous when the answer is known without I/O. */
    function wants(user: string, peer: Jid): boolean | Promise<boolean> {
      const p = prefsOf(user);
      return p instanceof Promise ? p.then((q) => decide(user, q, peer)) : decide(user, p, peer);
    }

    function decide(user: string, p: Prefs, peer: Jid): boolean | Promise<boolean> {
      if (p.never.size > 0 && (p.never.has(peer.bare) || p.never.has(peer.full))) return false;
      if (p.always.size > 0 && (p.always.has(peer.bare) || p.always.has(peer.full))) return true;
      if (p.default === 'always') return true;
      if (p.default === 'never') return false;
      return ctx
        .service('roster')
        .getItem(Jid.of(user, host), peer.bare)
        .then((item) => item?.inRoster === true);
    }

    ctx.hook('session-bound', async (session) => {
      await prefsOf(session.jid.local);
    });

    ctx.onInvalidate('mam-prefs', (user) => prefsCache.delete(user), () => prefsCache.clear());

    ctx.hook('user-deleted', async (user) => {
      prefsCache.delete(user.local);
      await store.removeUser(host, user.local);
    });

    // ------------------------------------------------------------ archiving

    ctx.addMessageStage({
      name: 'mam',
      fromClient(stanza) {
        // XEP-0359 §3.1: a stanza-id in our name can only come from us.
        stripOurStanzaIds(stanza, host);
      },
      accept(msg) {
        const { stanza, from, to } = msg;
        if (!isArchivable(stanza)) return;
        // Already archived: a message routed again after its session ended.
        if (hasStanzaIdBy(stanza, to.bare)) return;
        const self = from.bare === to.bare;
        const senderLocal = from.domain === host && from.local !== '';
        const wantIn = wants(to.local, from);
        const wantOut = senderLocal && !self ? wants(from.local, to) : false;
        if (wantIn === false && wantOut === false) return; // the hot path when archiving is off
        const id = ids.next();
        const xml = archivedForm(stanza);
        return (async () => {
          const [inbound, outbound] = await Promise.all([wantIn, wantOut]);
          const createdAt = timeOfId(id);
          const undo: Array<{ user: string; id: number }> = [];
          written.set(msg, undo);
          const writes: Array<Promise<void>> = [];
          if (inbound) {
            const e: ArchiveEntry = { id, with: from.bare, withResource: from.resource, direction: 'in', stanza: xml, createdAt };
            writes.push(
              writer.write(host, to.local, e).then(() => {
                undo.push({ user: to.local, id });
                stanza.append(x('stanza-id', { xmlns: NS.SID, by: to.bare, id: encodeId(id) }));
                msg.stanzaIds.set(to.bare, encodeId(id));
              }),
            );
          }
          if (outbound) {
            const e: ArchiveEntry = { id, with: to.bare, withResource: to.resource, direction: 'out', stanza: xml, createdAt };
            writes.push(
              writer.write(host, from.local, e).then(() => {
                undo.push({ user: from.local, id });
                msg.stanzaIds.set(from.bare, encodeId(id));
              }),
            );
          }
          const results = await Promise.allSettled(writes);
          const failed = results.find((r) => r.status === 'rejected');
          if (failed) throw (failed as PromiseRejectedResult).reason;
        })();
      },
      async rejected(msg) {
        const undo = written.get(msg);
        if (!undo) return;
        for (const w of undo) await store.remove(host, w.user, [w.id]);
        msg.stanza.children = msg.stanza.children.filter((c) => typeof c === 'string' || !(c.name === 'stanza-id' && c.ns === NS.SID && c.attrs.by === msg.to.bare));
      },
    });

    if (cfg.retention > 0) {
      ctx.every(cfg.sweepInterval, async () => {
        const n = await store.removeOlderThan(Date.now() - cfg.retention);
        if (n > 0) ctx.log.info({ removed: n }, 'expired archived messages removed');
      });
    }

    // ------------------------------------------------------------ queries

    /** Only the owner reads or configures an archive; others learn nothing of it. */
    function owner(req: IqRequest): string {
      if (!req.isSelf || req.to.local === '') throw new StanzaError('service-unavailable');
      return req.to.local;
    }

    ctx.handleIq('get', NS.MAM, 'query', (req) => {
      owner(req);
      return x('query', { xmlns: NS.MAM }, queryForm());
    }, { scope: 'account' });

    ctx.handleIq('set', NS.MAM, 'query', async (req) => {
      const user = owner(req);
      const q = parseQuery(req.payload, cfg.maxPageSize);
      const fin = await runQuery(user, req, q);
      return fin;
    }, { scope: 'account' });

    async function knownId(user: string, s: string): Promise<number> {
      const id = decodeId(s);
      if (id === null || !(await store.has(host, user, id))) throw new StanzaError('item-not-found', `no message ${s} in the archive`);
      return id;
    }

    async function runQuery(user: string, req: IqRequest, q: MamQuery): Promise<XmlElement> {
      // The query's set (what count counts): with, start/end, after-id/before-id, ids.
      const filter: ArchiveFilter = {};
      if (q.with) filter.with = q.with.isBare ? { bare: q.with.bare } : { bare: q.with.bare, resource: q.with.resource };
      const lower = (v: number) => (filter.afterId = filter.afterId === undefined ? v : Math.max(filter.afterId, v));
      const upper = (v: number) => (filter.beforeId = filter.beforeId === undefined ? v : Math.min(filter.beforeId, v));
      if (q.start !== undefined) lower(firstIdAt(q.start) - 1);
      if (q.end !== undefined) upper(firstIdAt(q.end + 1));
      if (q.afterId !== undefined) lower(await knownId(user, q.afterId));
      if (q.beforeId !== undefined) upper(await knownId(user, q.beforeId));
      if (q.ids) {
        const list: number[] = [];
        for (const s of q.ids) {
          const id = decodeId(s);
          if (id !== null) list.push(id);
        }
        filter.ids = list;
      }
      // The page: RSM after/before narrow the set without changing count.
      const pageFilter: ArchiveFilter = { ...filter };
      if (q.rsm.after !== undefined) pageFilter.afterId = Math.max(filter.afterId ?? -1, await knownId(user, q.rsm.after));
      if (q.rsm.before !== undefined && q.rsm.before !== '') pageFilter.beforeId = Math.min(filter.beforeId ?? Number.MAX_SAFE_INTEGER, await knownId(user, q.rsm.before));

      const count = await store.count(host, user, filter);
      const max = q.rsm.max;
      let items: ArchiveEntry[] = [];
      let complete: boolean;
      let index = 0;
      if (max === 0) {
        complete = count === 0;
      } else if (q.rsm.before !== undefined) {
        const page = await store.page(host, user, pageFilter, { limit: max, from: 'end' });
        items = page.items;
        complete = !page.more;
        index = q.rsm.before === '' ? count - items.length : -1;
      } else if (q.rsm.index !== undefined) {
        const page = await store.page(host, user, pageFilter, { limit: max, from: 'start', offset: q.rsm.index });
        items = page.items;
        complete = !page.more;
        index = q.rsm.index;
      } else {
        const page = await store.page(host, user, pageFilter, { limit: max, from: 'start' });
        items = page.items;
        complete = !page.more;
        index = q.rsm.after === undefined ? 0 : -1;
      }
      if (items.length > 0 && index < 0) index = await store.count(host, user, { ...filter, beforeId: Math.min(filter.beforeId ?? Number.MAX_SAFE_INTEGER, items[0]!.id) });

      // The results, then the fin (the IQ result is routed after these are delivered).
      const session = req.session ?? ctx.sessions.get(req.from);
      if (session && items.length > 0) {
        const order = q.flipPage ? [...items].reverse() : items;
        const head = `<message xmlns='jabber:client' from='${escapeAttr(req.to.bare)}' to='${escapeAttr(req.from.full)}'><result xmlns='${NS.MAM}'${
          q.queryId === undefined ? '' : ` queryid='${escapeAttr(q.queryId)}'`
        } id='`;
        for (const e of order) {
          const stamp = new Date(e.createdAt).toISOString();
          session.deliverSerialized(
            `${head}${encodeId(e.id)}'><forwarded xmlns='${NS.FORWARD}'><delay xmlns='${NS.DELAY}' stamp='${stamp}'/>${e.stanza}</forwarded></result></message>`,
            'message',
          );
        }
      }
      const set = x('set', { xmlns: NS.RSM });
      if (items.length > 0) {
        const first = q.flipPage ? items[items.length - 1]! : items[0]!;
        const last = q.flipPage ? items[0]! : items[items.length - 1]!;
        set.append(x('first', { index: String(index) }, encodeId(first.id)));
        set.append(x('last', null, encodeId(last.id)));
      }
      set.append(x('count', null, String(count)));
      return x('fin', { xmlns: NS.MAM, complete: complete ? 'true' : undefined }, set);
    }

    ctx.handleIq('get', NS.MAM, 'metadata', async (req) => {
      const user = owner(req);
      const b = await store.bounds(host, user);
      const md = x('metadata', { xmlns: NS.MAM });
      if (b) {
        md.append(x('start', { id: encodeId(b.first.id), timestamp: new Date(b.first.createdAt).toISOString() }));
        md.append(x('end', { id: encodeId(b.last.id), timestamp: new Date(b.last.createdAt).toISOString() }));
      }
      return md;
    }, { scope: 'account' });

    // ------------------------------------------------------------ preferences IQ (§6)

    ctx.handleIq('get', NS.MAM, 'prefs', async (req) => {
      const user = owner(req);
      return prefsElement(await prefsOf(user));
    }, { scope: 'account' });

    ctx.handleIq('set', NS.MAM, 'prefs', async (req) => {
      const user = owner(req);
      const p = parsePrefs(req.payload);
      await store.setPrefs(host, user, p);
      ctx.invalidate('mam-prefs', user);
      return prefsElement(cachePrefs(user, toPrefs(p)));
    }, { scope: 'account' });
  },
});

// -------------------------------------------------------------- helpers

/** XEP-0313 §5.1.1 and XEP-0334: what goes into an archive. */
export function isArchivable(stanza: XmlElement): boolean {
  const type = stanza.attrs.type ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return false;
  let body = false;
  let store = false;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    if (c.ns === HINTS) {
      if (c.name === 'no-store' || c.name === 'no-permanent-store') return false;
      if (c.name === 'store') store = true;
    } else if (c.name === 'body') body = true;
  }
  return body || store;
}

function hasStanzaIdBy(stanza: XmlElement, by: string): boolean {
  for (const c of stanza.children) {
    if (typeof c !== 'string' && c.name === 'stanza-id' && c.ns === NS.SID && c.attrs.by === by) return true;
  }
  return false;
}

/** Removes stanza-ids that claim to be from this server or one of its accounts. */
export function stripOurStanzaIds(stanza: XmlElement, domain: string): void {
  let found = false;
  for (const c of stanza.children) {
    if (typeof c !== 'string' && c.name === 'stanza-id' && c.ns === NS.SID) found = true;
  }
  if (!found) return;
  stanza.children = stanza.children.filter((c) => {
    if (typeof c === 'string' || c.name !== 'stanza-id' || c.ns !== NS.SID) return true;
    const by = Jid.tryParse(c.attrs.by);
    return by === null ? false : by.domain !== domain;
  });
}

/** The message as archived: with its namespace, so it can be forwarded as it is. */
function archivedForm(stanza: XmlElement): string {
  if (stanza.attrs.xmlns !== undefined) return serialize(stanza);
  const el = new XmlElement(stanza.name, { xmlns: NS.CLIENT, ...stanza.attrs }, null, stanza.ns);
  el.children = stanza.children;
  return serialize(el);
}

function toPrefs(p: ArchivePrefs): Prefs {
  return { default: p.default, always: new Set(p.always), never: new Set(p.never) };
}

function prefsElement(p: Prefs): XmlElement {
  return x(
    'prefs',
    { xmlns: NS.MAM, default: p.default },
    x('always', null, ...[...p.always].map((j) => x('jid', null, j))),
    x('never', null, ...[...p.never].map((j) => x('jid', null, j))),
  );
}

function parsePrefs(el: XmlElement): ArchivePrefs {
  const d = el.attrs.default;
  if (d !== 'always' && d !== 'never' && d !== 'roster') throw new StanzaError('bad-request', 'default must be always, never or roster');
  const list = (name: string): string[] => {
    const out = new Set<string>();
    for (const j of el.getChild(name, NS.MAM)?.getChildren('jid', NS.MAM) ?? []) {
      const jid = Jid.tryParse(j.text().trim());
      if (!jid) throw new StanzaError('jid-malformed', `not a JID: ${j.text()}`);
      out.add(jid.full);
    }
    // SECURITY: preferences live in memory for online users; bound them.
    if (out.size > MAX_PREF_JIDS) throw new StanzaError('not-acceptable', `at most ${MAX_PREF_JIDS} JIDs per list`);
    return [...out];
  };
  return { default: d, always: list('always'), never: list('never') };
}

/** The query form (XEP-0313 §4.1.5), with the extended fields. */
function queryForm(): XmlElement {
  const field = (v: string, type: string) => x('field', { var: v, type });
  return x(
    'x',
    { xmlns: 'jabber:x:data', type: 'form' },
    x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, NS.MAM)),
    field('with', 'jid-single'),
    field('start', 'text-single'),
    field('end', 'text-single'),
    field('before-id', 'text-single'),
    field('after-id', 'text-single'),
    field('ids', 'text-multi'),
  );
}
