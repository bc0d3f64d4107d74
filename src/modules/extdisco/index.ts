/**
 * XEP-0215: External Service Discovery — the STUN/TURN services a client needs for
 * voice and video calls, with time-limited TURN credentials computed from a secret shared
 * with the TURN server (the "TURN REST API" scheme that coturn implements as
 * `use-auth-secret`: username `<expiry>:<user>`, password base64(HMAC-SHA1(secret, username))).
 * References: https://xmpp.org/extensions/xep-0215.html §3.1 (services), §3.2 (credentials),
 * §3.3 (restricted, expires), §6 (security: only the server's own users);
 * draft-uberti-behave-turn-rest-00 §2.2.
 */
import { createHmac } from 'node:crypto';
import { x, type XmlElement } from '../../xml/element.js';
import { StanzaError } from '../../xmpp/errors.js';
import { options } from './options.js';
import { defineModule, type IqRequest } from '../../core/module.js';
import type { Config } from '../../config/schema.js';

export const NS_EXTDISCO = 'urn:xmpp:extdisco:2';

export type ExternalService = Config['externalServices'][number];

/** Time-limited credentials for a service with a shared secret (TURN REST API). */
export function turnCredentials(secret: string, user: string, ttlMs: number, now = Date.now()): { username: string; password: string; expires: Date } {
  const expiry = Math.floor((now + ttlMs) / 1000);
  const username = `${expiry}:${user}`;
  const password = createHmac('sha1', secret).update(username).digest('base64');
  return { username, password, expires: new Date(expiry * 1000) };
}

/** The `<service/>` element of one configured service, with credentials for `user` when it has a secret. */
export function serviceElement(s: ExternalService, user: string, now = Date.now()): XmlElement {
  const attrs: Record<string, string> = { type: s.type, host: s.host, port: String(s.port), transport: s.transport };
  if (s.name) attrs.name = s.name;
  if (s.secret) {
    const c = turnCredentials(s.secret, user, s.ttl, now);
    attrs.restricted = '1';
    attrs.username = c.username;
    attrs.password = c.password;
    attrs.expires = c.expires.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  return x('service', attrs);
}

export default defineModule({
  name: 'extdisco',
  options,
  setup(ctx) {
    const services = ctx.options;
    if (services.length === 0) return;
    const domain = ctx.domain;
    ctx.addFeature(NS_EXTDISCO, 'host');

    /** SECURITY: services and credentials are for the server's own (authenticated) users only. */
    const requester = (req: IqRequest): string => {
      if (req.from.domain !== domain || req.from.local === '') throw new StanzaError('forbidden', 'external services are for this server\'s users');
      return req.from.bare;
    };

    ctx.handleIq('get', NS_EXTDISCO, 'services', (req) => {
      const user = requester(req);
      const type = req.payload.attrs.type;
      const out = x('services', { xmlns: NS_EXTDISCO, ...(type !== undefined ? { type } : {}) });
      for (const s of services) if (type === undefined || s.type === type) out.append(serviceElement(s, user));
      return out;
    });

    ctx.handleIq('get', NS_EXTDISCO, 'credentials', (req) => {
      const user = requester(req);
      const asked = req.payload.getChild('service');
      const host = asked?.attrs.host;
      if (!asked || host === undefined) throw new StanzaError('bad-request', 'name a service: <service host=… type=…/>');
      const match = services.find(
        (s) => s.host === host && (asked.attrs.type === undefined || s.type === asked.attrs.type) && (asked.attrs.port === undefined || String(s.port) === asked.attrs.port),
      );
      if (!match) throw new StanzaError('item-not-found', 'no such service');
      return x('credentials', { xmlns: NS_EXTDISCO }, serviceElement(match, user));
    });
  },
});
