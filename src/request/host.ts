/**
 * The Host header (and `:authority`), read strictly: RFC 9110 §7.2
 * `Host = uri-host [ ":" port ]` with `uri-host` from RFC 3986 §3.2.2, but
 * narrowed to what a real client sends for an API, so that nothing a caller
 * writes there can be read two ways by the gateway, a cache, a resolver or
 * the upstream (open redirects, cache and password-reset poisoning).
 *
 * Accepted:
 * - a DNS name: letters, digits and `-` in dot-separated labels of 1–63
 *   characters that neither start nor end with `-`, at most 253 characters,
 *   with one optional trailing dot (dropped: `example.com.` is `example.com`).
 *   Case-folded to lower case. No `_`, no other RFC 3986 sub-delims, no
 *   percent-encoding, no non-ASCII (IDNs come as `xn--` A-labels);
 * - an IPv4 address as a strict dotted quad (`192.0.2.1`): four decimal
 *   octets 0–255 without leading zeros. A name whose last label is numeric
 *   or `0x…` is refused unless it is such a quad, because resolvers and URL
 *   parsers read `127.1`, `0x7f.0.0.1`, `017.0.0.1` or `2130706433` as
 *   addresses (the WHATWG URL rule), and disagree with each other;
 * - an IPv6 address in brackets (`[2001:db8::1]`), valid for `node:net`
 *   `isIPv6`, without a zone id (`%25eth0`) and not IPvFuture (`[v1.x]`).
 *   Returned in the RFC 5952 text form, brackets kept (`[::1]`), as
 *   `URL.hostname` does;
 * - optionally `:port`, 1–65535 in decimal digits without leading zeros.
 *
 * Refused: userinfo (`@`), whitespace and control characters, a list (`,`),
 * `%`, `/`, `\`, `_`, an empty port (`host:`), and anything longer than a
 * valid host can be.
 */
import { isIPv6 } from 'node:net';

/** A Host header's parts: `hostname` lower case, trailing dot dropped, IPv6 in brackets. */
export interface ParsedHost {
  hostname: string;
  /** Undefined when the header names no port. */
  port: number | undefined;
}

/** Longest DNS name (RFC 1035 §2.3.4, in text form without the trailing dot). */
const MAX_NAME = 253;
/** Longest label. */
const MAX_LABEL = 63;
/** `[` + the longest IPv6 text (45) + `]` + `:65535`, or a 253-character name + `.` + `:65535`: a longer header cannot be valid. */
const MAX_HOST_HEADER = MAX_NAME + 1 + 6;

/** Every character any valid host may contain; anything else (`@`, space, `,`, `%`, `_`, non-ASCII…) is refused at once. */
const HOST_CHARS = /^[A-Za-z0-9.:[\]-]+$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const PORT = /^[1-9][0-9]{0,4}$/;
/** A last label some parser would read as a number (decimal, or `0x` hex, octal being decimal digits). */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;
const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

function parsePort(text: string): number | undefined {
  if (!PORT.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** A strict dotted quad, or undefined. */
function parseIPv4(text: string): string | undefined {
  const octets = text.split('.');
  if (octets.length !== 4) return undefined;
  for (const o of octets) if (!OCTET.test(o) || Number(o) > 255) return undefined;
  return text;
}

/** The bracketed, RFC 5952 form of an IPv6 literal (the text between the brackets), or undefined. */
function parseIPv6(inner: string): string | undefined {
  // isIPv6 accepts a zone id (`fe80::1%eth0`); HOST_CHARS has already refused `%`, this says it again.
  if (inner.includes('%') || !isIPv6(inner)) return undefined;
  try {
    return new URL(`http://[${inner}]/`).hostname;
  } catch {
    return undefined;
  }
}

/** A DNS name or a strict IPv4 address (no brackets, no port), lower case and without its trailing dot, or undefined. */
function parseName(text: string): string | undefined {
  const lower = text.toLowerCase();
  const trailingDot = lower.endsWith('.');
  const name = trailingDot ? lower.slice(0, -1) : lower;
  if (name.length === 0 || name.length > MAX_NAME) return undefined;
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length > MAX_LABEL || !LABEL.test(label)) return undefined;
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    // Read as an address by URL parsers and resolvers: only a strict quad, written plainly, is accepted.
    return trailingDot ? undefined : parseIPv4(name);
  }
  return name;
}

