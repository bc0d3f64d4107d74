/**
 * A Parley server for one test file: its own temporary data directory, free ports, the
 * test certificate (trusted by the test processes through NODE_EXTRA_CA_CERTS, set by
 * scripts/run-tests.js), a silent logger, and helpers to create accounts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { makeCredentials } from '../../src/auth/credentials.js';
import { makeSelfSignedCertificate } from '../../src/support/x509.js';
import { CONFIG_SCHEMA } from '../../src/modules/index.js';
import type { AnyModule } from '../../src/core/module.js';

export const DOMAIN = 'example.test';
/** cluster.secret of the test clusters (required with cluster.driver redis). */
export const CLUSTER_SECRET = 'test-cluster-secret-0123456789abcdef';

export interface TestServer {
  server: RunningServer;
  config: Config;
  dataDir: string;
  /** STARTTLS port. */
  port: number;
  /** Direct TLS port. */
  tlsPort: number;
  /** HTTP port (BOSH, WebSocket). */
  httpPort: number;
  /** http://127.0.0.1:port */
  httpUrl: string;
  addUser(name: string, password?: string): Promise<void>;
  /** Stops the server; the data directory is removed unless `keepData`. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** The test certificate: the one the runner made (trusted), or a fresh one (then TLS checks are off). */
function testCertificate(dir: string): { cert: string; key: string } {
  const cert = process.env.PARLEY_TEST_CERT;
  const key = process.env.PARLEY_TEST_KEY;
  if (cert && key) return { cert, key };
  // Run outside scripts/run-tests.js: nothing trusts a fresh certificate, so clients in
  // this process must not check it.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const made = makeSelfSignedCertificate([DOMAIN, 'localhost']);
  writeFileSync(join(dir, 'cert.pem'), made.cert);
  writeFileSync(join(dir, 'key.pem'), made.key);
  return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

/** `modules`: the module list to load instead of the default one (src/modules/index.ts). */
export async function startTestServer(overrides: DeepPartial<Record<string, unknown>> = {}, opts: { modules?: readonly AnyModule[] } = {}): Promise<TestServer> {
  const dataDir = typeof overrides.dataDir === 'string' ? overrides.dataDir : mkdtempSync(join(tmpdir(), 'parley-test-'));
  const { cert, key } = testCertificate(dataDir);
  const raw = merge(
    {
      domain: DOMAIN,
      dataDir,
      listen: { c2s: { port: 0 }, c2sTls: { port: 0 }, http: { port: 0 } },
      tls: { cert, key },
      log: { level: 'silent' },
    },
    overrides,
  );
  const config = parseConfig(raw, CONFIG_SCHEMA);
  const log = pino({ level: process.env.PARLEY_TEST_LOG ?? 'silent' });
  const server = await startServer(config, { log, ...(opts.modules ? { modules: opts.modules } : {}) });
  return {
    server,
    config,
    dataDir,
    port: server.port('c2s'),
    tlsPort: config.listen.c2sTls.enabled ? server.port('c2sTls') : 0,
    httpPort: config.listen.http.enabled ? server.port('http') : 0,
    httpUrl: config.listen.http.enabled ? `http://127.0.0.1:${server.port('http')}` : '',
    async addUser(name, password = 'secret') {
      await server.core.users.create(DOMAIN, name, await makeCredentials(password));
    },
    async stop(opts) {
      await server.stop();
      if (!opts?.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)) {
      out[k] = merge(b as Record<string, unknown>, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}
