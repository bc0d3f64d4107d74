/**
 * Address allow-lists (`metrics.allowFrom` and the like): addresses and CIDR blocks,
 * IPv4 and IPv6, checked with node:net's BlockList. IPv4-mapped IPv6 peers
 * (`::ffff:127.0.0.1`) are checked as IPv4. Used by the portal API and /metrics.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from './errors.js';

/** Parses entries such as `127.0.0.0/8`, `::1/128` or `10.1.2.3`; a bad one is a ConfigError on `key`. */
export function blockListOf(entries: string[], key: string): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/');
    if (!isIPv4(addr!) && !isIPv6(addr!)) throw new ConfigError(key, `${e} is not an address or CIDR block`);
    const type = isIPv6(addr!) ? 'ipv6' : 'ipv4';
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) throw new ConfigError(key, `${e} has a bad prefix length`);
    list.addSubnet(addr!, prefix, type);
  }
  return list;
}

/** Is `addr` (a socket's remote address; IPv4-mapped IPv6 counts as IPv4) in the list? */
export function addressAllowed(list: BlockList, address: string): boolean {
  const addr = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIPv4(addr)) return list.check(addr, 'ipv4');
  if (isIPv6(addr)) return list.check(addr, 'ipv6');
  return false;
}
