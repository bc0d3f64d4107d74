/**
 * The `vcard` section of the config file: this module's options, validated and documented
 * (`parley config docs`) like every other key.
 */
import { obj, size, type Infer } from '../../config/schema-dsl.js';
import type { ModuleOptions } from '../../core/module.js';

const schema = obj(
  {
    maxSize: size({ doc: 'largest vCard (XEP-0054) a user may store, in bytes as serialized; larger ones get not-acceptable', default: '64KiB', min: 1024 }),
  },
  'vCards (XEP-0054) and avatar hashes in presence (XEP-0153)',
);

export type VcardOptions = Infer<typeof schema>;

declare module '../../config/schema.js' {
  interface ModuleConfig {
    vcard: VcardOptions;
  }
}

export const options: ModuleOptions<VcardOptions> = {
  key: 'vcard',
  schema,
};
