/**
 * Modules: the unit of features (after Prosody). A module's `setup` only registers
 * things on its context: IQ handlers, hooks, disco features, services, timers. The host
 * records every registration, so stopping a module needs no code in the module.
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
import type { ServerCore } from './server.js';
import type { FilterPrepare, StanzaFilter } from './router.js';
import type { MessageStage } from './message-stages.js';
import type { HostHandler, HostScope } from './hosts.js';

export type IqType = 'get' | 'set';
/**
 * `host`: IQs to the server's domain; `account`: IQs to a user's bare JID (or with no
 * `to`); `{ host }`: IQs to a host a module serves (`ctx.addHost`), `{ host: '*' }`: to
 * every such host (see HostScope).
 */
export type IqScope = 'host' | 'account' | HostScope;
export type { HostHandler, HostScope } from './hosts.js';

export interface IqRequest {
  stanza: XmlElement;
  type: IqType;
  /** The one child element of the IQ. */
  payload: XmlElement;
  from: Jid;
  /** The addressed entity: the domain (host scope) or a bare JID (account scope). */
  to: Jid;
  /** The sender addressed its own account. */
  isSelf: boolean;
  /** The local session the IQ came from, when it came from one. */
  session: LocalSession | null;
}

/** Returns the result payload, null for an empty result, or throws StanzaError. */
export type IqHandler = (req: IqRequest) => XmlElement | null | Promise<XmlElement | null>;

export interface Identity {
  category: string;
  type: string;
  name?: string;
}

/** A stream feature offered by a module, per session (RFC 6120 §4.3.2). */
export type StreamFeatureProvider = (session: LocalSession | null, stage: 'pre-bind' | 'post-bind') => XmlElement | null;

export interface ModuleContext {
  readonly name: string;
  readonly server: ServerCore;
  readonly log: Logger;
  /** Announces a disco#info feature (RFC XEP-0030) on the server or on accounts. */
  addFeature(ns: string, scope?: IqScope): void;
  addIdentity(identity: Identity, scope?: IqScope): void;
  /** Adds an extended-information form (XEP-0128, a `jabber:x:data` result) to disco#info. */
  addDiscoForm(form: XmlElement, scope?: IqScope): void;
  /** Lists items in disco#items (without a node) of the server or of each account. */
  addDiscoItems(provider: DiscoItemsProvider, scope?: IqScope): void;
  handleIq(type: IqType, ns: string, name: string, handler: IqHandler, opts?: { scope?: IqScope | 'both' }): void;
  hook<K extends keyof NotifyHooks>(name: K, fn: NotifyHooks[K], priority?: number): void;
  hook<K extends keyof HandlerHooks>(name: K, fn: HandlerHooks[K], priority?: number): void;
  provide<K extends keyof Services>(name: K, impl: Services[K]): void;
  /** A service another module provides; throws if none does (at call time, not setup). */
  service<K extends keyof Services>(name: K): Services[K];
  addStreamFeature(provider: StreamFeatureProvider): void;
  /** Adds a stanza policy (privacy, blocking, invisibility): see Router.checkIn/checkOut. */
  addFilter(direction: 'in' | 'out', filter: StanzaFilter, prepare?: FilterPrepare): void;
  /** Acts on one-to-one messages where their fate is fixed (archive, carbons): see message-stages.ts. */
  addMessageStage(stage: MessageStage): void;
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

export interface ModuleDefinition {
  name: string;
  setup(ctx: ModuleContext): void | Promise<void>;
}

export function defineModule(def: ModuleDefinition): ModuleDefinition {
  return def;
}

interface Loaded {
  def: ModuleDefinition;
  undo: Array<() => void>;
  stops: Array<() => void | Promise<void>>;
}

/** Loads modules and tears them down. Owned by the server core. */
export class ModuleHost {
  readonly #core: ServerCore;
  readonly #loaded: Loaded[] = [];

  constructor(core: ServerCore) {
    this.#core = core;
  }

  get names(): string[] {
    return this.#loaded.map((l) => l.def.name);
  }

  async load(def: ModuleDefinition, timeoutMs = 10_000): Promise<void> {
    if (this.#loaded.some((l) => l.def.name === def.name)) throw new Error(`module ${def.name} is already loaded`);
    const core = this.#core;
    const loaded: Loaded = { def, undo: [], stops: [] };
    const log = core.logs.for(def.name);
    const ctx: ModuleContext = {
      name: def.name,
      server: core,
      log,
      addFeature(ns, scope = 'host') {
        loaded.undo.push(core.disco.addFeature(ns, scope));
      },
      addIdentity(identity, scope = 'host') {
        loaded.undo.push(core.disco.addIdentity(identity, scope));
      },
      addDiscoForm(form, scope = 'host') {
        loaded.undo.push(core.disco.addForm(form, scope));
      },
      addDiscoItems(provider, scope = 'host') {
        loaded.undo.push(core.disco.addItems(provider, scope));
      },
      handleIq(type, ns, name, handler, opts) {
        const scope = opts?.scope ?? 'host';
        const scopes: IqScope[] = scope === 'both' ? ['host', 'account'] : [scope];
        for (const s of scopes) loaded.undo.push(core.iq.register(type, s, ns, name, handler, def.name));
      },
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the untyped implementation behind the typed `hook` overloads
      hook(name: string, fn: (...args: any[]) => any, priority?: number) {
        loaded.undo.push(core.hooks.on(name as keyof NotifyHooks, fn, { priority: priority ?? 0, owner: def.name }));
      },
      provide(name, impl) {
        loaded.undo.push(core.provideService(name, impl));
      },
      service(name) {
        return core.service(name);
      },
      addStreamFeature(provider) {
        core.streamFeatures.push(provider);
        loaded.undo.push(() => {
          const i = core.streamFeatures.indexOf(provider);
          if (i >= 0) core.streamFeatures.splice(i, 1);
        });
      },
      addFilter(direction, filter, prepare) {
        loaded.undo.push(core.router.addFilter(direction, filter, prepare));
      },
      addMessageStage(stage) {
        loaded.undo.push(core.router.stages.add(stage));
      },
      addHost(name, handler) {
        loaded.undo.push(core.hosts.add({ host: name, kind: 'module', owner: def.name, name: handler.name, deliver: (stanza, from, to) => handler.onStanza(stanza, from, to) }));
      },
      every(ms, fn) {
        const t = setInterval(() => {
          Promise.resolve()
            .then(fn)
            .catch((err: unknown) => log.error({ err }, 'timer failed'));
        }, ms);
        t.unref();
        loaded.undo.push(() => clearInterval(t));
      },
      onStop(fn) {
        loaded.stops.push(fn);
      },
    };
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
