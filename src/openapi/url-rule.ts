/**
 * URL-valued inputs (OWASP API7:2023, server-side request forgery): a string
 * Schema Object may say which URLs a client may hand the API, for the
 * callbacks, webhooks and image links the upstream will fetch.
 *
 *   type: string
 *   format: uri
 *   x-portcullis-url: { schemes: [https], deny_private: true, allow_hosts: [hooks.example.com, "*.cdn.example.com"] }
 *
 * The value is parsed as browsers and Node's fetch parse it (WHATWG `URL`),
 * which turns every IPv4 spelling (`2130706433`, `0177.0.0.1`, `0x7f.1`,
 * `127.1`, percent-encoded or full-width digits) into dotted decimal and
 * IPv6 into its compressed form; the address is then matched with
 * `node:net`'s `BlockList`, IPv4-mapped, IPv4-compatible, NAT64 and 6to4
 * IPv6 included. A URL with user information (`https://allowed.com@evil/`)
 * is always refused: it is a spoofing trick, and a credential in a URL leaks.
 *
 * A host NAME that resolves to a private address cannot be decided without
 * DNS (and the answer may change between this check and the upstream's
 * fetch: DNS rebinding). `deny_private` refuses the names known to be
 * internal (`localhost`, `*.localhost`, `*.internal`, `metadata.google.internal`,
 * names without a dot); for the rest, `allow_hosts` is the control.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export const URL_RULE = 'x-portcullis-url';

export interface UrlRule {
  /** Allowed URL schemes, lower case, without the colon. Default: [https]. */
  readonly schemes?: readonly string[];
  /** Refuse private, loopback, link-local, unique-local, CGNAT, multicast, reserved and metadata addresses. Default: true. */
  readonly deny_private?: boolean;
  /** Host names the URL may name (`api.example.com`, or `*.example.com` for any one label more). Default: any. */
  readonly allow_hosts?: readonly string[];
}

