/**
 * XEP-0202: Entity Time.
 * References: https://xmpp.org/extensions/xep-0202.html, XEP-0082 (date and time profiles)
 */
import { x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { defineModule } from '../../core/module.js';

export default defineModule({
  name: 'time',
  setup(ctx) {
    ctx.addFeature(NS.TIME);
    ctx.handleIq('get', NS.TIME, 'time', () => {
      const now = new Date();
      return x('time', { xmlns: NS.TIME }, x('tzo', null, tzo(now)), x('utc', null, now.toISOString().replace(/\.\d{3}Z$/, 'Z')));
    });
  },
});

/** The server's UTC offset as "+01:00" (XEP-0082). */
function tzo(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
