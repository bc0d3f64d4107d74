/**
 * The server core: configuration, hooks, IQ dispatch, the router, the session registry,
 * services and modules. Listeners and transports are attached by the composition root
 * (`src/main.ts`), since they depend on the core and not the other way round.
 */
import type { Logger } from 'pino';
import { Logs } from '../support/logger.js';
import type { Config } from '../config/schema.js';
import type { StreamError } from '../xmpp/errors.js';
import type { Storage } from '../storage/storage.js';
import { DiscoRegistry } from './disco.js';
import { HookBus } from './hooks.js';
import { IqDispatcher } from './iq.js';
import { ModuleHost, type AnyModule, type StreamFeatureProvider } from './module.js';
import { SessionRegistry } from './registry.js';
import { Router } from './router.js';
import type { Delivery } from './delivery.js';
import { HttpRoutes } from './http-routes.js';
import { HostTable } from './hosts.js';
import { ComponentHub } from './components.js';
import type { Services } from './services.js';
import type { TlsIdentity } from '../support/tls.js';
import { ServerStats } from '../support/stats.js';
import { Limits } from './limits.js';
import type { AccountsPort, AuthPort } from './auth-port.js';
import { SingleNode, type ClusterPort } from './cluster-port.js';

/** The cluster port (core/cluster-port.ts), by its older name. */
export type ClusterView = ClusterPort;

/** What the core is built from; `U`: the account store, as its maker knows it. */
export interface ServerCoreDeps<U extends AccountsPort = AccountsPort> {
  config: Config;
  /** A logger; its level is the default of the per-part loggers made from it. */
  log: Logger;
  /** The per-part loggers (levels per module, changed by reloads); made from `log` when absent. */
  logs?: Logs;
  storage: Storage;
  users: U;
  /** Makes this node's cluster part (the Redis cluster); default: a single node. */
  cluster?: (core: ServerCore) => ClusterPort;
  tls: TlsIdentity;
  /** Where credentials are checked: built by the composition root with its password sources (src/auth). */
  authenticator: AuthPort;
}

/**
 * The server core. `U` is the account store as the composition root knows it (auth's
 * `UserStore`); the core itself and the modules use only its `AccountsPort` side.
 */
export class ServerCore<U extends AccountsPort = AccountsPort> {
  readonly config: Config;
  /** The core's logger (`module: core`); parts take theirs from `logs.for(name)`. */
  readonly log: Logger;
  readonly logs: Logs;
  readonly storage: Storage;
  readonly users: U;
  readonly tls: TlsIdentity;
  readonly hooks: HookBus;
  readonly iq: IqDispatcher;
  readonly disco = new DiscoRegistry();
  readonly sessions = new SessionRegistry();
  /** Every client connection, bound or not, until its connection is gone (shutdown waits on it). */
  readonly connections = new Set<{ close(error?: StreamError): void }>();
  readonly router: Router;
  /** Where domains other than the user domain go: module hosts, external components. */
  readonly hosts: HostTable;
  /** External components (XEP-0114): the configured hosts and their connections to this node. */
  readonly components: ComponentHub;
  readonly modules: ModuleHost;
  readonly streamFeatures: StreamFeatureProvider[] = [];
  /** HTTP routes modules serve (ctx.addHttpRoute); the HTTP listener asks `httpRoutes.route`. */
  readonly httpRoutes = new HttpRoutes();
  readonly startedAt = new Date();
  /** Counters and histograms for /metrics and SNMP (src/ops). */
  readonly stats = new ServerStats();
  /** Per-user and per-address limits (src/core/limits.ts, docs/limits.md). */
  readonly limits: Limits;
  /** This node's cluster: a single node unless `cluster.driver` is redis (deps.cluster). */
  readonly cluster: ClusterPort;
  /** Shutting down: health says not ready, no new sessions. */
  draining = false;
  /** Checks SASL credentials (own store, login tokens, a password source): the port of `./auth-port.ts`. */
  readonly authenticator: AuthPort;
  /** Work started for stanzas and sessions that shutdown must wait for (offline hand-off). */
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #services = new Map<string, unknown>();
  readonly #invalidations = new Map<string, Array<(key: string) => void>>();
  readonly #invalidateAll = new Set<() => void>();

