/**
 * XEP-0199: XMPP Ping.
 * References: https://xmpp.org/extensions/xep-0199.html
 */
import { NS } from '../../xmpp/ns.js';
import { defineModule } from '../../core/module.js';

export default defineModule({
  name: 'ping',
  setup(ctx) {
    ctx.addFeature(NS.PING);
    // A ping to the server or to one's own account is answered; null → empty result.
    ctx.handleIq('get', NS.PING, 'ping', () => null, { scope: 'both' });
  },
});
