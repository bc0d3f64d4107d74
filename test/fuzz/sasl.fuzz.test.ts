/** Bounded fuzz run of the SASL server mechanisms (targets/sasl.ts); the seed is printed. */
import { saslTarget } from './targets/sasl.js';
import { boundedRun } from './bounded.js';

boundedRun(saslTarget);
