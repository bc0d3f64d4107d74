/**
 * Builds the portal's password, login-token and friend sources from the configuration
 * (`portal.auth.*`, `portal.secret`, `portal.roster.*`, `portal.db`). Bad queries stop
 * startup with the key's path and the reason. The composition root plugs the password
 * and token sources into the Authenticator (src/auth), the friends into the core.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../support/errors.js';
import type { FriendSource } from '../modules/roster/api.js';
import type { LoginTokenCheck, PasswordSource } from '../auth/password-source.js';
import { HttpPasswordSource, PortalTokenCheck, SqlPasswordSource } from './auth-sources.js';
import { HttpFriendSource, SqlFriendSource } from './friend-sources.js';
import { compileQuery, openPortalDb, type PortalDb } from './portal-db.js';

/** The portal's sources of passwords, login tokens and friends; none where it is not configured. */
export interface PortalSources {
  passwords: PasswordSource | null;
  /** Login tokens, when `portal.secret` is set. */
  tokens: LoginTokenCheck | null;
  friends: FriendSource | null;
  close(): Promise<void>;
}

/** Checks a configured query's placeholders (fail fast instead of at the first login). */
function checkQuery(path: string, query: string, placeholders: string[], required: string[]): void {
  let names: string[];
  try {
    names = compileQuery(query, placeholders).names;
  } catch (e) {
    throw new ConfigError(path, (e as Error).message);
  }
  for (const r of required) if (!names.includes(r)) throw new ConfigError(path, `must use the placeholder :${r}`);
}

/** Opens the configured sources (the portal database on first use); `close` releases it. */
export function openPortalSources(config: Config, log: Logger): PortalSources {
  const p = config.portal;
  const plog = log.child({ part: 'portal' });
  let db: PortalDb | null = null;
  const portalDb = (): PortalDb => (db ??= openPortalDb(p.db!, p.auth.timeout));
  let passwords: PasswordSource | null = null;
  if (p.auth.source === 'http') passwords = new HttpPasswordSource(p.auth.url!, p.auth.timeout, plog, p.auth.existsUrl);
  if (p.auth.source === 'sql') {
    checkQuery('portal.auth.query', p.auth.query!, ['user', 'password'], ['user']);
    if (p.auth.existsQuery !== undefined) checkQuery('portal.auth.existsQuery', p.auth.existsQuery, ['user'], ['user']);
    passwords = new SqlPasswordSource(portalDb(), p.auth.query!, plog, p.auth.existsQuery);
  }
  let friends: FriendSource | null = null;
  if (p.roster.source === 'http') {
    if (!p.roster.url!.includes('{user}')) throw new ConfigError('portal.roster.url', 'must contain {user}');
    friends = new HttpFriendSource(p.roster.url!, config.domain, p.auth.timeout, plog, p.roster.cacheTtl);
  }
  if (p.roster.source === 'sql') {
    checkQuery('portal.roster.query', p.roster.query!, ['user'], ['user']);
    friends = new SqlFriendSource(portalDb(), p.roster.query!, config.domain, plog, p.roster.cacheTtl);
  }
  const tokens = p.secret === undefined ? null : new PortalTokenCheck(p.secret, config.domain, Math.floor(p.tokenMaxTtl / 1000));
  return {
    passwords,
    tokens,
    friends,
    async close() {
      await db?.close();
    },
  };
}
