/**
 * The TLS parts of the config schema (TypeBox) and `compileTls`, which turns
 * them into frozen settings and lists what a schema cannot check.
 *
 * Where they go in the config:
 * - `listen.tls` ({@link ListenTlsSchema}) and `listen.http_redirect` ({@link HttpRedirectSchema})
 * - `allow_insecure` ({@link AllowInsecureSchema}) at the top level
 * - `upstreams.<name>.tls` ({@link UpstreamTlsSchema})
 * - `routes[].mtls` ({@link RouteMtlsSchema})
 */
import { isAbsolute, resolve } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { Duration, SecretRef, Size, section, strict } from '../config/schema-kit.js';
import { createHostCheck, normalizeHostPattern, parseHost } from '../request/host.js';
import { parseDuration, parseSize } from '../util/units.js';
import type {
  ClientAuthSettings,
  HstsSettings,
  Http2Settings,
  RouteMtlsSettings,
  TlsListenerSettings,
  TlsSettings,
  UpstreamTlsSettings,
} from './types.js';

const Path = (description: string) =>
  Type.String({
    minLength: 1,
    description,
    expected: 'a file path (relative paths start at the config file)',
  });

const SNI_NAME_PATTERN =
  '^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$';

export const CertificateSchema = strict(
  {
    cert: Path('PEM file with the certificate, followed by its intermediates.'),
    key: Path('PEM file with the private key (mode 0600).'),
    passphrase: Type.Optional(SecretRef('Passphrase of an encrypted key.')),
    names: Type.Optional(
      Type.Array(
        Type.String({
          pattern: SNI_NAME_PATTERN,
          description: 'A host name, or *.domain for one label.',
          expected: 'a host name such as api.example.com or *.example.com',
        }),
        {
          minItems: 1,
          uniqueItems: true,
          description: "SNI names this certificate is served for; default: the certificate's DNS names.",
        },
      ),
    ),
  },
  'A certificate the listener presents.',
);

export const ClientAuthSchema = section(
  {
    mode: Type.Union([Type.Literal('off'), Type.Literal('optional'), Type.Literal('required')], {
      default: 'off',
      description:
        'Client certificates (mutual TLS): off; optional (verified when sent, routes with mtls: required refuse requests without one); required (the handshake fails without a valid one).',
    }),
    ca: Type.Optional(
      Type.Array(Path('PEM file with one or more CA certificates.'), {
        minItems: 1,
        description: 'CAs client certificates must chain to.',
      }),
    ),
    principal: Type.Union([Type.Literal('fingerprint'), Type.Literal('subject'), Type.Literal('san')], {
      default: 'fingerprint',
      description:
        'Principal id of a certificate: fingerprint (sha256:<hex> of the certificate), subject (its single CN) or san (its first URI, DNS or email name, e.g. a SPIFFE id).',
    }),
    token_binding: Type.Union([Type.Literal('if_present'), Type.Literal('required')], {
      default: 'if_present',
      description:
        'RFC 8705 certificate-bound access tokens: if_present checks tokens that carry cnf.x5t#S256; required refuses tokens that do not.',
    }),
  },
  'Mutual TLS on the public listener.',
);

export const HstsSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Send Strict-Transport-Security on HTTPS responses.',
    }),
    max_age: Duration('How long browsers must use HTTPS only.', '365d'),
    include_subdomains: Type.Boolean({ default: true, description: 'Apply to every subdomain too.' }),
    preload: Type.Boolean({
      default: false,
      description:
        'Ask to be preloaded by browsers (needs max_age of a year or more and include_subdomains).',
    }),
  },
  'HTTP Strict Transport Security (RFC 6797).',
);

