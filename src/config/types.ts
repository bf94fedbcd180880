import type { Static } from '@sinclair/typebox';
import type { AlertSettings, AnomalySettings, BlockSettings } from '../anomaly/schema.js';
import type { AuditSettings } from '../audit/schema.js';
import type { AuthorizeSchema, NetworkSchema } from '../authz/schema.js';
import type { ApiRouteSettings } from '../openapi/settings.js';
import type { RateLimitSettings, RouteRateLimits } from '../ratelimit/types.js';
import type { SecretScanningSettings } from '../secret-scanning/schema.js';
import type { TelemetrySettings } from '../telemetry/schema.js';
import type { TlsSettings } from '../tls/types.js';

/** The compiled, frozen configuration the gateway runs on: units parsed, references resolved. */

export interface CorsSettings {
  anyOrigin: boolean;
  origins: ReadonlySet<string>;
  allowMethods: string;
  /** Lower-cased request header names allowed cross-origin. */
  allowHeaders: readonly string[];
  exposeHeaders: string;
  credentials: boolean;
  maxAgeSeconds: number;
}

export interface RouteSettings extends ApiRouteSettings {
  /** Position in the config's `routes` list. */
  index: number;
  name: string;
  /** The path template as written (`/users/{id}`). */
  template: string;
  /** The same template in the router's syntax (`/users/:id`). */
  routerPath: string;
  params: readonly string[];
  /** Accepted methods; HEAD is added wherever GET is. */
  methods: readonly string[];
  upstream: string;
  /** `none` (public) or the accepted methods, in the order they are tried. */
  auth: 'none' | readonly AuthMethod[];
  /** Whether the API key may come in the query string. */
  apiKeyInQuery: boolean;
  /** `providers`: the token providers accepted, by name; undefined: any configured one. */
  providers?: readonly string[] | undefined;
  /** The route's policy as written (compiled by the authorize stage); undefined on public routes. */
  authorize: Static<typeof AuthorizeSchema> | undefined;
  /** The limits, quotas and concurrency limits that apply, names resolved. */
  rateLimits: RouteRateLimits | undefined;
  /** Bytes; Infinity when the route opts out of a limit. */
  bodyLimit: number;
  cacheControl: string;
  cors: CorsSettings | undefined;
}

export interface UpstreamSettings {
  name: string;
  /** `scheme://host:port`. */
  origin: string;
  /** Prepended to every request path; empty or `/base` without a trailing slash. */
  basePath: string;
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** `upstreams.<name>.max_connections_per_client`: undefined, no cap. */
  maxConnectionsPerClient?: number;
  /** `listen.ipv6_prefix`, to key IPv6 clients for the cap above. */
  clientIpv6Prefix?: number;
}

export interface ListenSettings {
  host: string;
  port: number;
  /** `listen.workers`, resolved: the number of processes serving the listener (1: no cluster). */
  workers: number;
  trustedProxies: readonly string[];
  /** `listen.ipv6_prefix`: IPv6 clients are keyed by this network (see `ipKey` in src/http/client-ip.ts). */
  ipv6Prefix: number;
  /**
   * `listen.hosts`: the Host names requests may name, normalized (lower case,
   * no trailing dot, IPv6 in brackets; `*.example.com` wildcards kept, one
   * label each). Undefined: any well-formed Host. Give it to
   * `createHostCheck` from src/request/host.ts.
   */
  hosts: readonly string[] | undefined;
  maxHeaderBytes: number;
  maxHeaders: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** `listen.limits.drain_timeout`: the grace period of a SIGTERM drain. */
  drainTimeoutMs: number;
  /** `listen.limits.write_timeout`: a client that takes no response bytes for this long is closed. */
  writeTimeoutMs: number;
  /** `listen.limits.write_buffer`: bytes buffered per client connection before the upstream is paused. */
  writeBufferBytes: number;
  /** `listen.limits.contended_write_timeout`: the write timeout while others wait for the same upstream. */
  contendedWriteTimeoutMs: number;
}

/** `admin.auth`: other ways in for admins. Roles are `viewer`, `operator` or `admin`. */
export interface AdminAuthSettings {
  jwt?:
    | {
        /** Names of `auth.jwt.providers`. */
        providers: readonly string[];
        /** A claim name or dotted path. */
        roleClaim: string;
        roles: Readonly<Record<string, 'viewer' | 'operator' | 'admin'>>;
      }
    | undefined;
  mtls?:
    | {
        principal: 'fingerprint' | 'subject' | 'san';
        roles: Readonly<Record<string, 'viewer' | 'operator' | 'admin'>>;
      }
    | undefined;
}

