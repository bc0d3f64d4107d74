/** Bounded fuzz run of the portal API on a test server (targets/api.ts); the seed is printed. */
import { apiTarget } from './targets/api.js';
import { boundedRun } from './bounded.js';

boundedRun(apiTarget);
