/**
 * What the server and its accounts announce through service discovery (XEP-0030) and
 * entity capabilities: features and identities registered by modules.
 */
import type { XmlElement } from '../xml/element.js';
import type { Identity, IqRequest, IqScope } from './module.js';

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

export class DiscoRegistry {
  readonly #features: Record<IqScope, Map<string, number>> = { host: new Map(), account: new Map() };
  readonly #identities: Record<IqScope, Identity[]> = { host: [], account: [] };
  readonly #nodes: Record<IqScope, Map<string, DiscoNodeHandler>> = { host: new Map(), account: new Map() };
  readonly #forms: Record<IqScope, XmlElement[]> = { host: [], account: [] };
  readonly #items: Record<IqScope, DiscoItemsProvider[]> = { host: [], account: [] };

  /** Answers disco#info and disco#items on `node` (of the server or of each account); returns its removal. */
  addNode(node: string, scope: IqScope, handler: DiscoNodeHandler): () => void {
    const m = this.#nodes[scope];
    if (m.has(node)) throw new Error(`disco node ${node} is already handled`);
    m.set(node, handler);
    return () => {
      if (m.get(node) === handler) m.delete(node);
    };
  }

  node(node: string, scope: IqScope): DiscoNodeHandler | undefined {
    return this.#nodes[scope].get(node);
  }

  addFeature(ns: string, scope: IqScope): () => void {
    const m = this.#features[scope];
    m.set(ns, (m.get(ns) ?? 0) + 1);
    return () => {
      const n = (m.get(ns) ?? 1) - 1;
      if (n <= 0) m.delete(ns);
      else m.set(ns, n);
    };
  }

  addIdentity(identity: Identity, scope: IqScope): () => void {
    this.#identities[scope].push(identity);
    return () => {
      const list = this.#identities[scope];
      const i = list.indexOf(identity);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Adds an extended-information data form (XEP-0128) to disco#info; returns its removal. */
  addForm(form: XmlElement, scope: IqScope): () => void {
    this.#forms[scope].push(form);
    return () => {
      const list = this.#forms[scope];
      const i = list.indexOf(form);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Adds `<item/>`s to disco#items (without a node); returns its removal. */
  addItems(provider: DiscoItemsProvider, scope: IqScope): () => void {
    this.#items[scope].push(provider);
    return () => {
      const list = this.#items[scope];
      const i = list.indexOf(provider);
      if (i >= 0) list.splice(i, 1);
    };
  }

  itemProviders(scope: IqScope): DiscoItemsProvider[] {
    return [...this.#items[scope]];
  }

  forms(scope: IqScope): XmlElement[] {
    return [...this.#forms[scope]];
  }

  features(scope: IqScope): string[] {
    return [...this.#features[scope].keys()].sort();
  }

  identities(scope: IqScope): Identity[] {
    return [...this.#identities[scope]];
  }
}
