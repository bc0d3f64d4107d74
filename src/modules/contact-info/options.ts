/**
 * The `contact` section of the config file: this module's options, validated and documented
 * (`parley config docs`) like every other key.
 */
import { list, obj, str, type Infer } from '../../config/schema-dsl.js';
import type { ModuleOptions } from '../../core/module.js';

/** A list of contact URIs (XEP-0157): mailto:, xmpp:, https:, tel: … */
const contactList = (what: string) =>
  list(str({ doc: 'a URI such as mailto:abuse@example.com or xmpp:admin@example.com', default: '', pattern: /^(mailto|xmpp|https?|tel|sip):[^\s<>"]+$/, patternDoc: 'a mailto:, xmpp:, http(s):, tel: or sip: URI' }), { doc: `addresses for ${what}`, default: [] });

const schema = obj(
  {
    abuse: contactList('abuse'),
    admin: contactList('the administrators'),
    feedback: contactList('feedback'),
    sales: contactList('sales'),
    security: contactList('security reports'),
    status: contactList('status updates'),
    support: contactList('support'),
  },
  'contact addresses of the service (XEP-0157), shown in the server\'s disco#info; empty lists are left out',
);

export type ContactOptions = Infer<typeof schema>;

declare module '../../config/schema.js' {
  interface ModuleConfig {
    contact: ContactOptions;
  }
}

export const options: ModuleOptions<ContactOptions> = {
  key: 'contact',
  schema,
};
