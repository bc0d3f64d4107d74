/**
 * The `mam` section of the config file: this module's options, validated and documented
 * (`parley config docs`) like every other key.
 */
import { bool, duration, int, obj, oneOf, type Infer } from '../../config/schema-dsl.js';
import type { ModuleOptions } from '../../core/module.js';

const schema = obj(
  {
    enabled: bool({ doc: 'archive one-to-one messages and answer archive queries (XEP-0313); false turns the archive off for everyone', default: true }),
    default: oneOf(['always', 'roster', 'never'] as const, {
      doc: 'what is archived for a user who set no preference: every message, messages with roster contacts, or none',
      default: 'always',
    }),
    retention: duration({ doc: 'archived messages older than this are deleted; 0 keeps them for ever', default: '365d' }),
    sweepInterval: duration({ doc: 'how often expired archived messages are deleted', default: '1h', min: '50ms' }),
    maxPageSize: int({ doc: 'most messages returned in one page of a query (also the page size when the client names none)', default: 50, min: 1, max: 1000 }),
  },
  'message archive (XEP-0313)',
);

export type MamOptions = Infer<typeof schema>;

declare module '../../config/schema.js' {
  interface ModuleConfig {
    mam: MamOptions;
  }
}

export const options: ModuleOptions<MamOptions> = {
  key: 'mam',
  schema,
};
