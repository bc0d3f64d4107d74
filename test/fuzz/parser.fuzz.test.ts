/** Bounded fuzz run of the XML parser (targets/parser.ts); the seed is printed. */
import { parserTarget } from './targets/parser.js';
import { boundedRun } from './bounded.js';

boundedRun(parserTarget);
