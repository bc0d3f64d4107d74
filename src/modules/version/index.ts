/**
 * XEP-0092: Software Version.
 * References: https://xmpp.org/extensions/xep-0092.html
 */
import { x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { defineModule } from '../../core/module.js';
import { PARLEY_VERSION } from '../../support/version.js';

export default defineModule({
  name: 'version',
  setup(ctx) {
    ctx.addFeature(NS.VERSION);
    // The OS is left out on purpose (XEP-0092 §4: it helps attackers more than users).
    ctx.handleIq('get', NS.VERSION, 'query', () => x('query', { xmlns: NS.VERSION }, x('name', null, 'Parley'), x('version', null, PARLEY_VERSION)));
  },
});
