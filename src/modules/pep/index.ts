/**
 * Personal Eventing Protocol: a publish-subscribe service on every account's bare JID.
 * References: XEP-0163 §4 (auto-create, presence-based access, filtered notifications
 * by entity capabilities "+notify", last published item on presence), XEP-0060 §6.5
 * (retrieve items, max_items), §7.1 (publish, item ids, publish-options §7.1.5), §7.2
 * (retract), §8.1 (create), §8.2 (configure), §8.3 (default configuration), §8.4 (delete
 * node), §8.5 (purge); XEP-0115 (entity capabilities) for who wants which notifications;
 * XEP-0084 (avatars) and XEP-0398 (vCard conversion, in the vcard module) are its users.
 */
import { randomUUID } from 'node:crypto';
import { XmlElement, x } from '../../xml/element.js';
import { parseElement } from '../../xml/parse.js';
import { serialize } from '../../xml/serializer.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError, type StanzaErrorCondition } from '../../xmpp/errors.js';
import { options } from './options.js';
import { defineModule, type IqRequest } from '../../core/module.js';
import type { LocalSession } from '../../core/session.js';
import type { PepItem, PepService } from './api.js';
import type { RosterService } from '../roster/api.js';
import { CapsCache, capsOf, verificationString, type CapsRef } from './caps.js';
import { applyFields, configForm, defaultConfig, meetsPreconditions, readForm, type NodeConfig } from './node-config.js';
import { SqlPepStore } from './store-sql.js';
import type { PepStore, StoredItem } from './store.js';

/** Longest node name and item id (they are keys in storage: varchar(191)). */
const MAX_NAME = 191;
/** How long the server waits for a client's disco#info answer (XEP-0115). */
const CAPS_QUERY_TIMEOUT_MS = 10_000;
/** Owners whose node lists are kept in memory (last items at login are cheap for users with none). */
const NODE_LIST_CACHE = 10_000;

/** What one session's client wants notifications for (XEP-0163 §4.3.1 filtered notifications). */
interface Interest {
  /** The caps the notify set came from ('' without caps). */
  key: string;
  notify: Set<string>;
}

const PUBSUB_FEATURES = [
  'access-open',
  'access-presence',
  'access-whitelist',
  'auto-create',
  'auto-subscribe',
  'config-node',
  'create-and-configure',
  'create-nodes',
  'delete-items',
  'delete-nodes',
  'filtered-notifications',
  'item-ids',
  'last-published',
  'persistent-items',
  'presence-notifications',
  'publish',
  'publish-options',
  'purge-nodes',
  'retract-items',
  'retrieve-default',
  'retrieve-items',
];

