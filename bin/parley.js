#!/usr/bin/env node
// The `parley` command: a thin shim over the compiled CLI (built by `npm install` via `prepare`, or `npm run build`).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.message : err); process.exitCode = 1; },
);
