/**
 * What the server, its accounts and the hosts modules serve announce through service
 * discovery (XEP-0030) and entity capabilities: features and identities registered by
 * modules.
 */
import type { XmlElement } from '../xml/element.js';
import type { Identity, IqRequest, IqScope } from './iq-types.js';
import { ANY_HOST, scopeKey, type HostScope } from './hosts.js';

/**
 * A disco node (XEP-0030 §3.3, §4.2) answered by a module: it returns the whole
 * `<query/>` (with its `node` attribute) or throws StanzaError.
 */
export interface DiscoNodeHandler {
  info(req: IqRequest): XmlElement | Promise<XmlElement>;
  items(req: IqRequest): XmlElement | Promise<XmlElement>;
}

/** Items a module lists in disco#items of the server or of an account (no node; XEP-0030 §4.1). */
export type DiscoItemsProvider = (req: IqRequest) => XmlElement[] | Promise<XmlElement[]>;

/** Per-scope lists, keyed by scopeKey (host scopes are made on first use). */
class PerScope<T> {
  readonly #m = new Map<string, T>();
  constructor(readonly make: () => T) {}
  of(scope: IqScope): T {
    const k = scopeKey(scope);
    let v = this.#m.get(k);
    if (v === undefined) this.#m.set(k, (v = this.make()));
    return v;
  }
  peek(scope: IqScope): T | undefined {
    return this.#m.get(scopeKey(scope));
  }
}

/**
 * Registrations per scope: the server (`host`), each account (`account`), and the hosts
 * modules serve (`{ host }`). What is registered for `{ host: '*' }` (ANY_HOST) is part
 * of every module host's answers (features, identities, forms, items), after its own;
 * a node of its own goes before a wildcard one.
 */
export class DiscoRegistry {
  readonly #features = new PerScope(() => new Map<string, number>());
  readonly #identities = new PerScope((): Identity[] => []);
  readonly #nodes = new PerScope(() => new Map<string, DiscoNodeHandler>());
  readonly #forms = new PerScope((): XmlElement[] => []);
  readonly #items = new PerScope((): DiscoItemsProvider[] => []);

  /** Answers disco#info and disco#items on `node` (of the server or of each account); returns its removal. */
  addNode(node: string, scope: IqScope, handler: DiscoNodeHandler): () => void {
    const m = this.#nodes.of(scope);
    if (m.has(node)) throw new Error(`disco node ${node} is already handled`);
    m.set(node, handler);
    return () => {
      if (m.get(node) === handler) m.delete(node);
    };
  }

  node(node: string, scope: IqScope): DiscoNodeHandler | undefined {
    return this.#nodes.peek(scope)?.get(node) ?? (isHost(scope) ? this.#nodes.peek(ANY)?.get(node) : undefined);
  }

  addFeature(ns: string, scope: IqScope): () => void {
    const m = this.#features.of(scope);
    m.set(ns, (m.get(ns) ?? 0) + 1);
    return () => {
      const n = (m.get(ns) ?? 1) - 1;
      if (n <= 0) m.delete(ns);
      else m.set(ns, n);
    };
  }

  addIdentity(identity: Identity, scope: IqScope): () => void {
    const list = this.#identities.of(scope);
    list.push(identity);
    return () => {
      const i = list.indexOf(identity);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Adds an extended-information data form (XEP-0128) to disco#info; returns its removal. */
  addForm(form: XmlElement, scope: IqScope): () => void {
    const list = this.#forms.of(scope);
    list.push(form);
    return () => {
      const i = list.indexOf(form);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Adds `<item/>`s to disco#items (without a node); returns its removal. */
  addItems(provider: DiscoItemsProvider, scope: IqScope): () => void {
    const list = this.#items.of(scope);
    list.push(provider);
    return () => {
      const i = list.indexOf(provider);
      if (i >= 0) list.splice(i, 1);
    };
  }

  itemProviders(scope: IqScope): DiscoItemsProvider[] {
    return this.#withAny(scope, (s) => this.#items.peek(s));
  }

  forms(scope: IqScope): XmlElement[] {
    return this.#withAny(scope, (s) => this.#forms.peek(s));
  }

  features(scope: IqScope): string[] {
    const own = [...(this.#features.peek(scope)?.keys() ?? [])];
    if (isHost(scope)) for (const f of this.#features.peek(ANY)?.keys() ?? []) if (!own.includes(f)) own.push(f);
    return own.sort();
  }

  identities(scope: IqScope): Identity[] {
    return this.#withAny(scope, (s) => this.#identities.peek(s));
  }

  /** The scope's own list, then (for a module host) the wildcard's. */
  #withAny<T>(scope: IqScope, read: (s: IqScope) => readonly T[] | undefined): T[] {
    const own = [...(read(scope) ?? [])];
    if (isHost(scope)) own.push(...(read(ANY) ?? []));
    return own;
  }
}

const ANY: HostScope = { host: ANY_HOST };

/** A module host's own scope (not the wildcard, not the server or accounts). */
function isHost(scope: IqScope): scope is HostScope {
  return typeof scope !== 'string' && scope.host !== ANY_HOST;
}
