/**
 * `parley status`, `parley sessions list|kick`, `parley reload`: the running server through
 * its admin API (admin.token, listen.http of the same config file).
 */
import type { Config } from '../config/schema.js';
import { ConfigError } from '../support/errors.js';
import { admin } from './shards.js';
import type { ConfigReloadResult } from '../ops/reload.js';

interface Status {
  node: string | null;
  version: string;
  domain: string;
  uptimeSeconds: number;
  draining: boolean;
  sessions: { total: number; users: number; byTransport: Record<string, number> };
  connections: number;
  cluster: { members: string[] } | null;
  storage: { driver: string; healthy: boolean; shards: Array<{ name: string; address: string; healthy: boolean; breaker: string; draining: boolean; latencyMs: number | null; lastError: string | null }> };
}

interface SessionRow {
  jid: string;
  node: string | null;
  transport: string;
  available: boolean;
  remoteAddress: string | null;
  boundAt: string | null;
}

function uptime(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d > 0 ? `${d}d ` : ''}${h}h ${m}m ${s % 60}s`;
}

export async function statusCommand(config: Config, opts: { json?: boolean }): Promise<number> {
  const st = (await admin(config, 'GET', '/admin/v1/status')) as Status;
  if (opts.json) {
    console.log(JSON.stringify(st, null, 2));
    return 0;
  }
  const t = st.sessions.byTransport;
  console.log(`node       ${st.node ?? '(single node)'}${st.draining ? ' (draining)' : ''}`);
  console.log(`version    ${st.version}`);
  console.log(`domain     ${st.domain}`);
  console.log(`uptime     ${uptime(st.uptimeSeconds)}`);
  console.log(`sessions   ${st.sessions.total} (tcp ${t.tcp ?? 0}, bosh ${t.bosh ?? 0}, websocket ${t.websocket ?? 0}); ${st.sessions.users} users; ${st.connections} connections`);
  console.log(`cluster    ${st.cluster ? `${st.cluster.members.length} members: ${st.cluster.members.join(', ')}` : 'none'}`);
  console.log(`storage    ${st.storage.driver}, ${st.storage.healthy ? 'healthy' : 'NOT HEALTHY'}`);
  for (const s of st.storage.shards) {
    const flags = [s.healthy ? 'healthy' : 'down', `breaker ${s.breaker}`, s.draining ? 'draining' : '', s.latencyMs === null ? '' : `${s.latencyMs.toFixed(1)} ms`].filter(Boolean).join(', ');
    console.log(`  ${s.name.padEnd(8)} ${s.address}  ${flags}${s.lastError ? `  (${s.lastError})` : ''}`);
  }
  return st.storage.healthy ? 0 : 2;
}

export async function sessionsCommand(config: Config, args: string[], opts: { user?: string; reason?: string; limit?: string; offset?: string; json?: boolean }): Promise<number> {
  const [sub, jid] = args;
  if (sub === 'list') {
    const q = new URLSearchParams();
    if (opts.user) q.set('user', opts.user.includes('@') ? opts.user : `${opts.user}@${config.domain}`);
    q.set('limit', opts.limit ?? '100');
    if (opts.offset) q.set('offset', opts.offset);
    const r = (await admin(config, 'GET', `/admin/v1/sessions?${q.toString()}`)) as { total: number; offset: number; sessions: SessionRow[] };
    if (opts.json) {
      console.log(JSON.stringify(r, null, 2));
      return 0;
    }
    for (const s of r.sessions) {
      console.log([s.jid, s.transport, s.available ? 'available' : 'unavailable', s.node ?? '-', s.remoteAddress ?? '-', s.boundAt ?? '-'].join('\t'));
    }
    console.log(`${r.sessions.length} of ${r.total} sessions${r.offset ? ` from ${r.offset}` : ''}`);
    return 0;
  }
  if (sub === 'kick') {
    if (!jid) throw new ConfigError('', 'usage: parley sessions kick JID [--reason TEXT]');
    const full = jid.includes('@') ? jid : `${jid}@${config.domain}`;
    try {
      const r = (await admin(config, 'POST', '/admin/v1/sessions/kick', { jid: full, reason: opts.reason })) as { kicked: string[] };
      console.log(`kicked ${r.kicked.length} session(s): ${r.kicked.join(', ')}`);
      return 0;
    } catch (e) {
      if (e instanceof ConfigError && / 404: /.test(e.message)) {
        console.error(`parley: no session of ${full}`);
        return 1;
      }
      throw e;
    }
  }
  console.error('usage: parley sessions list [--user JID] [--limit N] [--offset N] | parley sessions kick JID [--reason TEXT]');
  return 1;
}

/** Prints a reload result; 0 when it was applied. */
export function printReload(r: ConfigReloadResult, out: (s: string) => void = console.log): number {
  if (!r.ok) {
    out(`reload refused, nothing changed: ${r.error}`);
    return 1;
  }
  out(`reloaded ${r.file}`);
  out(`  applied:         ${r.applied.length ? r.applied.join(', ') : '(no live key changed)'}`);
  if (r.restartNeeded.length) out(`  need a restart:  ${r.restartNeeded.join(', ')}`);
  if (r.shards) out(`  shard map:       ${JSON.stringify(r.shards)}`);
  return 0;
}

export async function reloadCommand(config: Config): Promise<number> {
  let r: ConfigReloadResult;
  try {
    r = (await admin(config, 'POST', '/admin/v1/reload')) as ConfigReloadResult;
  } catch (e) {
    // A refused reload answers 400 with the result; admin() turns it into an error text.
    if (e instanceof ConfigError && / 400: /.test(e.message)) {
      console.error(`parley: reload refused, nothing changed: ${e.message.replace(/^config: server answered 400: /, '')}`);
      return 1;
    }
    throw e;
  }
  return printReload(r);
}
