/**
 * XEP-0186 Invisible Command: a session goes invisible (its presence reaches no one but
 * the user's own resources; whether it probes its contacts is the `probe` attribute of
 * urn:xmpp:invisible:1) and visible again (the presence it has goes out, once).
 * References: XEP-0186 §3.1 (becoming invisible: unavailable to whoever saw the
 * resource), §3.2 (becoming visible), §4 (urn:xmpp:invisible:0, without `probe`).
 */
import { SessionFlag } from '../../core/session.js';
import type { IqHandler } from '../../core/module.js';
import { StanzaError } from '../../xmpp/errors.js';
import { NS } from '../../xmpp/ns.js';
import { requireSelf, type PrivacyParts } from './changes.js';

/** The `invisible` and `visible` handlers of one of the two namespaces. */
export function invisibilityHandlers(p: PrivacyParts, ns: string): { invisible: IqHandler; visible: IqHandler } {
  const { sessions, changes } = p;

  const invisible: IqHandler = async (req) => {
    const session = requireSelf(req);
    const probeAttr = req.payload.attrs.probe;
    let probe: boolean;
    if (probeAttr === undefined) probe = ns === NS.INVISIBLE_0; // :0 had no attribute and probed; :1 defaults to false
    else if (probeAttr === 'true' || probeAttr === '1') probe = true;
    else if (probeAttr === 'false' || probeAttr === '0') probe = false;
    else throw new StanzaError('bad-request', 'probe is a boolean');
    const me = sessions.of(session);
    const user = req.from.toBare();
    await changes.serial(user, async () => {
      if (me.invisible) {
        me.invisible.probe = probe;
        return;
      }
      // XEP-0186 §3.1: unavailable to everyone who saw this resource.
      await changes.withPresence(
        user,
        () => {
          me.invisible = { probe, talkedTo: new Set() };
          session.flags |= SessionFlag.Invisible;
          // Other nodes have the flag before the IQ result goes back.
          return p.sync(session);
        },
        { forgetDirected: session },
      );
    });
    return null;
  };

  const visible: IqHandler = async (req) => {
    const session = requireSelf(req);
    const me = sessions.of(session);
    const user = req.from.toBare();
    await changes.serial(user, async () => {
      if (!me.invisible) return;
      // XEP-0186 §3.2: the presence the session has goes out, once, to those who
      // now see it (directed-presence targets already have it).
      await changes.withPresence(
        user,
        () => {
          me.invisible = null;
          session.flags &= ~SessionFlag.Invisible;
          return p.sync(session);
        },
        { republish: session },
      );
    });
    return null;
  };

  return { invisible, visible };
}
