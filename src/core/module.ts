/**
 * Modules: the unit of features (after Prosody). A module's `setup` only registers
 * things on its context: IQ handlers, hooks, disco features, services, HTTP routes,
 * timers. The host records every registration, so stopping a module needs no code in the
 * module.
 *
 * The context is the module's only door into the server ("narrow ports"): its options,
 * a storage handle for its store, a read-only view of sessions, routing, the policy
 * checks, limits and counters, disco, HTTP routes. A module never sees the server core,
 * and never imports another module: it asks for a service by name (`ctx.service`), whose
 * contract lives in the providing module's `api.ts` and is added to the core's typed
 * `Services` map by declaration merging.
 *
 * @example
 * export default defineModule({
 *   name: 'ping',
 *   setup(ctx) {
 *     ctx.addFeature(NS.PING);
 *     ctx.handleIq('get', NS.PING, 'ping', () => null); // null → empty result
 *   },
 * });
 */
import type { Logger } from 'pino';
import type { XmlElement } from '../xml/element.js';
import type { DiscoItemsProvider } from './disco.js';
import type { Jid } from '../xmpp/jid.js';
import type { HandlerHooks, NotifyHooks } from './hooks.js';
import type { Services } from './services.js';
import type { LocalSession } from './session.js';
import type { FilterPrepare, FilterVerdict, StanzaFilter } from './policy.js';
import type { IqHandler, IqScope, IqType, Identity } from './iq-types.js';
import type { MessageStage } from './message-stages.js';
import type { Storage } from '../storage/storage.js';
import type { ServerStats } from '../support/stats.js';
import type { LimitName } from '../support/stats.js';
import type { Field } from '../config/schema-dsl.js';
import type { Config } from '../config/schema.js';
import type { DiscoNodeHandler } from './disco.js';
import type { HttpRoute } from './http-routes.js';
import type { SchemaPart } from '../storage/migrations.js';
import type { HostHandler, HostTable } from './hosts.js';
import type { Router } from './router.js';
import type { SessionRegistry } from './registry.js';
import type { HookBus } from './hooks.js';
import type { IqDispatcher } from './iq.js';
import type { DiscoRegistry } from './disco.js';
import type { HttpRoutes } from './http-routes.js';
import type { Logs } from '../support/logger.js';
import type { AccountsPort } from './auth-port.js';

export type { IqType, IqScope, IqRequest, IqHandler, Identity } from './iq-types.js';
export type { HostHandler, HostScope } from './hosts.js';

/** A stream feature offered by a module, per session (RFC 6120 §4.3.2). */
export type StreamFeatureProvider = (session: LocalSession | null, stage: 'pre-bind' | 'post-bind') => XmlElement | null;

/** What a module sees of the sessions: lookups on every node, and two notices to the directory. */
export interface SessionView {
  /** The session bound to a full JID, on this node or another. */
  get(full: Jid): LocalSession | undefined;
  /** Every session of a user (available or not), on every node. */
  resources(bare: string): readonly LocalSession[];
  /** Sessions of a user that sent available presence, on every node. */
  available(bare: string): LocalSession[];
  /** A session's presence, priority or flags changed (the cluster publishes it). */
  changed(session: LocalSession): void;
  /** Publishes a session's state and resolves once the cluster's directory has it. */
  sync(session: LocalSession): Promise<void>;
}

/** The stanza policies (privacy, blocking, invisibility) as the router applies them: see policy.ts. */
export interface PolicyView {
  /** Null when the filters can judge stanzas of the local `user` now, else when they can. */
  prepare(user: Jid): Promise<void> | null;
  /** The recipient's policy on `stanza` reaching `to` (through `session`, or the account when null). */
  checkIn(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): FilterVerdict;
  /** The local sender's policy on `stanza` going to `to` (`session`: the sending resource, null: the server on its behalf). */
  checkOut(stanza: XmlElement, from: Jid, to: Jid, session: LocalSession | null): FilterVerdict;
}

/** The per-user and per-address limits a module enforces (docs/limits.md). */
export interface LimitsView {
  /** The configured values (`limits.*`). */
  readonly settings: Readonly<Config['limits']>;
  /** Counts a refusal by a limit (metrics, SNMP). */
  hit(name: LimitName): void;
  /** Takes one token of the user's presence rate; false when the rate is exceeded. */
  allowPresence(bare: string): boolean;
}

/** Local accounts (the user domain), as a module may ask about them. */
export interface AccountsView {
  /** Does the account exist in Parley's own store? */
  exists(username: string): Promise<boolean>;
  /** Makes the account known to Parley's store (a portal user seen for the first time); true when it was added. */
  ensure(username: string): Promise<boolean>;
}

