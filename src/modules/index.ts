/**
 * The module list: every feature module the server loads, in load order. Adding a
 * feature is one folder under `src/modules/` and one line here (docs/architecture.md).
 * Order matters only where a module uses another's service at setup: none does today
 * (services are looked up when used), so the order is the order of the features'
 * importance to a reader.
 */
import type { AnyModule } from '../core/module.js';
import { buildConfigSchema, type ConfigSchema } from '../config/schema.js';
import roster from './roster/index.js';
import presence from './presence/index.js';
import privacy from './privacy/index.js';
import offline from './offline/index.js';
import disco from './disco/index.js';
import ping from './ping/index.js';
import version from './version/index.js';
import time from './time/index.js';
import mam from './mam/index.js';
import carbons from './carbons/index.js';
import pep from './pep/index.js';
import vcard from './vcard/index.js';
import contactInfo from './contact-info/index.js';
import extdisco from './extdisco/index.js';
import last from './last/index.js';

export const MODULES: readonly AnyModule[] = [
  roster,
  presence,
  privacy,
  offline,
  disco,
  ping,
  version,
  time,
  mam,
  carbons,
  pep,
  vcard,
  contactInfo,
  extdisco,
  last,
];

/** Every config key: the core's and each module's section (`parley config docs` lists them). */
export const CONFIG_SCHEMA: ConfigSchema = buildConfigSchema(MODULES.flatMap((m) => (m.options ? [m.options] : [])));
