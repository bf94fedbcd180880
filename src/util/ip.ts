/** IP address helpers built on node:net (BlockList does the CIDR matching). */
import { BlockList, isIP } from 'node:net';

/** Parses `10.0.0.0/8`, `::1`, `192.168.1.7` into a family, address and prefix, or undefined. */
export function parseCidr(
  text: string,
): { family: 'ipv4' | 'ipv6'; address: string; prefix: number } | undefined {
  const [address = '', prefixText, ...rest] = text.split('/');
  if (rest.length > 0) return undefined;
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) return undefined;
  return { family: v === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

/** A matcher for a list of CIDR blocks; `::ffff:a.b.c.d` matches IPv4 blocks. */
export function createCidrMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  if (cidrs.length === 0) return () => false;
  const list = new BlockList();
  for (const c of cidrs) {
    const parsed = parseCidr(c);
    if (parsed) list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return (ip) => {
    const plain = unmapIpv4(ip);
    return list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  };
}

/** `::ffff:192.0.2.1` → `192.0.2.1`; anything else unchanged. */
export function unmapIpv4(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

const PRIVATE = createCidrMatcher([
  '127.0.0.0/8',
  '::1/128',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  'fc00::/7',
  'fe80::/10',
]);
const LOOPBACK = createCidrMatcher(['127.0.0.0/8', '::1/128']);

/**
 * Whether traffic to `host` stays on this machine (`loopbackOnly`) or on a
 * private network. Host names other than localhost count as public.
 */
export function isPrivateOrLoopbackHost(host: string, loopbackOnly = false): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (isIP(h) === 0) return false;
  return loopbackOnly ? LOOPBACK(h) : PRIVATE(h);
}