export interface ModuleContext<O = undefined> {
  readonly name: string;
  readonly log: Logger;
  /** The user domain, and its JID (the server's own address). */
  readonly domain: string;
  readonly domainJid: Jid;
  /** The module's options: its config section (`options.key`), validated against its schema. */
  readonly options: O;
  /** The storage handle the module makes its store from (the factory in its store-sql.ts). */
  readonly storage: Storage;
  readonly sessions: SessionView;
  readonly accounts: AccountsView;
  readonly policy: PolicyView;
  readonly limits: LimitsView;
  /** Counters and histograms for /metrics and SNMP. */
  readonly stats: ServerStats;
  /** When the server started. */
  readonly startedAt: Date;
  /** Is the JID on the user domain? */
  isLocal(jid: Jid): boolean;
  /** Routes a stanza with known sender and recipient, as the server does for any stanza. */
  route(stanza: XmlElement, from: Jid, to: Jid, session?: LocalSession | null): void;
  /** Processes a stanza as if the session's client had sent it (policy, presence handling and routing). */
  sendAsClient(session: LocalSession, stanza: XmlElement, to: Jid | null): void;
  /**
   * Sends an IQ get or set from the server or on an account's behalf and resolves with
   * the reply (result or error); rejects on timeout (see Router.request).
   */
  request(iq: XmlElement, from: Jid, to: Jid, timeoutMs?: number): Promise<XmlElement>;
  /** Runs every handler of a notify hook. */
  notify<K extends keyof NotifyHooks>(name: K, ...args: Parameters<NotifyHooks[K]>): Promise<void>;
  /** Keeps track of background work until it settles (shutdown waits for it). */
  track<T>(p: Promise<T>): Promise<T>;
  /**
   * Tells the other nodes of a cluster that what they keep in memory under (topic, key)
   * changed; nothing happens on a single node.
   */
  invalidate(topic: string, key: string): void;
  /**
   * What to drop when another node says (topic, key) changed; `all`: when such messages
   * may have been missed. Removed when the module stops.
   */
  onInvalidate(topic: string, fn: (key: string) => void, all?: () => void): void;
  /** Announces a disco#info feature (XEP-0030) on the server or on accounts. */
  addFeature(ns: string, scope?: IqScope): void;
  addIdentity(identity: Identity, scope?: IqScope): void;
  /** Adds an extended-information form (XEP-0128, a `jabber:x:data` result) to disco#info. */
  addDiscoForm(form: XmlElement, scope?: IqScope): void;
  /** Lists items in disco#items (without a node) of the server or of each account. */
  addDiscoItems(provider: DiscoItemsProvider, scope?: IqScope): void;
  /** Answers disco#info and disco#items on a node (XEP-0030 §3.3) of the server or of each account. */
  addDiscoNode(node: string, scope: IqScope, handler: DiscoNodeHandler): void;
  /** What modules announce through disco (the disco module answers with it). */
  readonly disco: DiscoView;
  handleIq(type: IqType, ns: string, name: string, handler: IqHandler, opts?: { scope?: IqScope | 'both' }): void;
  hook<K extends keyof NotifyHooks>(name: K, fn: NotifyHooks[K], priority?: number): void;
  hook<K extends keyof HandlerHooks>(name: K, fn: HandlerHooks[K], priority?: number): void;
  provide<K extends keyof Services>(name: K, impl: Services[K]): void;
  /** A service another module provides; throws if none does (at call time, not setup). */
  service<K extends keyof Services>(name: K): Services[K];
  /** Is the service provided (its module loaded)? */
  hasService(name: keyof Services): boolean;
  addStreamFeature(provider: StreamFeatureProvider): void;
  /** Adds a stanza policy (privacy, blocking, invisibility): see PolicyView. */
  addFilter(direction: 'in' | 'out', filter: StanzaFilter, prepare?: FilterPrepare): void;
  /** Acts on one-to-one messages where their fate is fixed (archive, carbons): see message-stages.ts. */
  addMessageStage(stage: MessageStage): void;
  /**
   * Serves HTTP requests whose path starts with `prefix` on the HTTP listener (after the
   * core's own routes). `prefix` must start with `/` and not be a path of the core
   * (BOSH, WebSocket, the APIs); two modules may not share one.
   */
  addHttpRoute(prefix: string, handler: HttpRoute): void;
  /**
   * Serves a host of its own (`conference.<domain>`, an echo service): every stanza for
   * the host and its JIDs reaches `handler` (see HostHandler), IQ get/set to the host
   * itself go to the handlers registered with the scope `{ host: name }`, and the host
   * is listed in the user domain's disco#items. Throws HostError when the name is the
   * user domain, not a DNS name, or served already (by a module or a component).
   */
  addHost(name: string, handler: HostHandler): void;
  /** Runs `fn` every `ms` until the module stops. */
  every(ms: number, fn: () => void | Promise<void>): void;
  /** Runs when the module stops (after the core removed its registrations). */
  onStop(fn: () => void | Promise<void>): void;
}

