/**
 * XEP-0157: Contact Addresses for XMPP Services — the server's disco#info carries the
 * `http://jabber.org/network/serverinfo` form (XEP-0128) with the configured addresses.
 * References: https://xmpp.org/extensions/xep-0157.html §2 (fields), XEP-0128 §2
 */
import { x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { options } from './options.js';
import { defineModule } from '../../core/module.js';

export const SERVERINFO = 'http://jabber.org/network/serverinfo';

/** The config keys under `contact` and the form fields they fill (XEP-0157 §2, registered fields). */
export const CONTACT_FIELDS = {
  abuse: 'abuse-addresses',
  admin: 'admin-addresses',
  feedback: 'feedback-addresses',
  sales: 'sales-addresses',
  security: 'security-addresses',
  status: 'status-addresses',
  support: 'support-addresses',
} as const;

export default defineModule({
  name: 'contact-info',
  options,
  setup(ctx) {
    const contact = ctx.options;
    const form = x('x', { xmlns: NS.X_DATA, type: 'result' }, x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, SERVERINFO)));
    let any = false;
    for (const [key, field] of Object.entries(CONTACT_FIELDS)) {
      const uris = contact[key as keyof typeof CONTACT_FIELDS];
      if (uris.length === 0) continue; // omitted fields are left out
      any = true;
      form.append(x('field', { var: field, type: 'list-multi' }, ...uris.map((u) => x('value', null, u))));
    }
    if (any) ctx.addDiscoForm(form, 'host');
  },
});