/**
 * Parses a Host header value strictly (see the module comment): its host
 * name and port, or undefined when it is not exactly one well-formed
 * `host [ ":" port ]`.
 */
export function parseHost(value: string): ParsedHost | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_HOST_HEADER) return undefined;
  if (!HOST_CHARS.test(value)) return undefined;
  let host: string;
  let portText: string | undefined;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0) return undefined;
    const rest = value.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
    const hostname = parseIPv6(value.slice(1, end));
    if (hostname === undefined) return undefined;
    host = hostname;
  } else {
    if (value.includes('[') || value.includes(']')) return undefined;
    const colon = value.indexOf(':');
    if (colon >= 0) {
      // A second colon: an IPv6 address without brackets, or garbage.
      if (value.indexOf(':', colon + 1) >= 0) return undefined;
      portText = value.slice(colon + 1);
    }
    const hostname = parseName(colon >= 0 ? value.slice(0, colon) : value);
    if (hostname === undefined) return undefined;
    host = hostname;
  }
  let port: number | undefined;
  if (portText !== undefined) {
    port = parsePort(portText);
    if (port === undefined) return undefined;
  }
  return { hostname: host, port };
}

/** Whether a parsed hostname is an IP address rather than a DNS name. */
function isIpHostname(hostname: string): boolean {
  return hostname.startsWith('[') || parseIPv4(hostname) !== undefined;
}

/**
 * The normal form of one allow-list entry, or undefined when it is not one:
 * - an exact host without a port: a DNS name (`api.example.com`), an IPv4
 *   address, or an IPv6 address with or without brackets (`::1`, `[::1]`);
 * - `*.` followed by a DNS name (`*.example.com`): a wildcard for exactly one
 *   more label, as in TLS certificates (RFC 6125 §6.4.3) and the SNI `names`
 *   of this config. `*.example.com` matches `a.example.com`, not
 *   `example.com` and not `a.b.example.com`; list those separately.
 */
export function normalizeHostPattern(entry: string): string | undefined {
  if (typeof entry !== 'string') return undefined;
  if (entry.startsWith('*.')) {
    const suffix = parseHost(entry.slice(2));
    if (suffix === undefined || suffix.port !== undefined || isIpHostname(suffix.hostname)) return undefined;
    return `*.${suffix.hostname}`;
  }
  const parsed = parseHost(isIPv6(entry) ? `[${entry}]` : entry);
  if (parsed === undefined || parsed.port !== undefined) return undefined;
  return parsed.hostname;
}

/**
 * A check of Host header values against an allow-list of exact names and
 * `*.domain` wildcards (see {@link normalizeHostPattern}; one label per
 * `*`). The header must parse ({@link parseHost}); its port is ignored and
 * the name is compared case-insensitively, without a trailing dot.
 *
 * An undefined or empty allow-list lets any well-formed Host through. A
 * missing (undefined) or malformed Host never passes.
 *
 * @throws TypeError when an entry is not a valid pattern (the config loader
 * reports them first).
 */
export function createHostCheck(
  allowed: readonly string[] | undefined,
): (host: string | undefined) => boolean {
  const exact = new Set<string>();
  /** `example.com` for `*.example.com`. */
  const wildcardParents = new Set<string>();
  for (const entry of allowed ?? []) {
    const pattern = normalizeHostPattern(entry);
    if (pattern === undefined)
      throw new TypeError(`not a host name or *.domain pattern: ${JSON.stringify(entry)}`);
    if (pattern.startsWith('*.')) wildcardParents.add(pattern.slice(2));
    else exact.add(pattern);
  }
  if (exact.size === 0 && wildcardParents.size === 0) {
    return (host) => host !== undefined && parseHost(host) !== undefined;
  }
  return (host) => {
    if (host === undefined) return false;
    const parsed = parseHost(host);
    if (parsed === undefined) return false;
    const name = parsed.hostname;
    if (exact.has(name)) return true;
    if (wildcardParents.size === 0 || isIpHostname(name)) return false;
    const dot = name.indexOf('.');
    return dot > 0 && wildcardParents.has(name.slice(dot + 1));
  };
}
