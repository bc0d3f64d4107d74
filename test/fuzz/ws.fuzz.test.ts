/** Bounded fuzz run of WebSocket framing (targets/ws.ts); the seed is printed. */
import { wsTarget } from './targets/ws.js';
import { boundedRun } from './bounded.js';

boundedRun(wsTarget);
