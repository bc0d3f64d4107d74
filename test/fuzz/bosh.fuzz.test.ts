/** Bounded fuzz run of BOSH body parsing and sessions (targets/bosh.ts); the seed is printed. */
import { boshTarget } from './targets/bosh.js';
import { boundedRun } from './bounded.js';

boundedRun(boshTarget);