export default defineModule({
  name: 'pep',
  options,
  setup(ctx) {
    const host = ctx.domain;
    const limits = ctx.options;
    const defaults = defaultConfig(Math.min(limits.defaultMaxItems, limits.maxItems));
    const store: PepStore = new SqlPepStore(ctx.storage, defaults);
    const roster = (): RosterService => ctx.service('roster');
    const capsCache = new CapsCache(limits.capsCache);
    const interests = new WeakMap<LocalSession, Interest>();
    /** The caps key of each session's newest broadcast presence (see updateInterest). */
    const newest = new WeakMap<LocalSession, string>();
    /** Disco#info queries in flight, by verified caps key, so one client is asked per ver. */
    const capsQueries = new Map<string, Promise<Set<string> | null>>();
    /** owner bare JID → its nodes (LRU), invalidated on every change of the node set or configs. */
    const nodeLists = new Map<string, Array<{ node: string; config: NodeConfig }>>();
    let notificationSeq = 0;

    ctx.addIdentity({ category: 'pubsub', type: 'pep' }, 'account');
    ctx.addFeature(NS.PUBSUB, 'account');
    for (const f of PUBSUB_FEATURES) ctx.addFeature(`${NS.PUBSUB}#${f}`, 'account');

    // ------------------------------------------------------------------ node lists

    async function nodesOf(owner: Jid): Promise<Array<{ node: string; config: NodeConfig }>> {
      const cached = nodeLists.get(owner.bare);
      if (cached) {
        nodeLists.delete(owner.bare);
        nodeLists.set(owner.bare, cached);
        return cached;
      }
      const list = await store.listNodes(host, owner.local);
      nodeLists.set(owner.bare, list);
      while (nodeLists.size > NODE_LIST_CACHE) nodeLists.delete(nodeLists.keys().next().value!);
      return list;
    }
    const nodesChanged = (owner: Jid) => {
      nodeLists.delete(owner.bare);
      ctx.invalidate('pep-nodes', owner.bare);
    };
    ctx.onInvalidate('pep-nodes', (bare) => nodeLists.delete(bare), () => nodeLists.clear());

    // XEP-0060 §5.2 (PEP: XEP-0163 §9): the account's disco#items lists its nodes (asked by the
    // owner: the disco module answers others' item queries with service-unavailable).
    ctx.addDiscoItems(async (req) => {
      const owner = req.to.toBare();
      return (await nodesOf(owner)).map(({ node, config }) => x('item', { jid: owner.bare, node, ...(config.title ? { name: config.title } : {}) }));
    }, 'account');

    /** Creates a node; `exists` when another request made it first. */
    async function createNode(owner: Jid, node: string, config: NodeConfig): Promise<'created' | 'exists'> {
      const r = await store.createNode(host, owner.local, node, config, limits.maxNodes);
      if (r === 'full') throw new StanzaError('not-allowed', `at most ${limits.maxNodes} nodes per account`, 'cancel', x('max-nodes-exceeded', { xmlns: NS.PUBSUB_ERRORS }));
      if (r === 'created') nodesChanged(owner);
      return r;
    }

    // ------------------------------------------------------------------ access

    /** XEP-0060 §6.5.2 / XEP-0163 §4.2: may `requester` retrieve items of `owner`'s node? */
    async function checkAccess(owner: Jid, requester: Jid, config: NodeConfig): Promise<void> {
      if (requester.bare === owner.bare || config.accessModel === 'open') return;
      if (config.accessModel === 'presence') {
        const item = await roster().getItem(owner, requester.bare);
        if (item && (item.subscription === 'from' || item.subscription === 'both')) return;
        throw pubsubError('not-authorized', 'presence-subscription-required');
      }
      throw pubsubError('not-allowed', 'closed-node');
    }

    // ------------------------------------------------------------------ notifications

    /**
     * The sessions that get notifications of `owner`'s node: the owner's own and those of
     * contacts subscribed to the owner's presence (XEP-0163 §4.3), whose client asked for
     * `node+notify`.
     */
    async function recipients(owner: Jid, node: string, config: NodeConfig): Promise<LocalSession[]> {
      const wants = (s: LocalSession) => !s.isClosed && interests.get(s)?.notify.has(node) === true;
      const out = ctx.sessions.available(owner.bare).filter(wants);
      if (config.accessModel === 'whitelist') return out;
      for (const item of await roster().getItems(owner)) {
        if (item.subscription !== 'from' && item.subscription !== 'both') continue;
        const jid = Jid.tryParse(item.jid);
        if (!jid || !ctx.isLocal(jid)) continue;
        for (const s of ctx.sessions.available(jid.bare)) if (wants(s)) out.push(s);
      }
      return out;
    }

    /** Makes the owner's privacy policy ready for router.checkOut (see Router.prepare). */
    async function preparePolicy(owner: Jid): Promise<void> {
      const wait = ctx.policy.prepare(owner);
      if (wait) await wait;
    }

    /**
     * Sends an event notification from the owner's bare JID to one session, unless the
     * owner's policy refuses it (after preparePolicy). The recipient's own policy is the
     * router's (checkIn).
     */
    function notify(owner: Jid, to: LocalSession, event: XmlElement, delayStamp?: string): void {
      const msg = new XmlElement('message', { from: owner.bare, to: to.jid.full, type: 'headline', id: `pep-${(++notificationSeq).toString(36)}` });
      msg.children = [event];
      if (delayStamp) msg.children = [event, x('delay', { xmlns: NS.DELAY, from: owner.bare, stamp: delayStamp })];
      // The owner's blocking/privacy policy on the contact (stanzas the server sends for the owner).
      if (to.jid.bare !== owner.bare && ctx.policy.checkOut(msg, owner, to.jid, null) !== null) return;
      ctx.route(msg, owner, to.jid);
    }

    async function broadcast(owner: Jid, node: string, config: NodeConfig, event: XmlElement): Promise<void> {
      if (!config.deliverNotifications) return;
      const targets = await recipients(owner, node, config);
      if (targets.some((s) => s.jid.bare !== owner.bare)) await preparePolicy(owner);
      for (const s of targets) notify(owner, s, event);
    }

    const itemsEvent = (node: string, ...children: XmlElement[]) => x('event', { xmlns: NS.PUBSUB_EVENT }, x('items', { node }, ...children));

    /** XEP-0163 §4.3.2: the last item of every node a newly available session wants, from the owner and each contact it is subscribed to. */
    async function sendLastItems(session: LocalSession, nodes: Set<string>): Promise<void> {
      if (nodes.size === 0) return;
      const self = session.jid.toBare();
      const owners: Jid[] = [self];
      for (const item of await roster().getItems(self)) {
        if (item.subscription !== 'to' && item.subscription !== 'both') continue;
        const jid = Jid.tryParse(item.jid);
        if (jid && jid.local !== '' && ctx.isLocal(jid)) owners.push(jid);
      }
      for (const owner of owners) {
        if (session.isClosed) return;
        const isSelf = owner.bare === self.bare;
        const wanted = (await nodesOf(owner)).filter(
          (n) =>
            nodes.has(n.node) &&
            n.config.persistItems &&
            n.config.deliverNotifications &&
            n.config.sendLastPublishedItem === 'on_sub_and_presence' &&
            (isSelf || n.config.accessModel !== 'whitelist'),
        );
        if (wanted.length === 0) continue;
        if (!isSelf && wanted.some((n) => n.config.accessModel === 'presence')) {
          // The owner's side of the subscription decides (XEP-0163 §4.2).
          const item = await roster().getItem(owner, self.bare);
          if (!item || (item.subscription !== 'from' && item.subscription !== 'both')) {
            const open = wanted.filter((n) => n.config.accessModel === 'open');
            wanted.length = 0;
            wanted.push(...open);
          }
        }
        if (wanted.length === 0) continue;
        const last = await store.lastItems(host, owner.local, wanted.map((n) => n.node));
        if (!isSelf && last.size > 0) await preparePolicy(owner);
        for (const [node, item] of last) {
          const payload = parseStored(item);
          if (!payload) continue;
          notify(owner, session, itemsEvent(node, x('item', { id: item.id }, payload)), new Date(item.createdAt).toISOString());
        }
      }
    }

    // ------------------------------------------------------------------ entity capabilities

    ctx.hook(
      'presence-from-client',
      (session, stanza, to) => {
        // Only the session's broadcast presence says what its client wants (XEP-0163 §4.3.1).
        if (to !== null && !(to.isBare && to.bare === session.jid.bare)) return false;
        if (stanza.attrs.type === 'unavailable') {
          // Coming back later counts as new: the last items are sent again (XEP-0163 §4.3.2).
          interests.delete(session);
          newest.delete(session); // a lookup still running for an earlier presence is dropped
          return false;
        }
        if (stanza.attrs.type !== undefined) return false;
        const ref = capsOf(stanza);
        updateInterest(session, ref).catch((err: unknown) => ctx.log.warn({ err, jid: session.jid.full }, 'entity capabilities lookup failed'));
        return false; // the presence goes on to the presence module
      },
      1000,
    );

    async function updateInterest(session: LocalSession, ref: CapsRef | null): Promise<void> {
      const key = ref ? `${ref.hash ?? ''} ${ref.node}#${ref.ver}` : '';
      // The newest presence decides, whatever order the lookups finish in: a lookup whose
      // presence is no longer the newest is dropped when it finishes.
      newest.set(session, key);
      if (interests.get(session)?.key === key) return;
      const features = ref ? await featuresOf(session, ref) : new Set<string>();
      if (session.isClosed || newest.get(session) !== key) return;
      // A lost or unverifiable answer keeps what the client wanted before (asked again at
      // the next presence with these caps, since the key is not recorded).
      if (features === null) return;
      const before = interests.get(session);
      const notify = new Set<string>();
      for (const f of features) if (f.endsWith('+notify') && f.length > 7) notify.add(f.slice(0, -7));
      interests.set(session, { key, notify });
      const added = new Set<string>();
      for (const n of notify) if (!before?.notify.has(n)) added.add(n);
      await sendLastItems(session, added);
    }

    /** The features behind a caps ref: from the cache, or asked of the client and cached when the hash verifies. */
    async function featuresOf(session: LocalSession, ref: CapsRef): Promise<Set<string> | null> {
      const verifiable = ref.hash !== undefined;
      if (verifiable) {
        const hit = capsCache.get(ref.hash!, ref.ver);
        if (hit) return hit.features;
        const key = `${ref.hash} ${ref.ver}`;
        const inflight = capsQueries.get(key);
        if (inflight) {
          const r = await inflight;
          if (r) return r;
        }
        const p = queryCaps(session, ref).finally(() => capsQueries.delete(key));
        capsQueries.set(key, p);
        return p;
      }
      return queryCaps(session, ref); // legacy caps: asked each time, never cached
    }

    async function queryCaps(session: LocalSession, ref: CapsRef): Promise<Set<string> | null> {
      const iq = x('iq', { type: 'get' }, x('query', { xmlns: NS.DISCO_INFO, node: `${ref.node}#${ref.ver}` }));
      let reply: XmlElement;
      try {
        reply = await ctx.request(iq, session.jid.toBare(), session.jid, CAPS_QUERY_TIMEOUT_MS);
      } catch {
        return null;
      }
      const query = reply.attrs.type === 'result' ? reply.getChild('query', NS.DISCO_INFO) : undefined;
      if (!query) return null;
      const features = new Set<string>();
      for (const f of query.getChildren('feature', NS.DISCO_INFO)) if (f.attrs.var) features.add(f.attrs.var);
      // SECURITY: only a ver that matches what the client answered is cached for everyone (XEP-0115 §5.4).
      if (ref.hash !== undefined && verificationString(query, ref.hash) === ref.ver) capsCache.set(ref.hash, ref.ver, { features });
      return features;
    }

    // ------------------------------------------------------------------ publish

    async function publish(owner: Jid, node: string, item: PepItem, publishOptions: Map<string, string[]> | null, byServer: boolean): Promise<string> {
      let config = await store.getNode(host, owner.local, node);
      if (!config) {
        const wanted = publishOptions ? applyFields(defaults, publishOptions, limits.maxItems, false) : defaults;
        if ((await createNode(owner, node, wanted)) === 'created') config = wanted;
        else config = await store.getNode(host, owner.local, node);
        if (!config) throw new StanzaError('item-not-found');
      }
      if (publishOptions && !meetsPreconditions(config, publishOptions, limits.maxItems)) {
        throw pubsubError('conflict', 'precondition-not-met', 'the node configuration does not match the publish-options');
      }
      const payload = withOwnNamespace(item.payload);
      if (config.persistItems) {
        // SECURITY: what one account stores over all its nodes is bounded (pep.maxItemsPerAccount,
        // pep.maxBytesPerAccount), not only per node: past it nothing is stored or sent.
        const quota = { items: limits.maxItemsPerAccount, bytes: limits.maxBytesPerAccount };
        const stored = await store.publish(host, owner.local, node, { id: item.id, payload: serialize(payload) }, Math.min(config.maxItems, limits.maxItems), quota);
        if (!stored) {
          ctx.limits.hit('pep-quota');
          throw new StanzaError('resource-constraint', `the account's PEP storage is full (at most ${quota.items} items, ${quota.bytes} bytes); retract or delete items first`, 'wait');
        }
      }
      await broadcast(owner, node, config, itemsEvent(node, x('item', { id: item.id }, payload)));
      await ctx.notify('pep-published', owner, node, { id: item.id, payload }, byServer);
      return item.id;
    }

    const service: PepService = {
      async publish(owner, node, item, opts) {
        const options = opts?.accessModel ? new Map([['pubsub#access_model', [opts.accessModel]]]) : null;
        const existing = await store.getNode(host, owner.local, node);
        // An existing node keeps its configuration: the options only shape a new one.
        await publish(owner.toBare(), node, item, existing ? null : options, true);
      },
      async getItem(owner, node, id) {
        const items = await store.items(host, owner.local, node, id === undefined ? { max: 1 } : { ids: [id] });
        const item = items[items.length - 1];
        const payload = item ? parseStored(item) : null;
        return item && payload ? { id: item.id, payload } : null;
      },
    };
    ctx.provide('pep', service);

    // ------------------------------------------------------------------ IQ handlers

    ctx.handleIq('set', NS.PUBSUB, 'pubsub', (req) => pubsubSet(req), { scope: 'account' });
    ctx.handleIq('get', NS.PUBSUB, 'pubsub', (req) => pubsubGet(req), { scope: 'account' });
    ctx.handleIq('set', NS.PUBSUB_OWNER, 'pubsub', (req) => ownerSet(req), { scope: 'account' });
    ctx.handleIq('get', NS.PUBSUB_OWNER, 'pubsub', (req) => ownerGet(req), { scope: 'account' });

    async function pubsubSet(req: IqRequest): Promise<XmlElement | null> {
      const owner = req.to.toBare();
      const [action, ...rest] = req.payload.elements();
      if (!action) throw new StanzaError('bad-request', 'an action is required');
      switch (action.localName) {
        case 'publish': {
          if (!req.isSelf) throw new StanzaError('forbidden', 'only the owner publishes on a personal node');
          const node = nodeName(action);
          const items = action.getChildren('item', NS.PUBSUB);
          if (items.length === 0) throw pubsubError('bad-request', 'item-required');
          if (items.length > 1) throw pubsubError('bad-request', 'invalid-payload', 'publish one item at a time');
          const payloads = items[0]!.elements();
          if (payloads.length !== 1) throw pubsubError('bad-request', payloads.length === 0 ? 'payload-required' : 'invalid-payload');
          const id = items[0]!.attrs.id || randomUUID();
          if (id.length > MAX_NAME) throw new StanzaError('not-acceptable', `item ids are at most ${MAX_NAME} characters`);
          let options: Map<string, string[]> | null = null;
          for (const r of rest) {
            if (!r.is('publish-options', NS.PUBSUB)) throw new StanzaError('bad-request', `unexpected <${r.localName}/>`);
            const form = r.getChild('x', NS.X_DATA);
            if (form) options = readForm(form, NS.PUBSUB_PUBLISH_OPTIONS);
          }
          await publish(owner, node, { id, payload: payloads[0]! }, options, false);
          return x('pubsub', { xmlns: NS.PUBSUB }, x('publish', { node }, x('item', { id })));
        }
        case 'retract': {
          if (!req.isSelf) throw new StanzaError('forbidden', 'only the owner retracts items');
          const node = nodeName(action);
          const ids = action.getChildren('item', NS.PUBSUB).map((i) => i.attrs.id ?? '');
          if (ids.length === 0 || ids.some((i) => i === '')) throw pubsubError('bad-request', 'item-required');
          const config = await store.getNode(host, owner.local, node);
          if (!config) throw new StanzaError('item-not-found');
          const retracted: string[] = [];
          for (const id of ids) if (await store.retract(host, owner.local, node, id)) retracted.push(id);
          if (retracted.length === 0) throw new StanzaError('item-not-found');
          const flag = action.attrs.notify;
          const shouldNotify = flag === undefined ? config.notifyRetract : flag === 'true' || flag === '1';
          if (shouldNotify) await broadcast(owner, node, config, itemsEvent(node, ...retracted.map((id) => x('retract', { id }))));
          return null;
        }
        case 'create': {
          if (!req.isSelf) throw new StanzaError('forbidden', 'only the owner creates personal nodes');
          if (action.attrs.node === undefined) throw pubsubError('not-acceptable', 'nodeid-required', 'PEP has no instant nodes');
          const node = nodeName(action);
          let config = defaults;
          for (const r of rest) {
            if (!r.is('configure', NS.PUBSUB)) throw new StanzaError('bad-request', `unexpected <${r.localName}/>`);
            const form = r.getChild('x', NS.X_DATA);
            if (form && form.attrs.type !== 'cancel') config = applyFields(defaults, readForm(form, NS.PUBSUB_NODE_CONFIG), limits.maxItems, true);
          }
          if ((await createNode(owner, node, config)) === 'exists') throw new StanzaError('conflict', 'the node exists');
          return null;
        }
        case 'subscribe':
        case 'unsubscribe':
        case 'options':
          // PEP subscriptions come from presence and caps (XEP-0163 §4.3).
          throw pubsubError('feature-not-implemented', 'unsupported', undefined, { feature: action.localName === 'options' ? 'subscription-options' : 'subscribe' });
        default:
          throw new StanzaError('bad-request', `unknown pubsub action <${action.localName}/>`);
      }
    }

    async function pubsubGet(req: IqRequest): Promise<XmlElement | null> {
      const owner = req.to.toBare();
      const action = req.payload.firstElement();
      if (!action) throw new StanzaError('bad-request', 'an action is required');
      switch (action.localName) {
        case 'items': {
          const node = nodeName(action);
          const config = await store.getNode(host, owner.local, node);
          if (!config) throw new StanzaError('item-not-found');
          await checkAccess(owner, req.from, config);
          const ids = action.getChildren('item', NS.PUBSUB).map((i) => i.attrs.id ?? '');
          if (ids.some((i) => i === '' || i.length > MAX_NAME)) throw new StanzaError('bad-request', 'each requested item needs an id');
          let max: number | undefined;
          if (action.attrs.max_items !== undefined) {
            if (!/^\d+$/.test(action.attrs.max_items) || Number(action.attrs.max_items) < 1) throw new StanzaError('bad-request', 'max_items must be a positive number');
            max = Math.min(Number(action.attrs.max_items), limits.maxItems);
          }
          const items = await store.items(host, owner.local, node, ids.length > 0 ? { ids: ids.slice(0, limits.maxItems) } : { max });
          const out = x('items', { node });
          for (const item of items) {
            const payload = parseStored(item);
            if (payload) out.append(x('item', { id: item.id }, payload));
          }
          return x('pubsub', { xmlns: NS.PUBSUB }, out);
        }
        case 'subscriptions':
        case 'affiliations': {
          if (!req.isSelf) throw new StanzaError('forbidden');
          // The owner is the only affiliate, and subscribers come from presence.
          if (action.localName === 'affiliations') {
            const out = x('affiliations');
            for (const n of await nodesOf(owner)) out.append(x('affiliation', { node: n.node, affiliation: 'owner' }));
            return x('pubsub', { xmlns: NS.PUBSUB }, out);
          }
          return x('pubsub', { xmlns: NS.PUBSUB }, x('subscriptions'));
        }
        case 'default':
          return x('pubsub', { xmlns: NS.PUBSUB }, x('default', null, configForm(defaults, limits.maxItems)));
        default:
          throw pubsubError('feature-not-implemented', 'unsupported', undefined, { feature: action.localName });
      }
    }

    async function ownerSet(req: IqRequest): Promise<XmlElement | null> {
      if (!req.isSelf) throw new StanzaError('forbidden', 'only the owner manages personal nodes');
      const owner = req.to.toBare();
      const action = req.payload.firstElement();
      if (!action) throw new StanzaError('bad-request', 'an action is required');
      switch (action.localName) {
        case 'configure': {
          const node = nodeName(action);
          const config = await store.getNode(host, owner.local, node);
          if (!config) throw new StanzaError('item-not-found');
          const form = action.getChild('x', NS.X_DATA);
          if (!form) throw new StanzaError('bad-request', 'a configuration form is required');
          if (form.attrs.type === 'cancel') return null;
          // XEP-0060 §8.2.5: a field the service does not support is not-acceptable, nothing changed.
          const next = applyFields(config, readForm(form, NS.PUBSUB_NODE_CONFIG), limits.maxItems, true);
          await store.configureNode(host, owner.local, node, next);
          nodesChanged(owner);
          return null;
        }
        case 'delete': {
          const node = nodeName(action);
          const config = await store.getNode(host, owner.local, node);
          if (!config || !(await store.deleteNode(host, owner.local, node))) throw new StanzaError('item-not-found');
          nodesChanged(owner);
          await broadcast(owner, node, config, x('event', { xmlns: NS.PUBSUB_EVENT }, x('delete', { node })));
          return null;
        }
        case 'purge': {
          const node = nodeName(action);
          const config = await store.getNode(host, owner.local, node);
          if (!config) throw new StanzaError('item-not-found');
          await store.purge(host, owner.local, node);
          await broadcast(owner, node, config, x('event', { xmlns: NS.PUBSUB_EVENT }, x('purge', { node })));
          return null;
        }
        default:
          throw pubsubError('feature-not-implemented', 'unsupported', undefined, { feature: action.localName });
      }
    }

    async function ownerGet(req: IqRequest): Promise<XmlElement | null> {
      if (!req.isSelf) throw new StanzaError('forbidden', 'only the owner manages personal nodes');
      const owner = req.to.toBare();
      const action = req.payload.firstElement();
      if (!action) throw new StanzaError('bad-request', 'an action is required');
      switch (action.localName) {
        case 'configure': {
          const node = nodeName(action);
          const config = await store.getNode(host, owner.local, node);
          if (!config) throw new StanzaError('item-not-found');
          return x('pubsub', { xmlns: NS.PUBSUB_OWNER }, x('configure', { node }, configForm(config, limits.maxItems)));
        }
        case 'default':
          return x('pubsub', { xmlns: NS.PUBSUB_OWNER }, x('default', null, configForm(defaults, limits.maxItems)));
        default:
          throw pubsubError('feature-not-implemented', 'unsupported', undefined, { feature: action.localName });
      }
    }

    ctx.hook('user-deleted', async (user) => {
      await store.removeUser(host, user.local);
      nodesChanged(user.toBare());
    });

    // ------------------------------------------------------------------ helpers

    function parseStored(item: StoredItem): XmlElement | null {
      try {
        return parseElement(item.payload);
      } catch (err) {
        ctx.log.warn({ err, item: item.id }, 'stored PEP item does not parse');
        return null;
      }
    }
  },
});

/** The node attribute of an action, checked. */
function nodeName(action: XmlElement): string {
  const node = action.attrs.node;
  if (node === undefined || node === '') throw pubsubError('bad-request', 'nodeid-required');
  if (node.length > MAX_NAME) throw new StanzaError('not-acceptable', `node names are at most ${MAX_NAME} characters`);
  return node;
}

/** A stanza error with a pubsub#errors application condition (XEP-0060 §7, §6). */
function pubsubError(condition: StanzaErrorCondition, app: string, text?: string, attrs?: Record<string, string>): StanzaError {
  return new StanzaError(condition, text, undefined, x(app, { xmlns: NS.PUBSUB_ERRORS, ...attrs }));
}

/** The payload with its namespace written on itself, so it serializes alone. */
function withOwnNamespace(payload: XmlElement): XmlElement {
  if ('xmlns' in payload.attrs || payload.name.includes(':')) return payload;
  const copy = payload.clone();
  copy.attrs = { xmlns: payload.ns, ...copy.attrs };
  return copy;
}
