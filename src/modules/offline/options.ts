/**
 * The `offline` section of the config file: this module's options, validated and documented
 * (`parley config docs`) like every other key.
 */
import { int, obj, type Infer } from '../../config/schema-dsl.js';
import type { ModuleOptions } from '../../core/module.js';

const schema = obj(
  {
    maxPerUser: int({ doc: 'most messages stored for one offline user; beyond it senders get resource-constraint', default: 1000, min: 0 }),
  },
  'offline message storage (XEP-0160)',
);

export type OfflineOptions = Infer<typeof schema>;

declare module '../../config/schema.js' {
  interface ModuleConfig {
    offline: OfflineOptions;
  }
}

export const options: ModuleOptions<OfflineOptions> = {
  key: 'offline',
  schema,
  live: ['maxPerUser'],
};
