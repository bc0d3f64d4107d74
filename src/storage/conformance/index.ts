/** Every store's conformance suite. A new store adds its suite here. */
import type { ConformanceSuite } from './suite.js';
import { usersSuite } from './users.js';
import { rosterSuite } from './roster.js';
import { offlineSuite } from './offline.js';
import { archiveSuite } from './archive.js';
import { privacySuite } from './privacy.js';
import { vcardSuite } from './vcard.js';
import { pepSuite } from './pep.js';
import { lastSuite } from './last.js';

export const SUITES: ConformanceSuite[] = [usersSuite, rosterSuite, offlineSuite, archiveSuite, vcardSuite, pepSuite, privacySuite, lastSuite];