export const Http2Schema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description:
        'Offer HTTP/2 (ALPN h2) next to HTTP/1.1 on the TLS listener; false offers http/1.1 only, and a client that speaks only h2 is refused in the handshake.',
    }),
    max_concurrent_streams: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 100,
      description:
        'Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with RST_STREAM REFUSED_STREAM.',
    }),
    max_header_list_size: Size(
      'Largest header list of one request, decoded (SETTINGS_MAX_HEADER_LIST_SIZE): bounds CONTINUATION floods; a larger one resets the stream.',
      '16kb',
    ),
    max_resets_per_second: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 100,
      description:
        'Rapid reset (CVE-2023-44487): streams of one connection reset before their response was sent, per second; more close the connection with GOAWAY ENHANCE_YOUR_CALM.',
    }),
    max_control_frames_per_second: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 50,
      description:
        'PING and SETTINGS frames one connection may send per second; more close it with GOAWAY ENHANCE_YOUR_CALM.',
    }),
    max_session_memory: Size(
      'Memory one connection may hold in HTTP/2 state and buffers (header tables, frames waiting to be sent); past it new streams are refused, and a client that never opens its flow-control window cannot grow it further.',
      '10mb',
    ),
    idle_timeout: Duration(
      'An HTTP/2 connection with no frame in either direction for this long is closed.',
      '30s',
    ),
    stream_idle_timeout: Duration(
      'A stream with no frame in either direction for this long (a client that never opens its flow-control window, or sends its body too slowly) is reset with CANCEL.',
      '60s',
    ),
  },
  'HTTP/2 on the TLS listener, and the limits that bound the known HTTP/2 attacks.',
);

export const ListenTlsSchema = strict(
  {
    enabled: Type.Boolean({ default: true, description: 'Serve HTTPS on the public listener.' }),
    certificates: Type.Array(CertificateSchema, {
      minItems: 1,
      description:
        'Certificates, chosen by SNI; the first one also answers clients that send no or an unknown name.',
    }),
    profile: Type.Union([Type.Literal('intermediate'), Type.Literal('modern')], {
      default: 'intermediate',
      description:
        'Mozilla profile: intermediate (TLS 1.2 and 1.3, ECDHE with AEAD suites only) or modern (TLS 1.3 only).',
    }),
    handshake_timeout: Duration('Time allowed for the TLS handshake.', '10s'),
    session_tickets: Type.Boolean({
      default: true,
      description: 'Offer session resumption with tickets whose key rotates.',
    }),
    ticket_key_rotation: Duration('How often the session ticket key is replaced (and a ticket lives).', '1h'),
    expiry_warning: Duration('Start warning this long before a certificate expires.', '30d'),
    watch: Type.Boolean({
      default: true,
      description: 'Reload the certificates when their files change (SIGHUP reloads them too).',
    }),
    client_auth: Type.Optional(ClientAuthSchema),
    hsts: Type.Optional(HstsSchema),
    http2: Type.Optional(Http2Schema),
  },
  'HTTPS on the public listener.',
);

export const HttpRedirectSchema = strict(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Listen on plain HTTP and answer every request with a 308 redirect to HTTPS.',
    }),
    host: Type.Optional(Type.String({ minLength: 1, description: 'Address; default: listen.host.' })),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 80,
      description: 'Port of the plain-HTTP listener.',
    }),
    https_port: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description: 'Port in the redirect URL, when clients reach HTTPS on another port than listen.port.',
      }),
    ),
    canonical_host: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9.-]+$',
        description:
          'Redirect to this host name whatever Host the request names (no port: https_port is added). Without it, the redirect goes to the Host of the request only if that Host is well formed and allowed by listen.hosts; any other request gets 400 and nothing it sent is reflected.',
        expected: 'a host name such as api.example.com',
      }),
    ),
  },
  'A plain-HTTP listener that only redirects to HTTPS; it never serves the API.',
);

export const AllowInsecureSchema = section(
  {
    tls_disabled: Type.Boolean({
      default: false,
      description:
        'Production only: allow the public listener without TLS (e.g. behind a TLS-terminating proxy). Warned at every start.',
    }),
    self_signed: Type.Boolean({
      default: false,
      description:
        'Production only: allow a self-signed or development-CA certificate. Warned at every start.',
    }),
  },
  'Knowing exceptions to what production mode refuses.',
);

export const UpstreamTlsSchema = strict(
  {
    verify: Type.Boolean({
      default: true,
      description:
        'Verify the certificate chain and host name. false accepts any certificate, so anyone on the path can read and change the traffic: warned at every start.',
    }),
    ca: Type.Optional(Path('PEM CA bundle to verify against, instead of the bundled public roots.')),
    pin_sha256: Type.Optional(
      Type.Array(
        Type.String({
          pattern: '^[A-Za-z0-9+/]{43}=$',
          description: 'Base64 SHA-256 of a SubjectPublicKeyInfo.',
          expected: 'a base64 SHA-256 hash (44 characters ending in "=")',
        }),
        {
          minItems: 1,
          description:
            'Accept only these public keys (leaf, intermediate or root); `portcullis cert pin FILE` prints one. List the next key before rotating.',
        },
      ),
    ),
    client_cert: Type.Optional(Path('PEM certificate presented to an upstream that requires mTLS.')),
    client_key: Type.Optional(Path('PEM key of client_cert.')),
    client_key_passphrase: Type.Optional(SecretRef('Passphrase of an encrypted client_key.')),
    servername: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9.-]+$',
        description: "SNI name and the name the certificate must match; default: the URL's host.",
        expected: 'a host name',
      }),
    ),
  },
  'TLS to this upstream (https:// URLs only).',
);

