/**
 * The SNMP agent (issue 9): the key statistics of deploy/PARLEY-MIB.txt under the Parley
 * enterprise subtree, read-only, over UDP (`snmp: { host, port, community }`; v2c by
 * default on loopback, an optional SNMPv3 USM user). Off when the `snmp` key is absent.
 *
 * The numbers are the ones /metrics shows (ServerStats, the session registry, the BOSH
 * manager, the storage router, the cluster node): they are copied into the agent's MIB
 * tree right before a request is answered, at most every REFRESH_MS (a walk is many
 * requests; each refresh walks the sessions once).
 *
 * The enterprise number 32473 is the one RFC 5612 reserves for documentation examples:
 * a placeholder until Parley has a Private Enterprise Number of its own from IANA.
 * References: RFC 2578 (SMIv2), RFC 3416 (SNMPv2 PDUs), RFC 3414 (USM).
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import snmp from 'net-snmp';
import type { Agent, Mib, Provider } from 'net-snmp';
import { LIMIT_NAMES } from '../support/stats.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../support/errors.js';
import { sessionCounts, type MetricsSources } from './metrics.js';

/** 1.3.6.1.4.1.32473 (RFC 5612 documentation PEN) . 1 (parley) . 1 (parleyObjects). */
export const PARLEY_OID = '1.3.6.1.4.1.32473.1';
const OBJECTS = `${PARLEY_OID}.1`;
const REFRESH_MS = 200;

type SnmpConfig = NonNullable<Config['snmp']>;

interface Scalar {
  name: string;
  oid: string;
  type: 'gauge' | 'counter64' | 'timeticks';
}

/** Every scalar of the MIB, in OID order (names as in PARLEY-MIB). */
const SCALARS: Scalar[] = [
  { name: 'parleyUptime', oid: '1.1', type: 'timeticks' },
  { name: 'parleyHeapUsedKBytes', oid: '1.2', type: 'gauge' },
  { name: 'parleyRssKBytes', oid: '1.3', type: 'gauge' },
  { name: 'parleyClusterMembers', oid: '1.4', type: 'gauge' },
  { name: 'parleySessionsTotal', oid: '2.1', type: 'gauge' },
  { name: 'parleySessionsTcp', oid: '2.2', type: 'gauge' },
  { name: 'parleySessionsBosh', oid: '2.3', type: 'gauge' },
  { name: 'parleySessionsWebsocket', oid: '2.4', type: 'gauge' },
  { name: 'parleySessionsAvailable', oid: '2.5', type: 'gauge' },
  { name: 'parleySessionsHibernated', oid: '2.6', type: 'gauge' },
  { name: 'parleyMessagesIn', oid: '3.1', type: 'counter64' },
  { name: 'parleyPresencesIn', oid: '3.2', type: 'counter64' },
  { name: 'parleyIqsIn', oid: '3.3', type: 'counter64' },
  { name: 'parleyMessagesOut', oid: '3.4', type: 'counter64' },
  { name: 'parleyPresencesOut', oid: '3.5', type: 'counter64' },
  { name: 'parleyIqsOut', oid: '3.6', type: 'counter64' },
  { name: 'parleyMessagesBounced', oid: '3.7', type: 'counter64' },
  { name: 'parleyPresencesBounced', oid: '3.8', type: 'counter64' },
  { name: 'parleyIqsBounced', oid: '3.9', type: 'counter64' },
  { name: 'parleyOfflineStored', oid: '3.10', type: 'counter64' },
  { name: 'parleyOfflineRefused', oid: '3.11', type: 'counter64' },
  { name: 'parleyArchiveWrites', oid: '3.12', type: 'counter64' },
  { name: 'parleyLogins', oid: '4.1', type: 'counter64' },
  { name: 'parleyLoginFailures', oid: '4.2', type: 'counter64' },
  { name: 'parleyBoshSessions', oid: '5.1', type: 'gauge' },
  { name: 'parleyBoshHeldRequests', oid: '5.2', type: 'gauge' },
  { name: 'parleyBoshRetransmissions', oid: '5.3', type: 'counter64' },
  { name: 'parleyBoshOutOfOrder', oid: '5.4', type: 'counter64' },
  { name: 'parleyBoshCutRequests', oid: '5.5', type: 'counter64' },
];

const LIMIT_TABLE = 'parleyLimitEntry';
const SHARD_TABLE = 'parleyShardEntry';
const BREAKER = { closed: 1, 'half-open': 2, open: 3 } as const;

/** An SNMP Counter64 (net-snmp takes it as 8 big-endian bytes). */
function c64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(n))) & 0xffffffffffffffffn);
  return b;
}
/** Gauge32 saturates at 2^32-1 (RFC 2578 §7.1.7). */
const g32 = (n: number) => Math.min(Math.max(0, Math.floor(n)), 0xffffffff);