/** What the disco registry holds, read-only, for the module that answers disco queries. */
export interface DiscoView {
  features(scope: IqScope): Iterable<string>;
  identities(scope: IqScope): readonly Identity[];
  forms(scope: IqScope): readonly XmlElement[];
  itemProviders(scope: IqScope): readonly DiscoItemsProvider[];
  node(node: string, scope: IqScope): DiscoNodeHandler | undefined;
}

/** A module's config section: its key at the top of the config file and its schema (config/schema-dsl.ts). */
export interface ModuleOptions<O> {
  readonly key: string;
  readonly schema: Field<O>;
  /** Rules across the section's keys; throws ConfigError naming the key. */
  check?(value: O, key: string): void;
  /** Keys of the section (relative to it) that a reload applies to the running server. */
  readonly live?: readonly string[];
}

export interface ModuleDefinition<O = undefined> {
  name: string;
  /** Its config keys; `ctx.options` is the parsed section. */
  options?: ModuleOptions<O>;
  /**
   * The module's tables: migrations and per-user tables (its `schema.ts`). The composition
   * root hands every module's part to the storage opener (`MODULE_SCHEMAS`).
   */
  schema?: SchemaPart;
  setup(ctx: ModuleContext<O>): void | Promise<void>;
}

/** A module of any options type, as the module list holds them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a list of modules with different options types: each is checked where it is defined
export type AnyModule = ModuleDefinition<any>;

export function defineModule<O = undefined>(def: ModuleDefinition<O>): ModuleDefinition<O> {
  return def;
}

interface Loaded {
  def: AnyModule;
  undo: Array<() => void>;
  stops: Array<() => void | Promise<void>>;
}

/**
 * What the module host uses of the server core to build the modules' contexts (the core
 * is one; declared here so that this file does not import the server).
 */
export interface ModuleHostCore {
  readonly config: Config;
  readonly domain: string;
  readonly log: Logger;
  readonly logs: Logs;
  readonly storage: Storage;
  readonly users: AccountsPort;
  readonly sessions: SessionRegistry;
  readonly router: Router;
  readonly hooks: HookBus;
  readonly iq: IqDispatcher;
  readonly disco: DiscoRegistry;
  readonly hosts: HostTable;
  readonly limits: { hit(name: LimitName): void; allowPresence(bare: string): boolean };
  readonly stats: ServerStats;
  readonly startedAt: Date;
  readonly streamFeatures: StreamFeatureProvider[];
  readonly httpRoutes: HttpRoutes;
  track<T>(p: Promise<T>): Promise<T>;
  invalidate(topic: string, key: string): void;
  onInvalidate(topic: string, fn: (key: string) => void, all?: () => void): () => void;
  provideService<K extends keyof Services>(name: K, impl: Services[K]): () => void;
  service<K extends keyof Services>(name: K): Services[K];
  hasService(name: keyof Services): boolean;
}

/** Loads modules and tears them down. Owned by the server core. */
export class ModuleHost {
  readonly #core: ModuleHostCore;
  readonly #loaded: Loaded[] = [];

  constructor(core: ModuleHostCore) {
    this.#core = core;
  }

  get names(): string[] {
    return this.#loaded.map((l) => l.def.name);
  }

