/** Every fuzz target, by name (the `--target` of `npm run fuzz`). */
import type { FuzzTarget } from '../harness.js';
import { parserTarget } from './parser.js';
import { boshTarget } from './bosh.js';
import { wsTarget } from './ws.js';
import { saslTarget } from './sasl.js';
import { jidTarget } from './jid.js';
import { apiTarget } from './api.js';

export const TARGETS: readonly FuzzTarget[] = [parserTarget, boshTarget, wsTarget, saslTarget, jidTarget, apiTarget];
