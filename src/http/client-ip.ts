/**
 * Finds the client's address. X-Forwarded-For is only believed hop by hop
 * from the right while each hop is a trusted proxy, so a client cannot
 * choose its own address by sending the header.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { createCidrMatcher, unmapIpv4 } from '../util/ip.js';

export interface ClientAddress {
  /** The client as far as the trusted proxies vouch for it. */
  ip: string;
  /** The X-Forwarded-For value to send upstream. */
  forwardedFor: string;
  /** Whether the direct peer is a trusted proxy (its X-Forwarded-Proto/-Host are believed). */
  peerTrusted: boolean;
}

export function createClientIpResolver(
  trustedProxies: readonly string[],
): (req: IncomingMessage) => ClientAddress {
  const trusted = createCidrMatcher(trustedProxies);
  return (req) => {
    const peer = unmapIpv4(req.socket.remoteAddress ?? '');
    if (trustedProxies.length === 0 || !trusted(peer))
      return { ip: peer, forwardedFor: peer, peerTrusted: false };
    const raw = req.headers['x-forwarded-for'];
    const header = Array.isArray(raw) ? raw.join(', ') : raw;
    if (header === undefined) return { ip: peer, forwardedFor: peer, peerTrusted: true };
    const hops = header.split(',').map((h) => unmapIpv4(h.trim()));
    let ip = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (isIP(hop) === 0) break;
      ip = hop;
      if (!trusted(hop)) break;
    }
    return { ip, forwardedFor: `${header}, ${peer}`, peerTrusted: true };
  };
}

/** The IPv6 prefix length clients are keyed by when nothing else is configured. */
export const DEFAULT_IPV6_PREFIX = 64;

/**
 * The key of a client address wherever addresses are counted or matched:
 * brute-force lockout, blocks, anomaly detection and rate limits all key
 * through here, so they agree. IPv4 as is (IPv4-mapped IPv6 unmapped), IPv6
 * as its `/prefix` network (`2001:db8:1:2::/64`), so that one client cannot
 * rotate through the 2^64 addresses of its own /64 to escape a count, and a
 * lockout or block of one address covers the network it came from.
 */
export function ipKey(ip: string, ipv6Prefix: number = DEFAULT_IPV6_PREFIX): string {
  if (isIP(ip) === 4) return ip;
  const groups = parseIpv6(ip);
  if (groups === undefined) return ip;
  // ::ffff:a.b.c.d in any spelling is an IPv4 client.
  if (groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, ipv6Prefix - i * 16));
    groups[i] = keep === 0 ? 0 : groups[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${groups.map((g) => g.toString(16)).join(':')}/${ipv6Prefix}`;
}

/** Eight 16-bit groups, or undefined when `text` is not an IPv6 address. A zone (`%eth0`) is dropped. */
export function parseIpv6(text: string): number[] | undefined {
  const zone = text.indexOf('%');
  const ip = zone === -1 ? text : text.slice(0, zone);
  if (isIP(ip) !== 6) return undefined;
  const [head = '', tail] = ip.split('::');
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(Number.parseInt(piece, 16));
    }
    return out;
  };
  const left = toGroups(head);
  const right = tail === undefined ? [] : toGroups(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