const RULE_KEYS = ['schemes', 'deny_private', 'allow_hosts'];
const SCHEME = /^[a-z][a-z0-9+.-]*$/;
const HOST_LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const ALLOWED_HOST = new RegExp(`^(?:\\*\\.)?${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);

/** What is wrong with an `x-portcullis-url` value, or undefined when it is well formed. */
export function urlRuleIssue(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return 'expected a mapping such as { schemes: [https], deny_private: true, allow_hosts: [api.example.com] }';
  }
  const rule = value as Record<string, unknown>;
  const unknown = Object.keys(rule).filter((k) => !RULE_KEYS.includes(k));
  if (unknown.length > 0) return `unknown key "${unknown[0]}"; expected one of: ${RULE_KEYS.join(', ')}`;
  if (rule.schemes !== undefined) {
    const s = rule.schemes;
    if (!Array.isArray(s) || s.length === 0 || !s.every((v) => typeof v === 'string' && SCHEME.test(v))) {
      return 'schemes: expected a non-empty list of lower-case URL schemes without the colon, e.g. [https]';
    }
  }
  if (rule.deny_private !== undefined && typeof rule.deny_private !== 'boolean') {
    return 'deny_private: expected true or false';
  }
  if (rule.allow_hosts !== undefined) {
    const h = rule.allow_hosts;
    if (
      !Array.isArray(h) ||
      h.length === 0 ||
      !h.every((v) => typeof v === 'string' && (ALLOWED_HOST.test(v) || isIPv4(v) || isBracketedIpv6(v)))
    ) {
      return 'allow_hosts: expected a non-empty list of lower-case host names without scheme or port (api.example.com, *.example.com), or IP addresses';
    }
  }
  return undefined;
}

function isBracketedIpv6(v: string): boolean {
  return v.startsWith('[') && v.endsWith(']') && isIPv6(v.slice(1, -1));
}

const PRIVATE = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the local host on most systems
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT (Alibaba's metadata 100.100.100.200 is here)
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local: AWS, GCP, Azure, OpenStack metadata 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments (Oracle Cloud metadata 192.0.0.192)
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255
] as const) {
  PRIVATE.addSubnet(net, prefix, 'ipv4');
}
PRIVATE.addAddress('168.63.129.16', 'ipv4'); // Azure's wire server
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local (AWS's IPv6 metadata fd00:ec2::254 is here)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  PRIVATE.addSubnet(net, prefix, 'ipv6');
}

/** Host names that are internal whatever they resolve to. */
const PRIVATE_NAMES = new Set([
  'localhost',
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
  'instance-data',
]);
const PRIVATE_SUFFIXES = ['.localhost', '.internal', '.local', '.home.arpa', '.in-addr.arpa', '.ip6.arpa'];

/** The 8 groups of an IPv6 address (as `URL` writes it: compressed, no embedded dotted IPv4, no zone). */
function ipv6Groups(address: string): number[] | undefined {
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

const dotted = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/** IPv4 addresses an IPv6 address carries: compatible (::a.b.c.d), mapped, NAT64 (64:ff9b::/96), 6to4 (2002::/16). */
function embeddedIpv4(address: string): string[] {
  const g = ipv6Groups(address);
  if (g === undefined) return [];
  const out: string[] = [];
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && (g[5] === 0 || g[5] === 0xffff)) out.push(dotted(g[6]!, g[7]!));
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) out.push(dotted(g[6]!, g[7]!));
  if (g[0] === 0x2002) out.push(dotted(g[1]!, g[2]!));
  return out;
}

/** Whether an IP address (IPv6 without brackets) is one an outside client should never make the API call. */
export function isPrivateAddress(address: string): boolean {
  if (isIPv4(address)) return PRIVATE.check(address, 'ipv4');
  if (!isIPv6(address)) return false;
  if (PRIVATE.check(address, 'ipv6')) return true;
  return embeddedIpv4(address).some((v4) => PRIVATE.check(v4, 'ipv4'));
}

function hostAllowed(host: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => {
    if (!a.startsWith('*.')) return a === host;
    const suffix = a.slice(1);
    return (
      host.endsWith(suffix) && !host.slice(0, -suffix.length).includes('.') && host.length > suffix.length
    );
  });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const DIFFERENTIAL = /[\u0000-\u0020\u007f\\]/;
/** Schemes whose hosts WHATWG parses as hosts (IPv4 spellings normalized). */
const SPECIAL_SCHEMES = new Set(['http:', 'https:', 'ws:', 'wss:', 'ftp:']);

/** Why a URL is refused by the rule (a short reason, never the value), or undefined when it passes. */
export type UrlCheck = (value: string) => string | undefined;

/**
 * Compiles a rule into a check.
 *
 * @throws Error when the rule is malformed (see {@link urlRuleIssue}).
 */
export function compileUrlRule(value: unknown): UrlCheck {
  const issue = urlRuleIssue(value);
  if (issue !== undefined) throw new Error(`${URL_RULE}: ${issue}`);
  const rule = value as UrlRule;
  const schemes = new Set((rule.schemes ?? ['https']).map((s) => `${s}:`));
  const denyPrivate = rule.deny_private ?? true;
  const allowHosts = rule.allow_hosts;
  return (text) => {
    // WHATWG parsing drops tabs, newlines and surrounding spaces and reads "\\" as "/"; the
    // upstream's URL library may not (a parser differential): such text is refused outright.
    if (DIFFERENTIAL.test(text)) return 'whitespace, control characters or backslashes';
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return 'not an absolute URL';
    }
    if (!schemes.has(url.protocol)) return 'scheme not allowed';
    if (url.username !== '' || url.password !== '') return 'user information in the URL';
    let hostname = url.hostname;
    if (!SPECIAL_SCHEMES.has(url.protocol) && hostname !== '') {
      // Hosts of other schemes are opaque to WHATWG (no IPv4 normalization): read it as http would.
      try {
        hostname = new URL(`http://${url.host}/`).hostname;
      } catch {
        return 'not an absolute URL';
      }
    }
    let host = hostname.toLowerCase();
    while (host.endsWith('.')) host = host.slice(0, -1);
    if (host === '') return 'no host';
    if (allowHosts !== undefined && !hostAllowed(host, allowHosts)) return 'host not allowed';
    if (!denyPrivate) return undefined;
    const literal = host.startsWith('[') ? host.slice(1, -1) : host;
    if (isIPv4(literal) || isIPv6(literal)) return isPrivateAddress(literal) ? 'private address' : undefined;
    if (PRIVATE_NAMES.has(host) || PRIVATE_SUFFIXES.some((s) => host.endsWith(s)))
      return 'internal host name';
    // A name without a dot is completed by the resolver's search domains: an internal host.
    if (!host.includes('.')) return 'internal host name';
    return undefined;
  };
}