export interface GatewayConfig {
  /** Absolute path of the file this was loaded from. */
  file: string;
  mode: 'development' | 'production';
  listen: ListenSettings;
  admin: {
    enabled: boolean;
    host: string;
    port: number;
    /** The admin REST API (`/admin/…`). */
    api: { enabled: boolean; maxBodyBytes: number };
    /** HTTPS for the admin listener: absolute paths of the PEM files (and of the client CAs). */
    tls: { cert: string; key: string; clientCa?: string | undefined } | undefined;
    /** `admin.auth`: JWT and mTLS admins, besides admin tokens. */
    auth?: AdminAuthSettings | undefined;
  };
  store: { url: string | undefined; dataDir: string };
  log: {
    level: string;
    access: boolean;
    redact: readonly string[];
    /** `log.upstream_error_bodies`: log replaced upstream error bodies, truncated and redacted. */
    upstreamErrorBodies?: boolean;
  };
  upstreams: Readonly<Record<string, UpstreamSettings>>;
  routes: readonly RouteSettings[];
  auth: AuthSettings;
  authorization: { network: Static<typeof NetworkSchema> | undefined };
  /** HTTPS listener, redirect listener, upstream TLS and route mTLS. */
  tls: TlsSettings;
  rateLimit: RateLimitSettings;
  audit: AuditSettings;
  /** The API document the routes come from or are checked against, when there is one. */
  api: { file: string; title: string; operations: number } | undefined;
  anomaly: AnomalySettings;
  alerts: AlertSettings;
  blocks: BlockSettings;
  /** `secret_scanning`: the leaked-key receiver; undefined or disabled when off. */
  secretScanning?: SecretScanningSettings;
  /** `telemetry`: OpenTelemetry export; undefined or disabled when off. */
  telemetry?: TelemetrySettings;
}

export type AuthMethod = 'jwt' | 'introspection' | 'api_key' | 'mtls';

export interface JwtProviderSettings {
  name: string;
  issuer: string;
  audience: readonly string[];
  /** Undefined: discovered from `issuer`. */
  jwksUri: string | undefined;
  algorithms: readonly string[];
  /** The resolved secret for HS* algorithms. */
  hmacSecret: string | undefined;
  clockSkewSeconds: number;
  requireTyp: boolean;
  maxTokenBytes: number;
  scopesClaim: string;
  rolesClaim: string | undefined;
  tenantClaim: string | undefined;
  jwksCacheMs: number;
  jwksCooldownMs: number;
  jwksTimeoutMs: number;
}

export interface IntrospectionProviderSettings {
  name: string;
  endpoint: string;
  issuer: string | undefined;
  /** Accepted `aud` values; undefined: not checked. */
  audience?: readonly string[] | undefined;
  clientId: string;
  clientSecret: string;
  cacheTtlMs: number;
  inactiveCacheTtlMs: number;
  timeoutMs: number;
  onFailure: 401 | 503;
}

export interface ApiKeySettings {
  header: string;
  queryParam: string;
  /** The resolved pepper, or undefined for the generated one in the data folder. */
  pepper: string | undefined;
  cacheSize: number;
  cacheTtlMs: number;
  /** `auth.api_keys.imported_keys`: also accept keys brought in by `portcullis keys import`. */
  importedKeys?: boolean;
}

export interface IssuerSettings {
  issuer: string;
  audience: string;
  tokenTtlMs: number;
  /** The resolved master key (base64), or undefined for the generated one in the data folder. */
  masterKey: string | undefined;
  keyRotationMs: number;
  /** Per client IP on the issuer's endpoints, and per authenticated client id at the token endpoint (`auth.issuer.rate_limit`). */
  rateLimit: { count: number; periodMs: number };
}

export interface AuthSettings {
  jwt: { providers: readonly JwtProviderSettings[]; cacheSize: number } | undefined;
  introspection: { providers: readonly IntrospectionProviderSettings[] } | undefined;
  apiKeys: ApiKeySettings | undefined;
  issuer: IssuerSettings | undefined;
  identityHeaders: { subject: string; kind: string; scopes: string; roles: string; tenant: string };
  /** `auth.revocations`: the kill switch's feed. */
  revocations: { pollMs: number; retainMs: number };
  bruteForce: {
    enabled: boolean;
    /** Per (IP key, credential id). */
    maxFailures: number;
    /** Per IP key alone. */
    maxFailuresPerIp: number;
    /** Per credential id alone: past it, unproven attempts are throttled. */
    maxFailuresPerCredential: number;
    /** Verifications per second of a throttled credential id. */
    throttleRate: number;
    windowMs: number;
    lockoutMs: number;
    maxLockoutMs: number;
  };
  /** The methods configured at all (the issuer counts as jwt). */
  methods: readonly AuthMethod[];
}
