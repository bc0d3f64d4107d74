/**
 * Just enough X.509 for Parley: a self-signed ECDSA P-256 certificate for development
 * (RFC 5280 §4.1 fields, DER per X.690), and the hash a certificate's signature uses
 * (for tls-server-end-point channel binding, RFC 5929 §4.1).
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';

// ------------------------------------------------------------------ DER encoding

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(content.length), content]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer) => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const explicit = (n: number, b: Buffer) => tlv(0xa0 + n, b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
  const iso = d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** A self-signed certificate for `names[0]` (and the other names), valid `days` days. */
export function makeSelfSignedCertificate(names: string[], days = 3650): { cert: string; key: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const name = seq(set(seq(oid(OID.commonName), utf8(names[0]!))));
  const now = Date.now();
  const sigAlg = seq(oid(OID.ecdsaWithSha256));
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    sigAlg,
    name,
    seq(time(new Date(now - 86_400_000)), time(new Date(now + days * 86_400_000))),
    name,
    spki,
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, tlv(0x03, Buffer.from([0x07, 0x80]))), // digitalSignature
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, seq(...names.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))))),
      ),
    ),
  );
  const signature = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, sigAlg, bits(signature));
  return { cert: pem('CERTIFICATE', cert), key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

// ------------------------------------------------------------------ reading

/** Reads one TLV at `pos`: its tag, where its content starts and ends. */
function read(der: Buffer, pos: number): { tag: number; start: number; end: number } {
  const tag = der[pos]!;
  let l = der[pos + 1]!;
  let start = pos + 2;
  if (l & 0x80) {
    const n = l & 0x7f;
    l = 0;
    for (let i = 0; i < n; i++) l = l * 256 + der[start + i]!;
    start += n;
  }
  if (start + l > der.length) throw new Error('truncated DER');
  return { tag, start, end: start + l };
}

function decodeOid(b: Buffer): string {
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (const byte of b.subarray(1)) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

const SIGNATURE_HASHES: Record<string, 'sha256' | 'sha384' | 'sha512'> = {
  '1.2.840.113549.1.1.12': 'sha384', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13': 'sha512', // sha512WithRSAEncryption
  '1.2.840.10045.4.3.3': 'sha384', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4': 'sha512', // ecdsa-with-SHA512
};

/**
 * RFC 5929 §4.1: the hash function of the certificate's signature algorithm, with MD5
 * and SHA-1 (and anything unknown) replaced by SHA-256.
 */
export function certificateSignatureHash(der: Buffer): 'sha256' | 'sha384' | 'sha512' {
  const cert = read(der, 0);
  const tbs = read(der, cert.start);
  const alg = read(der, tbs.end);
  const id = read(der, alg.start);
  if (id.tag !== 0x06) return 'sha256';
  return SIGNATURE_HASHES[decodeOid(der.subarray(id.start, id.end))] ?? 'sha256';
}
