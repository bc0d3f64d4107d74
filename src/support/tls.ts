/**
 * The server's TLS identity: the configured certificate, or a self-signed one for the
 * domain made on first start and kept in dataDir (development and tests).
 * Also computes the data for tls-server-end-point channel binding (RFC 5929 §4).
 */
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { ensurePrivateDir } from './private-files.js';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { certificateSignatureHash, makeSelfSignedCertificate } from './x509.js';
import { ConfigError } from './errors.js';

export interface TlsIdentity {
  cert: string;
  key: string;
  context: SecureContext;
  /** Hash of the certificate for tls-server-end-point (RFC 5929 §4.1). */
  endPointHash: Buffer;
  /** Where it came from, for the log. */
  source: string;
}

export async function loadTlsIdentity(opts: { domain: string; dataDir: string; cert?: string; key?: string }): Promise<TlsIdentity> {
  let cert: string;
  let key: string;
  let source: string;
  if (opts.cert || opts.key) {
    if (!opts.cert || !opts.key) throw new ConfigError(opts.cert ? 'tls.key' : 'tls.cert', 'tls.cert and tls.key must be set together');
    cert = readPem(opts.cert, 'tls.cert');
    key = readPem(opts.key, 'tls.key');
    source = opts.cert;
  } else {
    const dir = join(opts.dataDir, 'tls');
    const certFile = join(dir, `${opts.domain}.crt`);
    const keyFile = join(dir, `${opts.domain}.key`);
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      ensurePrivateDir(dir);
      const made = makeSelfSignedCertificate(opts.domain === 'localhost' ? ['localhost'] : [opts.domain, 'localhost']);
      writeFileSync(keyFile, made.key, { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      writeFileSync(certFile, made.cert);
    }
    cert = readFileSync(certFile, 'utf8');
    key = readFileSync(keyFile, 'utf8');
    source = `${certFile} (self-signed)`;
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (e) {
    throw new ConfigError('tls', `certificate and key do not load: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { cert, key, context, endPointHash: endPointHash(cert), source };
}

function readPem(file: string, path: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(path, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/**
 * RFC 5929 §4.1: hash the certificate with its signature's hash function, but SHA-256
 * when that is MD5 or SHA-1.
 */
export function endPointHash(pem: string): Buffer {
  const der = new NodeX509(pem).raw;
  return createHash(certificateSignatureHash(der)).update(der).digest();
}
