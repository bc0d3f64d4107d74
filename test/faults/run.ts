/**
 * `npm run faults -- [--short] [--fault NAME ...] [--json FILE]`: the fault campaign
 * (test/faults/campaign.ts), one fault after the other, each on a fresh cluster; prints
 * the table docs/robustness.md keeps. Must run as root (netns, tmpfs mounts).
 */
import { writeFileSync } from 'node:fs';
import { FAULTS, runCampaign, table, type FaultName } from './campaign.js';

const args = process.argv.slice(2);
const short = args.includes('--short');
const picked: FaultName[] = [];
let json: string | undefined;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--fault') {
    const f = args[++i] as FaultName;
    if (!FAULTS.includes(f)) {
      console.error(`unknown fault ${f}; one of ${FAULTS.join(', ')}`);
      process.exit(2);
    }
    picked.push(f);
  } else if (args[i] === '--json') json = args[++i];
}
if (!process.env.NODE_TLS_REJECT_UNAUTHORIZED) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const results = await runCampaign(picked.length > 0 ? picked : FAULTS, { short });
for (const r of results) console.log(`# ${r.fault}: ${r.notes.join('; ')}${r.lostIds.length ? `; lost: ${r.lostIds.join(', ')}` : ''}${r.dupIds.length ? `; duplicated: ${r.dupIds.join(', ')}` : ''}`);
console.log(table(results, (f) => `npm run faults -- ${short ? '--short ' : ''}--fault ${f}`));
if (json) writeFileSync(json, JSON.stringify(results, null, 2));
process.exitCode = results.some((r) => r.lost > 0 || r.recoveryMs < 0) ? 1 : 0;
