/**
 * XEP-0030: Service Discovery, for the server and for accounts.
 * References: https://xmpp.org/extensions/xep-0030.html §3 (info), §4 (items), §8 (errors)
 */
import { x, type XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { StanzaError } from '../../xmpp/errors.js';
import { defineModule, type DiscoView, type IqScope } from '../../core/module.js';
import type { DiscoNodeHandler } from '../../core/disco.js';

export default defineModule({
  name: 'disco',
  setup(ctx) {
    ctx.addFeature(NS.DISCO_INFO, 'host');
    ctx.addFeature(NS.DISCO_ITEMS, 'host');
    ctx.addIdentity({ category: 'server', type: 'im', name: 'Parley' }, 'host');
    ctx.addIdentity({ category: 'account', type: 'registered' }, 'account');
    ctx.addFeature(NS.DISCO_INFO, 'account');
    ctx.addFeature(NS.DISCO_ITEMS, 'account');

    ctx.handleIq(
      'get',
      NS.DISCO_INFO,
      'query',
      (req) => {
        if (req.to.local !== '' && !req.isSelf) {
          // SECURITY: another account's features are only for the account itself; others
          // learn nothing beyond what presence already tells them.
          throw new StanzaError('service-unavailable');
        }
        const scope = req.to.local === '' ? 'host' : 'account';
        const node = req.payload.attrs.node;
        if (node !== undefined) return nodeHandler(ctx.disco, node, scope).info(req);
        return info(ctx.disco, scope);
      },
      { scope: 'both' },
    );

    ctx.handleIq(
      'get',
      NS.DISCO_ITEMS,
      'query',
      async (req) => {
        if (req.to.local !== '' && !req.isSelf) throw new StanzaError('service-unavailable');
        const node = req.payload.attrs.node;
        const scope = req.to.local === '' ? 'host' : 'account';
        if (node !== undefined) return nodeHandler(ctx.disco, node, scope).items(req);
        const q = x('query', { xmlns: NS.DISCO_ITEMS });
        for (const provide of ctx.disco.itemProviders(scope)) for (const item of await provide(req)) q.append(item);
        return q;
      },
      { scope: 'both' },
    );
  },
});

/** The module answering a node; a node nobody answers does not exist (XEP-0030 §8). */
function nodeHandler(disco: DiscoView, node: string, scope: IqScope): DiscoNodeHandler {
  const h = disco.node(node, scope);
  if (!h) throw new StanzaError('item-not-found');
  return h;
}

function info(disco: DiscoView, scope: IqScope): XmlElement {
  const q = x('query', { xmlns: NS.DISCO_INFO });
  for (const id of disco.identities(scope)) q.append(x('identity', { category: id.category, type: id.type, name: id.name }));
  for (const f of disco.features(scope)) q.append(x('feature', { var: f }));
  for (const form of disco.forms(scope)) q.append(form);
  return q;
}
