/**
 * The `pep` section of the config file: this module's options, validated and documented
 * (`parley config docs`) like every other key.
 */
import { int, obj, size, type Infer } from '../../config/schema-dsl.js';
import type { ModuleOptions } from '../../core/module.js';

const schema = obj(
  {
    maxNodes: int({ doc: 'most PEP nodes one account may have; beyond it a new node gets not-allowed (max-nodes-exceeded)', default: 128, min: 1 }),
    maxItems: int({ doc: 'most items one PEP node keeps (its pubsub#max_items may not exceed it; "max" means this)', default: 256, min: 1 }),
    defaultMaxItems: int({ doc: 'pubsub#max_items of a node created without one', default: 20, min: 1 }),
    maxItemsPerAccount: int({ doc: 'most PEP items one account stores over all its nodes; a publish past it gets resource-constraint (wait) and nothing is stored', default: 1000, min: 1 }),
    maxBytesPerAccount: size({ doc: 'most bytes of PEP item payloads one account stores over all its nodes; a publish past it gets resource-constraint (wait) and nothing is stored', default: '1MiB', min: 1024 }),
    capsCache: int({ doc: 'entity capabilities (XEP-0115) hashes remembered, to know which clients want which notifications', default: 10_000, min: 16 }),
  },
  'personal eventing (XEP-0163): avatars (XEP-0084), nicknames, OMEMO keys, ...',
);

export type PepOptions = Infer<typeof schema>;

declare module '../../config/schema.js' {
  interface ModuleConfig {
    pep: PepOptions;
  }
}

export const options: ModuleOptions<PepOptions> = {
  key: 'pep',
  schema,
};
