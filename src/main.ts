/**
 * The composition root: config → storage → TLS → core → modules → listeners.
 * Shutdown runs the other way: listeners → sessions (hooks run, offline hand-off) →
 * modules → storage (STYLE.md trap 7).
 */
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { Logs, type LogLevel } from './support/logger.js';
import { openLogs } from './ops/logs.js';
import { ServerCore } from './core/server.js';
import { loadTlsIdentity } from './support/tls.js';
import { ensurePrivateDir } from './support/private-files.js';
import type { AnyModule } from './core/module.js';
import { openStorage } from './storage/open.js';
import type { ShardedStorage } from './storage/sharded.js';
import { adminRoutes } from './ops/admin-api.js';
import { healthRoutes } from './ops/health.js';
import { createMetrics, metricsRoute, type MetricsExporter } from './ops/metrics.js';
import { startSnmpAgent, type SnmpAgent } from './ops/snmp.js';
import { configReloader, type ConfigReloadResult, type Reloader } from './ops/reload.js';
import { portalApi, type PortalApi } from './portal/api.js';
import { ClusterNode } from './cluster/cluster-node.js';
import { checkClusterSecret } from './cluster/secret.js';
import { SqlUserStore } from './auth/user-store-sql.js';
import type { UserStore } from './auth/user-store.js';
import { Authenticator } from './auth/authenticator.js';
import { VerifiedPasswordCache } from './auth/plain-cache.js';
import { openPortalSources, type PortalSources } from './portal/sources.js';
import { StreamError } from './xmpp/errors.js';
import { C2sEndpoint } from './c2s/c2s-endpoint.js';
import { startC2sListener, startC2sTlsListener } from './transports/tcp/tcp-listener.js';
import { startHttpListener } from './transports/http/http-listener.js';
import { startComponentListener } from './transports/component/component-listener.js';
import { BoshManager } from './transports/bosh/bosh-manager.js';
import { demoPortal, disableDemoAccounts } from './portal/demo.js';

import { CONFIG_SCHEMA, MODULES, schemasOf } from './modules/index.js';

/** The modules every server loads, in order (the list is `src/modules/index.ts`). */
export const DEFAULT_MODULES: readonly AnyModule[] = MODULES;

