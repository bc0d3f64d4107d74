/**
 * Prebind (XEP-0124 §7 done by the server for the page): the portal, which has logged
 * its user in already, asks Parley for a BOSH session of that user and gives the page
 * `{jid, sid, rid}`; the page attaches to it (Strophe.js `attach`, Converse.js
 * `authentication: 'prebind'`) without credentials.
 */
import type { ServerCore } from '../core/server.js';
import type { UserStore } from '../auth/user-store.js';
import type { BoshManager } from '../transports/bosh/bosh-manager.js';
import { Jid } from '../xmpp/jid.js';
import { normalizeUsername } from '../auth/authenticator.js';
import { EventError } from './events.js';

export interface Prebound {
  jid: string;
  sid: string;
  /** The rid the page's next request carries. */
  rid: number;
}

/**
 * The account a portal request names ("alice" or "alice@domain"): it must exist —
 * except when the portal checks passwords (portal.auth.source http or sql), where it is
 * made on first use — and be neither banned nor deleted.
 */
export async function checkPortalUser(core: ServerCore<UserStore>, user: string): Promise<Jid> {
  const at = user.lastIndexOf('@');
  if (at >= 0 && user.slice(at + 1).toLowerCase() !== core.domain) throw new EventError('user', `must be a user of ${core.domain}`);
  const local = normalizeUsername(at >= 0 ? user.slice(0, at) : user);
  if (local === null) throw new EventError('user', 'is not a valid username');
  const jid = Jid.of(local, core.domain);
  if (core.config.portal.auth.source !== 'internal') await core.users.ensure(core.domain, local);
  else if (!(await core.users.exists(core.domain, local))) throw new EventError('user', `unknown user ${jid.bare}`, 404);
  const flag = await core.users.getFlag(core.domain, local);
  if (flag) throw new EventError('user', `${jid.bare} is ${flag.state}${flag.reason ? ` (${flag.reason})` : ''}`, 403);
  return jid;
}

export async function prebind(core: ServerCore<UserStore>, bosh: BoshManager, user: string, opts: { resource?: string } = {}): Promise<Prebound> {
  const jid = await checkPortalUser(core, user);
  if (opts.resource !== undefined && (opts.resource.length > 256 || opts.resource.trim() === '')) throw new EventError('resource', 'must be 1 to 256 characters');
  return bosh.prebind(jid.local, { resource: opts.resource });
}