export const RouteMtlsSchema = Type.Union(
  [
    Type.Literal('required'),
    Type.Literal('optional'),
    strict(
      {
        mode: Type.Union([Type.Literal('required'), Type.Literal('optional')], {
          description: 'required: refuse requests without a verified client certificate.',
        }),
        ca: Type.Array(Path('PEM file with CA certificates.'), {
          minItems: 1,
          description: 'Accept only certificates from these CAs on this route.',
        }),
      },
      'Client certificates on this route, from specific CAs.',
    ),
  ],
  {
    description:
      'Client certificates on this route: required, optional, or {mode, ca} to accept only some CAs. Needs listen.tls.',
    expected: '"required", "optional" or a mapping with mode and ca',
  },
);

export type RawListenTls = Static<typeof ListenTlsSchema>;
export type RawHttpRedirect = Static<typeof HttpRedirectSchema>;
export type RawAllowInsecure = Static<typeof AllowInsecureSchema>;
export type RawUpstreamTls = Static<typeof UpstreamTlsSchema>;
export type RawRouteMtls = Static<typeof RouteMtlsSchema>;

/** The parts of a validated config (defaults applied, secrets resolved) that `compileTls` reads. */
export interface RawTlsInput {
  mode: 'development' | 'production';
  listen?: {
    host?: string;
    port?: number;
    /** `listen.hosts`, the allow-list of Host names the canonical host must be on. */
    hosts?: readonly string[];
    tls?: RawListenTls;
    http_redirect?: RawHttpRedirect;
  };
  allow_insecure?: RawAllowInsecure;
  upstreams: Readonly<Record<string, { url: string; tls?: RawUpstreamTls }>>;
  routes: readonly { mtls?: RawRouteMtls }[];
}

/** A problem (or a warning) located by its YAML path, for the config loader to report. */
export interface TlsIssue {
  path: (string | number)[];
  message: string;
}

export interface CompiledTls {
  settings: TlsSettings;
  /** Nothing may start while this is not empty. */
  issues: TlsIssue[];
  /** Valid but insecure on purpose: to be logged at every start. */
  warnings: TlsIssue[];
}

const YEAR_SECONDS = 31_536_000;

function loopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * Compiles the TLS settings. Pure: reads no file (files are read when the
 * listener and upstream pools are built). `baseDir` resolves relative paths
 * (the config file's folder).
 */
export function compileTls(raw: RawTlsInput, options: { baseDir: string }): CompiledTls {
  const issues: TlsIssue[] = [];
  const warnings: TlsIssue[] = [];
  const path = (p: string) => (isAbsolute(p) ? p : resolve(options.baseDir, p));
  const production = raw.mode === 'production';
  const allow = {
    tlsDisabled: raw.allow_insecure?.tls_disabled ?? false,
    selfSigned: raw.allow_insecure?.self_signed ?? false,
  };
  const tls = raw.listen?.tls;
  const enabled = tls !== undefined && tls.enabled !== false;
  const listenHost = raw.listen?.host ?? '0.0.0.0';

  if (!enabled) {
    if (production && !allow.tlsDisabled) {
      issues.push({
        path: ['listen', 'tls'],
        message:
          'expected TLS in production: configure listen.tls, or set allow_insecure.tls_disabled: true if a proxy in front terminates TLS',
      });
    } else if (production) {
      warnings.push({
        path: ['allow_insecure', 'tls_disabled'],
        message: 'the public listener serves plain HTTP in production (allow_insecure.tls_disabled)',
      });
    } else if (!loopback(listenHost)) {
      warnings.push({
        path: ['listen', 'host'],
        message: `the public listener on ${listenHost} serves plain HTTP; configure listen.tls (portcullis cert dev makes a development certificate)`,
      });
    }
  }
  if (production && allow.selfSigned) {
    warnings.push({
      path: ['allow_insecure', 'self_signed'],
      message:
        'self-signed and development-CA certificates are accepted in production (allow_insecure.self_signed)',
    });
  }
  if (!production && (allow.tlsDisabled || allow.selfSigned)) {
    warnings.push({
      path: ['allow_insecure'],
      message: 'allow_insecure only has an effect in production mode',
    });
  }

  // Routes first: the listener must ask for certificates, and trust their CAs, if any route needs them.
  const listenerCa = (tls?.client_auth?.ca ?? []).map(path);
  const clientMode = tls?.client_auth?.mode ?? 'off';
  const routeCas: string[] = [];
  const routes: (RouteMtlsSettings | undefined)[] = raw.routes.map((r, i) => {
    if (r.mtls === undefined) return undefined;
    const settings: RouteMtlsSettings =
      typeof r.mtls === 'string'
        ? { mode: r.mtls, caFiles: [] }
        : { mode: r.mtls.mode, caFiles: r.mtls.ca.map(path) };
    if (!enabled) {
      issues.push({
        path: ['routes', i, 'mtls'],
        message: 'expected listen.tls: client certificates need HTTPS',
      });
    } else if (settings.caFiles.length === 0 && listenerCa.length === 0) {
      issues.push({
        path: ['routes', i, 'mtls'],
        message: 'expected a CA: set mtls.ca on the route or listen.tls.client_auth.ca',
      });
    }
    routeCas.push(...settings.caFiles);
    return Object.freeze({ ...settings, caFiles: Object.freeze(settings.caFiles) });
  });

  let listener: TlsListenerSettings | undefined;
  if (enabled && tls) {
    if (clientMode !== 'off' && listenerCa.length === 0) {
      issues.push({
        path: ['listen', 'tls', 'client_auth'],
        message: `expected ca: client_auth.mode ${clientMode} needs the CA files client certificates chain to`,
      });
    }
    const clientAuth: ClientAuthSettings = {
      mode: clientMode,
      request: clientMode !== 'off' || routeCas.length > 0 || routes.some((r) => r !== undefined),
      caFiles: [...new Set([...listenerCa, ...routeCas])],
      principal: tls.client_auth?.principal ?? 'fingerprint',
      tokenBinding: tls.client_auth?.token_binding ?? 'if_present',
    };
    let hsts: HstsSettings | undefined;
    const rawHsts = tls.hsts;
    if (rawHsts?.enabled !== false) {
      hsts = {
        maxAgeSeconds: Math.floor(parseDuration(rawHsts?.max_age ?? '365d') / 1000),
        includeSubdomains: rawHsts?.include_subdomains ?? true,
        preload: rawHsts?.preload ?? false,
      };
      if (hsts.preload && (hsts.maxAgeSeconds < YEAR_SECONDS || !hsts.includeSubdomains)) {
        issues.push({
          path: ['listen', 'tls', 'hsts', 'preload'],
          message:
            'expected max_age of at least 365d and include_subdomains: true, which preload lists require',
        });
      }
    }
    const rawH2 = tls.http2;
    let http2: Http2Settings | undefined;
    if (rawH2?.enabled !== false) {
      const memory = parseSize(rawH2?.max_session_memory ?? '10mb');
      if (memory < 1024 * 1024) {
        issues.push({
          path: ['listen', 'tls', 'http2', 'max_session_memory'],
          message: 'expected at least 1mb',
        });
      }
      http2 = {
        maxConcurrentStreams: rawH2?.max_concurrent_streams ?? 100,
        maxHeaderListSize: parseSize(rawH2?.max_header_list_size ?? '16kb'),
        maxResetsPerSecond: rawH2?.max_resets_per_second ?? 100,
        maxControlFramesPerSecond: rawH2?.max_control_frames_per_second ?? 50,
        maxSessionMemoryMb: Math.max(1, Math.floor(memory / (1024 * 1024))),
        idleTimeoutMs: parseDuration(rawH2?.idle_timeout ?? '30s'),
        streamIdleTimeoutMs: parseDuration(rawH2?.stream_idle_timeout ?? '60s'),
      };
    }
    const rotation = parseDuration(tls.ticket_key_rotation ?? '1h');
    if (rotation < 60_000) {
      issues.push({ path: ['listen', 'tls', 'ticket_key_rotation'], message: 'expected at least 1m' });
    }
    listener = {
      certificates: tls.certificates.map((c) => ({
        cert: path(c.cert),
        key: path(c.key),
        passphrase: c.passphrase,
        names: c.names?.map((n) => n.toLowerCase()),
      })),
      profile: tls.profile ?? 'intermediate',
      handshakeTimeoutMs: parseDuration(tls.handshake_timeout ?? '10s'),
      sessionTickets: tls.session_tickets ?? true,
      ticketKeyRotationMs: rotation,
      expiryWarningMs: parseDuration(tls.expiry_warning ?? '30d'),
      watch: tls.watch ?? true,
      clientAuth,
      hsts,
      http2,
      selfSigned: !production ? 'allow' : allow.selfSigned ? 'warn' : 'refuse',
    };
  }

  let redirect: TlsSettings['redirect'];
  const rawRedirect = raw.listen?.http_redirect;
  if (rawRedirect && rawRedirect.enabled !== false) {
    const httpsPort = rawRedirect.https_port ?? raw.listen?.port ?? 443;
    if (!enabled) {
      issues.push({
        path: ['listen', 'http_redirect'],
        message: 'expected listen.tls: a redirect to HTTPS needs an HTTPS listener',
      });
    } else if (rawRedirect.port !== 0 && rawRedirect.port === raw.listen?.port) {
      issues.push({
        path: ['listen', 'http_redirect', 'port'],
        message: 'expected a port other than listen.port',
      });
    }
    let canonicalHost: string | undefined;
    if (rawRedirect.canonical_host !== undefined) {
      const at = ['listen', 'http_redirect', 'canonical_host'];
      const parsed = parseHost(rawRedirect.canonical_host);
      if (parsed === undefined || parsed.port !== undefined) {
        issues.push({
          path: at,
          message:
            'expected a host name such as api.example.com (labels of letters, digits and inner hyphens) or an IPv4 address, without a port',
        });
      } else {
        canonicalHost = parsed.hostname;
        const allowed = raw.listen?.hosts;
        // Entries that do not parse are reported by the loader; only a valid list is compared with.
        if (allowed?.every((h) => normalizeHostPattern(h) !== undefined)) {
          if (!createHostCheck(allowed)(canonicalHost)) {
            issues.push({
              path: at,
              message: `expected a host listen.hosts allows: requests redirected to ${canonicalHost} would be refused`,
            });
          }
        }
      }
    }
    redirect = {
      host: rawRedirect.host ?? listenHost,
      port: rawRedirect.port ?? 80,
      httpsPort,
      canonicalHost,
    };
  }

  const upstreams: Record<string, UpstreamTlsSettings> = {};
  for (const [name, u] of Object.entries(raw.upstreams)) {
    const at = ['upstreams', name, 'tls'];
    const https = u.url.startsWith('https://');
    const t = u.tls;
    if (!https) {
      if (t !== undefined)
        issues.push({ path: at, message: 'expected an https:// url: tls settings apply to HTTPS only' });
      continue;
    }
    const verify = t?.verify ?? true;
    const pins = t?.pin_sha256 ?? [];
    if (!verify) {
      warnings.push({
        path: [...at, 'verify'],
        message: `TLS verification to upstream ${name} is off: anyone on the network path can impersonate it`,
      });
      if (pins.length > 0) {
        issues.push({
          path: [...at, 'pin_sha256'],
          message:
            'expected verify: true: pins are checked on a verified chain; give a self-signed upstream as ca instead',
        });
      }
    }
    if ((t?.client_cert === undefined) !== (t?.client_key === undefined)) {
      issues.push({ path: at, message: 'expected client_cert and client_key together' });
    }
    upstreams[name] = Object.freeze({
      verify,
      caFile: t?.ca === undefined ? undefined : path(t.ca),
      pinSha256: Object.freeze([...pins]),
      clientCertFile: t?.client_cert === undefined ? undefined : path(t.client_cert),
      clientKeyFile: t?.client_key === undefined ? undefined : path(t.client_key),
      clientKeyPassphrase: t?.client_key_passphrase,
      servername: t?.servername,
    });
  }

  const settings: TlsSettings = deepFreeze({
    listener,
    redirect,
    allowInsecure: allow,
    upstreams,
    routes,
  });
  return { settings, issues, warnings };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