export interface Listener {
  readonly name: string;
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export interface RunningServer {
  /** The core, with the whole account store (the core itself sees only its AccountsPort side). */
  readonly core: ServerCore<UserStore>;
  readonly listeners: Record<string, Listener>;
  /** The BOSH connection manager, when BOSH is on. */
  readonly bosh: BoshManager | null;
  /** The storage router (shard status, reloads, moves). */
  readonly storage: ShardedStorage;
  /** This node's cluster part, when `cluster.driver` is redis. */
  readonly cluster: ClusterNode | null;
  /** The SNMP agent, when the `snmp` key is set. */
  readonly snmp: SnmpAgent | null;
  /** The port a listener is bound to (tests start listeners on port 0). */
  port(name: 'c2s' | 'c2sTls' | 'http' | 'component'): number;
  /** Reads the config file again and applies what can change live (SIGHUP, admin API). */
  reload(): Promise<ConfigReloadResult>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** A logger to use instead of the configured destination (its level is the default level). */
  log?: Logger;
  /** The logs to use (levels per module, destination); made from the config when absent. */
  logs?: Logs;
  modules?: readonly AnyModule[];
  /** The config file the server was started with (read again by reload). */
  configFile?: string;
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  // Before anything opens: a `--nodes` child turns the cluster on after the file was read.
  if (config.cluster.driver === 'redis') checkClusterSecret(config.cluster.secret);
  const logs =
    opts.logs ??
    (opts.log ? new Logs(opts.log, { level: opts.log.level as LogLevel, modules: config.log.modules, sensitive: config.log.sensitive }) : openLogs(config.log));
  const log = logs.root;
  // SECURITY: the data directory is Parley's alone (0700); see support/private-files.ts.
  if (ensurePrivateDir(resolve(config.dataDir))) log.warn({ dataDir: config.dataDir }, 'the data directory could be read by other users: its mode is now 0700');
  // Every known module's tables, loaded or not (see openStorage), and those of extra modules.
  const storage = await openStorage(config, schemasOf([...MODULES, ...(opts.modules ?? [])]), logs.for('storage'));
  let core: ServerCore<UserStore> | undefined;
  let bosh: BoshManager | null = null;
  /** The Redis cluster part, when there is one (the ops side reads its figures). */
  let cluster = null as ClusterNode | null;
  let portal: PortalSources | null = null;
  let api: PortalApi | null = null;
  let metrics: MetricsExporter | null = null;
  let snmp: SnmpAgent | null = null;
  let reloader: Reloader | null = null;
  const listeners: Record<string, Listener> = {};
  try {
    const tls = await loadTlsIdentity({ domain: config.domain, dataDir: resolve(config.dataDir), cert: config.tls.cert, key: config.tls.key });
    portal = openPortalSources(config, logs.for('portal'));
    const users = new SqlUserStore(storage);
    // auth owns the password-source ports; the portal implements them; the core gets the built authenticator.
    const authenticator = new Authenticator({
      users,
      domain: config.domain,
      log: logs.for('auth'),
      verified: new VerifiedPasswordCache(config.limits.plainLoginCache, config.limits.plainLoginCacheTtl),
      tokens: portal.tokens,
      source: portal.passwords,
      cacheTtlMs: config.portal.auth.cacheTtl,
      cacheMax: Math.max(config.limits.plainLoginCache, 1000),
    });
    core = new ServerCore({
      config,
      log,
      logs,
      storage,
      users,
      tls,
      cluster:
        config.cluster.driver === 'redis'
          ? (c) => {
              const cc = config.cluster;
              cluster = new ClusterNode(c, {
                url: cc.url,
                prefix: cc.prefix,
                nodeId: cc.nodeId,
                listen: cc.listen,
                advertise: cc.advertise,
                secret: cc.secret,
                heartbeatMs: cc.heartbeat,
                leaseMs: cc.lease,
                queueLimit: cc.queueLimit,
              });
              return cluster;
            }
          : undefined,
      authenticator,
    });
    // The portal's friend lists plug into the roster module's port (modules/roster/api.ts).
    if (portal.friends) core.provideService('friends', portal.friends);
    await core.loadModules(opts.modules ?? DEFAULT_MODULES);
    if (!config.demo.enabled) {
      const disabled = await disableDemoAccounts(core);
      if (disabled.length > 0) log.warn({ accounts: disabled }, 'demo accounts with the demo password were found and disabled: they log in only in demo mode (demo.enabled)');
    }
    reloader = configReloader(core, storage, opts.configFile, CONFIG_SCHEMA);
    await core.cluster.start();
    const c2s = new C2sEndpoint(core);
    if (config.listen.c2s.enabled) listeners.c2s = await startC2sListener(c2s);
    if (config.listen.c2sTls.enabled) listeners.c2sTls = await startC2sTlsListener(c2s);
    if (cluster) core.components.attachCluster(cluster);
    if (config.components.length > 0) {
      const l = config.limits;
      const lc = config.listen.component;
      listeners.component = await startComponentListener(
        {
          host: lc.host,
          port: lc.port,
          limits: { maxStanzaBytes: l.maxStanzaSize, maxDepth: l.maxStanzaDepth, maxAttributes: l.maxAttributes, maxNameLength: 256 },
          handshakeTimeoutMs: l.authTimeout,
          closeTimeoutMs: l.closeTimeout,
          maxSendBuffer: lc.maxSendBuffer,
        },
        core.components,
      );
    }
    if (config.listen.http.enabled) {
      bosh = config.bosh.enabled ? new BoshManager(c2s) : null;
      api = portalApi(core, bosh);
      const routes = [healthRoutes(core), adminRoutes(core, storage, reloader)];
      if (config.metrics.enabled) {
        metrics = createMetrics({ core, bosh, storage, cluster });
        routes.push(metricsRoute(metrics, config.metrics));
      }
      if (api) routes.push(api.route);
      routes.push(core.httpRoutes.route);
      if (config.demo.enabled) routes.push(await demoPortal(core, bosh));
      listeners.http = await startHttpListener(c2s, { bosh, routes });
    }
    if (config.snmp) snmp = await startSnmpAgent(config.snmp, { core, bosh, storage, cluster });
  } catch (e) {
    metrics?.stop();
    await snmp?.close();
    api?.stop();
    bosh?.stop();
    for (const l of Object.values(listeners)) await l.close();
    await core?.cluster.stop().catch(() => undefined);
    await core?.modules.stopAll();
    await portal?.close();
    await storage.close();
    throw e;
  }
  const c = core;
  const r = reloader!;
  for (const l of Object.values(listeners)) log.info({ listener: l.name, address: `${l.address.address}:${l.address.port}` }, 'listening');
  log.info({ domain: config.domain, tls: c.tls.source, modules: c.modules.names, node: c.cluster.clustered ? c.cluster.nodeId : undefined }, 'Parley started');

  let stopping: Promise<void> | null = null;
  return {
    core: c,
    listeners,
    bosh,
    storage,
    cluster,
    snmp,
    port(name) {
      const l = listeners[name];
      if (!l) throw new Error(`listener ${name} is not running`);
      return l.address.port;
    },
    reload: () => r.reload(),
    stop() {
      stopping ??= (async () => {
        log.info('shutting down');
        c.draining = true;
        if (cluster && config.cluster.drainTimeout > 0) {
          // Draining: the load balancer sees /health/ready fail and sends new sessions
          // elsewhere; then clients are told to reconnect (to another node behind it).
          const wait = Math.min(config.cluster.drainTimeout, 2 * 1000);
          await new Promise((r) => setTimeout(r, wait));
        }
        // Stop accepting first; the listeners' promises settle once their connections are gone.
        const closed = Promise.all(Object.values(listeners).map((l) => l.close()));
        bosh?.stop();
        api?.stop();
        metrics?.stop();
        await snmp?.close();
        const target = config.cluster.reconnectHost;
        const goodbye = () =>
          cluster && target
            ? new StreamError('see-other-host', 'this node is shutting down; reconnect through the load balancer', target)
            : new StreamError('system-shutdown', 'the server is shutting down');
        for (const s of [...c.connections]) s.close(goodbye());
        // Each connection gets closeTimeout to close its side; then hooks finish their work.
        const deadline = Date.now() + config.limits.closeTimeout + 1000;
        while (c.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
        if (!(await c.settle(10_000))) log.warn('shutdown: some background work did not finish in time');
        await c.cluster.stop();
        await c.modules.stopAll();
        c.limits.stop();
        await portal?.close();
        await storage.close();
        log.info('stopped');
        if (!opts.logs && !opts.log) logs.close();
      })();
      return stopping;
    },
  };
}