  async load(def: AnyModule, timeoutMs = 10_000): Promise<void> {
    if (this.#loaded.some((l) => l.def.name === def.name)) throw new Error(`module ${def.name} is already loaded`);
    const loaded: Loaded = { def, undo: [], stops: [] };
    const ctx = this.#context(def, loaded);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve(def.setup(ctx)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`module ${def.name} did not finish loading within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      for (const u of loaded.undo.reverse()) u();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    this.#loaded.push(loaded);
  }

  /** The module's options: its section of the config (the full schema holds it), else the schema's default. */
  static optionsOf(config: Config, def: AnyModule): unknown {
    if (!def.options) return undefined;
    const section = (config as unknown as Record<string, unknown>)[def.options.key];
    return section ?? def.options.schema.default;
  }

  #context(def: AnyModule, loaded: Loaded): ModuleContext<unknown> {
    const core = this.#core;
    const router = core.router;
    const log = core.logs.for(def.name);
    const undo = (u: () => void) => loaded.undo.push(u);
    const sessions = core.sessions;
    const limits = core.limits;
    return {
      name: def.name,
      log,
      domain: core.domain,
      domainJid: router.domainJid,
      options: ModuleHost.optionsOf(core.config, def),
      storage: core.storage,
      sessions: {
        get: (full) => sessions.get(full),
        resources: (bare) => sessions.resources(bare),
        available: (bare) => sessions.available(bare),
        changed: (s) => sessions.changed(s),
        sync: (s) => sessions.sync(s),
      },
      accounts: {
        exists: (username) => core.users.exists(core.domain, username),
        ensure: (username) => core.users.ensure(core.domain, username),
      },
      policy: {
        prepare: (user) => router.prepare(user),
        checkIn: (stanza, from, to, session) => router.checkIn(stanza, from, to, session),
        checkOut: (stanza, from, to, session) => router.checkOut(stanza, from, to, session),
      },
      limits: {
        settings: core.config.limits,
        hit: (name) => limits.hit(name),
        allowPresence: (bare) => limits.allowPresence(bare),
      },
      stats: core.stats,
      startedAt: core.startedAt,
      isLocal: (jid) => router.isLocal(jid),
      route: (stanza, from, to, session) => router.route(stanza, from, to, session ?? null),
      sendAsClient: (session, stanza, to) => router.fromClient(session, stanza, to),
      request: (iq, from, to, timeoutMs) => router.request(iq, from, to, timeoutMs),
      notify: (name, ...args) => core.hooks.notify(name, ...args),
      track: (p) => core.track(p),
      invalidate: (topic, key) => core.invalidate(topic, key),
      onInvalidate(topic, fn, all) {
        undo(core.onInvalidate(topic, fn, all));
      },
      addFeature(ns, scope = 'host') {
        undo(core.disco.addFeature(ns, scope));
      },
      addIdentity(identity, scope = 'host') {
        undo(core.disco.addIdentity(identity, scope));
      },
      addDiscoForm(form, scope = 'host') {
        undo(core.disco.addForm(form, scope));
      },
      addDiscoItems(provider, scope = 'host') {
        undo(core.disco.addItems(provider, scope));
      },
      addDiscoNode(node, scope, handler) {
        undo(core.disco.addNode(node, scope, handler));
      },
      disco: core.disco,
      handleIq(type, ns, name, handler, opts) {
        const scope = opts?.scope ?? 'host';
        const scopes: IqScope[] = scope === 'both' ? ['host', 'account'] : [scope];
        for (const s of scopes) undo(core.iq.register(type, s, ns, name, handler, def.name));
      },
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the untyped implementation behind the typed `hook` overloads
      hook(name: string, fn: (...args: any[]) => any, priority?: number) {
        undo(core.hooks.on(name as keyof NotifyHooks, fn, { priority: priority ?? 0, owner: def.name }));
      },
      provide(name, impl) {
        undo(core.provideService(name, impl));
      },
      service: (name) => core.service(name),
      hasService: (name) => core.hasService(name),
      addStreamFeature(provider) {
        core.streamFeatures.push(provider);
        undo(() => {
          const i = core.streamFeatures.indexOf(provider);
          if (i >= 0) core.streamFeatures.splice(i, 1);
        });
      },
      addFilter(direction, filter, prepare) {
        undo(router.addFilter(direction, filter, prepare));
      },
      addMessageStage(stage) {
        undo(router.stages.add(stage));
      },
      addHost(name, handler) {
        undo(core.hosts.add({ host: name, kind: 'module', owner: def.name, name: handler.name, deliver: (stanza, from, to) => handler.onStanza(stanza, from, to) }));
      },
      addHttpRoute(prefix, handler) {
        undo(core.httpRoutes.add(prefix, handler, def.name));
      },
      every(ms, fn) {
        const t = setInterval(() => {
          Promise.resolve()
            .then(fn)
            .catch((err: unknown) => log.error({ err }, 'timer failed'));
        }, ms);
        t.unref();
        undo(() => clearInterval(t));
      },
      onStop(fn) {
        loaded.stops.push(fn);
      },
    };
  }

  /** Stops every module, last loaded first. */
  async stopAll(): Promise<void> {
    while (this.#loaded.length > 0) {
      const l = this.#loaded.pop()!;
      for (const u of l.undo.reverse()) u();
      for (const s of l.stops) {
        try {
          await s();
        } catch (err) {
          this.#core.log.error({ err, module: l.def.name }, 'module stop failed');
        }
      }
    }
  }
}
