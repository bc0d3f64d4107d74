/**
 * What the server and its accounts announce through service discovery (XEP-0030) and
 * entity capabilities: features and identities registered by modules.
 */
import type { Identity, IqScope } from './module.js';

export class DiscoRegistry {
  readonly #features: Record<IqScope, Map<string, number>> = { host: new Map(), account: new Map() };
  readonly #identities: Record<IqScope, Identity[]> = { host: [], account: [] };

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

  features(scope: IqScope): string[] {
    return [...this.#features[scope].keys()].sort();
  }

  identities(scope: IqScope): Identity[] {
    return [...this.#identities[scope]];
  }
}
