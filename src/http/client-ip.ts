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
