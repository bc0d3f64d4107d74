/** Bounded fuzz run of JID parsing and PRECIS (targets/jid.ts); the seed is printed. */
import { jidTarget } from './targets/jid.js';
import { boundedRun } from './bounded.js';

boundedRun(jidTarget);