  constructor(deps: ServerCoreDeps<U>) {
    this.config = deps.config;
    this.logs = deps.logs ?? new Logs(deps.log, { level: deps.log.level as Logs['settings']['level'], modules: deps.config.log.modules, sensitive: deps.config.log.sensitive });
    this.log = this.logs.root;
    this.storage = deps.storage;
    this.users = deps.users;
    this.tls = deps.tls;
    this.limits = new Limits(deps.config, this.stats);
    this.limits.start();
    this.authenticator = deps.authenticator;
    this.hooks = new HookBus(this.log);
    this.iq = new IqDispatcher(this.logs.for('router'));
    this.hosts = new HostTable(deps.config.domain);
    this.router = new Router({
      domain: deps.config.domain,
      hosts: this.hosts,
      log: this.logs.for('router'),
      hooks: this.hooks,
      iq: this.iq,
      sessions: this.sessions,
      userExists: (username) => this.authenticator.userExists(username),
      track: (p) => this.track(p),
      stats: this.stats,
    });
    this.components = new ComponentHub({ hosts: this.hosts, routing: this.router, stats: this.stats, log: this.logs.for('component'), components: deps.config.components });
    // XEP-0030 §4.1: the domain's disco#items lists the hosted services (module hosts, components).
    this.disco.addItems(() => this.hosts.discoItems(), 'host');
    this.modules = new ModuleHost(this);
    // Nothing is lost: what a gone session did not deliver is routed again (to another
    // resource, or offline storage), after the modules' handlers of the hook started.
    this.cluster = deps.cluster ? deps.cluster(this) : new SingleNode(deps.config.cluster.nodeId ?? 'local');
    this.router.attachCluster(this.cluster);
    this.hooks.on('session-closed', (session, { undelivered }) => this.delivery.sessionGone(session, undelivered, this.router.domainJid), { priority: -1000, owner: 'core' });
  }

  get domain(): string {
    return this.config.domain;
  }

  /** The owner of every stanza's fate (core/delivery.ts). */
  get delivery(): Delivery {
    return this.router.delivery;
  }

  async loadModules(defs: readonly AnyModule[]): Promise<void> {
    for (const def of defs) await this.modules.load(def);
  }

  provideService<K extends keyof Services>(name: K, impl: Services[K]): () => void {
    if (this.#services.has(name)) throw new Error(`service ${name} is already provided`);
    this.#services.set(name, impl);
    return () => {
      if (this.#services.get(name) === impl) this.#services.delete(name);
    };
  }

  service<K extends keyof Services>(name: K): Services[K] {
    const s = this.#services.get(name);
    if (!s) throw new Error(`no module provides the ${name} service`);
    return s as Services[K];
  }

  /** Keeps track of background work until it settles. */
  track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Waits for tracked work, including work it starts, up to `timeoutMs`. */
  async settle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inflight.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await Promise.race([Promise.allSettled([...this.#inflight]), new Promise((r) => setTimeout(r, left).unref())]);
    }
    return true;
  }

  /**
   * A module changed data that modules keep in memory (privacy lists, archive
   * preferences, avatar hashes, PEP node lists): in a cluster the other nodes drop their
   * copy of (topic, key) and read it again when needed. Nothing happens on a single node.
   */
  invalidate(topic: string, key: string): void {
    this.cluster.invalidate(topic, key);
  }

  /**
   * What to drop when another node says (topic, key) changed; `all`: what to drop when
   * such messages may have been missed (the cluster's Redis connection dropped): a cache
   * drops everything it holds for the topic.
   */
  onInvalidate(topic: string, fn: (key: string) => void, all?: () => void): () => void {
    let list = this.#invalidations.get(topic);
    if (!list) this.#invalidations.set(topic, (list = []));
    list.push(fn);
    if (all) this.#invalidateAll.add(all);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
      if (all) this.#invalidateAll.delete(all);
    };
  }

  /** Invalidations may have been missed (the cluster calls this after its Redis connection came back). */
  invalidatedAll(): void {
    for (const fn of this.#invalidateAll) {
      try {
        fn();
      } catch (err) {
        this.log.error({ err }, 'invalidation handler failed');
      }
    }
  }

  /** Another node changed (topic, key) (the cluster calls this). */
  invalidated(topic: string, key: string): void {
    for (const fn of this.#invalidations.get(topic) ?? []) {
      try {
        fn(key);
      } catch (err) {
        this.log.error({ err, topic }, 'invalidation handler failed');
      }
    }
  }

  hasService(name: keyof Services): boolean {
    return this.#services.has(name);
  }
}