function sum(r: Record<string, number>): number {
  let s = 0;
  for (const v of Object.values(r)) s += v;
  return s;
}

export interface SnmpAgent {
  /** The UDP port the agent is bound to. */
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the agent; resolves once its UDP socket is bound (a bind failure rejects: fail fast). */
export async function startSnmpAgent(cfg: SnmpConfig, src: MetricsSources): Promise<SnmpAgent> {
  if (!cfg.v2c && !cfg.v3) throw new ConfigError('snmp', 'neither v2c nor a v3 user is configured: nobody could read the agent');
  const v3 = cfg.v3;
  if (v3) {
    if (v3.authKey.length < 8) throw new ConfigError('snmp.v3.authKey', 'must be at least 8 characters (RFC 3414)');
    if (v3.privProtocol !== 'none' && (v3.privKey ?? '').length < 8) throw new ConfigError('snmp.v3.privKey', 'must be at least 8 characters, or set privProtocol: none');
  }
  let socket: dgram.Socket | null = null;
  let bindError: ((e: Error) => void) | null = null;
  const agent: Agent = snmp.createAgent(
    {
      port: cfg.port,
      address: cfg.host,
      transport: isIPv6(cfg.host) ? 'udp6' : 'udp4',
      // Our own dgram factory: it lets startup wait for the bind and learn its error.
      dgramModule: {
        createSocket(type: string) {
          socket = dgram.createSocket(type as dgram.SocketType);
          return socket;
        },
      },
    },
    (error) => {
      if (error && bindError) bindError(error);
      // Malformed packets and authorization failures from the network: nothing to do.
    },
  );
  const sock = socket as dgram.Socket | null;
  if (!sock) throw new Error('the SNMP agent made no socket');
  await new Promise<void>((resolve, reject) => {
    bindError = reject;
    sock.once('listening', () => resolve());
  }).catch((e: unknown) => {
    agent.close();
    throw new ConfigError('snmp', `cannot listen on ${cfg.host}:${cfg.port} (${(e as Error).message})`);
  });
  bindError = null;

  const auth = agent.getAuthorizer();
  if (cfg.v2c) auth.addCommunity(cfg.community);
  if (v3) {
    const priv = v3.privProtocol !== 'none';
    auth.addUser({
      name: v3.user,
      level: priv ? snmp.SecurityLevel.authPriv : snmp.SecurityLevel.authNoPriv,
      authProtocol: snmp.AuthProtocols[v3.authProtocol],
      authKey: v3.authKey,
      ...(priv ? { privProtocol: snmp.PrivProtocols[v3.privProtocol], privKey: v3.privKey } : {}),
    });
  }

  const mib = agent.getMib();
  const readOnly = snmp.MaxAccess['read-only'];
  const typeOf = { gauge: snmp.ObjectType.Gauge32, counter64: snmp.ObjectType.Counter64, timeticks: snmp.ObjectType.TimeTicks };
  for (const s of SCALARS) mib.registerProvider({ name: s.name, type: snmp.MibProviderType.Scalar, oid: `${OBJECTS}.${s.oid}`, scalarType: typeOf[s.type], maxAccess: readOnly });
  const table = (name: string, oid: string, columns: Array<[number, string, number]>): Provider => ({
    name,
    type: snmp.MibProviderType.Table,
    oid,
    maxAccess: snmp.MaxAccess['not-accessible'],
    tableColumns: columns.map(([number, cname, type]) => ({ number, name: cname, type, maxAccess: number === 1 ? snmp.MaxAccess['not-accessible'] : readOnly })),
    tableIndex: [{ columnName: columns[0]![1] }],
  });
  const T = snmp.ObjectType;
  mib.registerProvider(table(LIMIT_TABLE, `${OBJECTS}.6.1`, [[1, 'parleyLimitIndex', T.Integer], [2, 'parleyLimitName', T.OctetString], [3, 'parleyLimitHits', T.Counter64]]));
  mib.registerProvider(
    table(SHARD_TABLE, `${OBJECTS}.7.1`, [
      [1, 'parleyShardIndex', T.Integer],
      [2, 'parleyShardName', T.OctetString],
      [3, 'parleyShardHealthy', T.Integer],
      [4, 'parleyShardBreaker', T.Integer],
      [5, 'parleyShardOperations', T.Counter64],
      [6, 'parleyShardErrors', T.Counter64],
    ]),
  );
  LIMIT_NAMES.forEach((name, i) => mib.addTableRow(LIMIT_TABLE, [i + 1, name, c64(0)]));

  const shardRows = new Map<string, number>();
  let nextShardIndex = 1;
  let refreshedAt = -Infinity;
  const refresh = () => {
    const now = performance.now();
    if (now - refreshedAt < REFRESH_MS) return;
    refreshedAt = now;
    fill(mib, src, shardRows, () => nextShardIndex++);
  };
  // Values are copied in right before each request is answered (the agent has no
  // per-request hook for a whole walk; a provider handler runs after the walk's next
  // node is chosen, too late to add or drop table rows).
  for (const m of ['getRequest', 'getNextRequest', 'getBulkRequest'] as const) {
    const orig = agent[m].bind(agent);
    agent[m] = (...a: unknown[]) => {
      try {
        refresh();
      } catch (err) {
        src.core.log.warn({ err }, 'snmp: reading the statistics failed');
      }
      orig(...a);
    };
  }
  refresh();
  const port = sock.address().port;
  src.core.log.info({ address: `${cfg.host}:${port}`, v2c: cfg.v2c, v3: v3?.user ?? null }, 'SNMP agent listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => agent.close(() => resolve())),
  };
}

function fill(mib: Mib, src: MetricsSources, shardRows: Map<string, number>, newIndex: () => number): void {
  const { core, bosh, storage, cluster } = src;
  const st = core.stats;
  const sessions = sessionCounts(core);
  let available = 0;
  let hibernated = 0;
  for (const t of Object.values(sessions.by)) {
    available += t.available;
    hibernated += t.hibernated;
  }
  const b = bosh?.snapshot();
  const mem = process.memoryUsage();
  const values: Record<string, number> = {
    parleyUptime: Math.floor((Date.now() - core.startedAt.getTime()) / 10) % 2 ** 32,
    parleyHeapUsedKBytes: g32(mem.heapUsed / 1024),
    parleyRssKBytes: g32(mem.rss / 1024),
    parleyClusterMembers: g32(cluster ? cluster.members().length : 1),
    parleySessionsTotal: g32(sessions.total),
    parleySessionsTcp: g32(sessions.byTransport.tcp),
    parleySessionsBosh: g32(sessions.byTransport.bosh),
    parleySessionsWebsocket: g32(sessions.byTransport.websocket),
    parleySessionsAvailable: g32(available),
    parleySessionsHibernated: g32(hibernated),
    parleyMessagesIn: st.stanzasIn.message,
    parleyPresencesIn: st.stanzasIn.presence,
    parleyIqsIn: st.stanzasIn.iq,
    parleyMessagesOut: st.stanzasOut.message,
    parleyPresencesOut: st.stanzasOut.presence,
    parleyIqsOut: st.stanzasOut.iq,
    parleyMessagesBounced: st.stanzasBounced.message,
    parleyPresencesBounced: st.stanzasBounced.presence,
    parleyIqsBounced: st.stanzasBounced.iq,
    parleyOfflineStored: st.offlineStored,
    parleyOfflineRefused: st.offlineRefused,
    parleyArchiveWrites: st.archiveWrites,
    parleyLogins: sum(st.logins),
    parleyLoginFailures: sum(st.loginFailures),
    parleyBoshSessions: g32(b?.sessions ?? 0),
    parleyBoshHeldRequests: g32(b?.heldRequests ?? 0),
    parleyBoshRetransmissions: b?.retransmissions ?? 0,
    parleyBoshOutOfOrder: b?.outOfOrder ?? 0,
    parleyBoshCutRequests: b?.cutRequests ?? 0,
  };
  for (const s of SCALARS) mib.setScalarValue(s.name, s.type === 'counter64' ? c64(values[s.name]!) : values[s.name]);
  LIMIT_NAMES.forEach((name, i) => mib.setTableSingleCell(LIMIT_TABLE, 3, [i + 1], c64(st.limitHits[name])));

  const seen = new Set<string>();
  for (const s of storage.status()) {
    seen.add(s.name);
    let index = shardRows.get(s.name);
    const cells: [number, unknown][] = [
      [3, s.healthy ? 1 : 2],
      [4, BREAKER[s.breaker]],
      [5, c64(s.ops)],
      [6, c64(s.errors)],
    ];
    if (index === undefined) {
      index = newIndex();
      shardRows.set(s.name, index);
      mib.addTableRow(SHARD_TABLE, [index, s.name, ...cells.map(([, v]) => v)]);
    } else for (const [col, v] of cells) mib.setTableSingleCell(SHARD_TABLE, col, [index], v);
  }
  // Shards removed from the map by a reload: their rows go (their index is not reused).
  for (const [name, index] of shardRows) {
    if (seen.has(name)) continue;
    mib.deleteTableRow(SHARD_TABLE, [index]);
    shardRows.delete(name);
  }
}
