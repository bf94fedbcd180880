/**
 * The configuration schema, written once as code (TypeBox → JSON Schema).
 * It validates the YAML file, gives editors a JSON Schema
 * (`portcullis schema > portcullis.schema.json`) and its descriptions are the
 * configuration reference. Every object rejects unknown keys.
 */
import { type Static, Type } from '@sinclair/typebox';
import { AlertsSchema, AnomalySchema, BlocksSchema } from '../anomaly/schema.js';
import { AuditSchema } from '../audit/schema.js';
import { AuthorizationSchema, AuthorizeSchema } from '../authz/schema.js';
import { ApiSchema, RouteApiProperties } from '../openapi/schema.js';
import { RATE_PATTERN, RateLimitSchema, ROUTE_RATE_LIMIT_PROPERTIES } from '../ratelimit/schema.js';
import { SecretScanningSchema } from '../secret-scanning/schema.js';
import { TelemetrySchema } from '../telemetry/schema.js';
import {
  AllowInsecureSchema,
  HttpRedirectSchema,
  ListenTlsSchema,
  RouteMtlsSchema,
  UpstreamTlsSchema,
} from '../tls/schema.js';
import { Duration, SecretRef, Size, section, strict } from './schema-kit.js';

export { SECRET_REF_PATTERN, SecretRef } from './schema-kit.js';

const Port = (description: string, dflt: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, description, default: dflt });

const Cidr = Type.String({
  minLength: 2,
  description: 'An IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.0/8 or ::1.',
  expected: 'an IP address or CIDR block such as 10.0.0.0/8',
});

const Method = Type.Union(
  ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => Type.Literal(m)),
  { description: 'An HTTP method, upper case.' },
);

export const ListenerLimitsSchema = section(
  {
    max_header_bytes: Size('Largest total size of the request line and headers.', '16kb'),
    max_headers: Type.Integer({ minimum: 8, maximum: 1000, default: 100, description: 'Most header lines.' }),
    headers_timeout: Duration(
      'Time allowed to receive the complete request headers (slowloris defence).',
      '10s',
    ),
    request_timeout: Duration('Time allowed to receive the complete request, body included.', '60s'),
    keep_alive_timeout: Duration('How long an idle client connection stays open.', '5s'),
    body_limit: Size('Default largest request body, for routes that do not set their own.', '1mb'),
    drain_timeout: Duration(
      'On SIGTERM: longest the gateway waits for requests in flight before cutting them (they are counted). It exits as soon as none is left.',
      '10s',
    ),
    write_timeout: Duration(
      'Longest a client may take none of the response bytes waiting for it (it stopped reading): its connection is then closed and its upstream request aborted, which frees the upstream connection.',
      '10s',
    ),
    write_buffer: Size(
      'Response bytes buffered for one client connection before the upstream is paused for it. A response that fits is read whole from the upstream, whose connection is freed at once even if the client reads slowly or not at all. Memory bound: open client connections × this.',
      '64kb',
    ),
    contended_write_timeout: Duration(
      'The write_timeout that applies while other requests wait for a connection to the same upstream and the upstream connection of a client is paused because the client took none of its response: that client is closed and its upstream request aborted after this long, so a client that is not reading never holds an upstream connection others need for longer. A slow client that keeps reading is not cut. Never longer than write_timeout.',
      '500ms',
    ),
  },
  'Protocol limits on the public listener.',
);

export const ListenSchema = section(
  {
    host: Type.String({ default: '0.0.0.0', description: 'Address of the public listener.' }),
    port: Port('Port of the public listener (PORTCULLIS_PORT overrides it).', 8080),
    workers: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], {
      default: 1,
      description:
        'Processes serving the listener: 1, a number, or auto (one per core). Above 1, a primary process starts that many workers on the same port (node:cluster) and restarts any that dies; they share the store, and each keeps its own anomaly baselines and caches, as separate instances do. Rate limits stay exact: with rate_limit.backend: memory the primary process decides them for every worker (one IPC round trip per event-loop turn), and Redis works as with several instances. Brute-force failures counted by one worker count in all of them, so a lockout holds in every worker. Concurrency limits hold per worker as they do per instance; the store must be a file or PostgreSQL.',
      expected: 'auto, or a number of processes from 1 to 256',
    }),
    trusted_proxies: Type.Array(Cidr, {
      default: [],
      description:
        'Proxies whose X-Forwarded-For is believed when finding the client IP. Empty: the peer address is the client.',
    }),
    hosts: Type.Optional(
      Type.Array(
        Type.String({
          minLength: 1,
          description:
            'A host name (api.example.com), an IP address, or *.domain for exactly one more label (*.example.com matches a.example.com, not example.com nor a.b.example.com). No port.',
          expected: 'a host name such as api.example.com or *.example.com, without a port',
        }),
        {
          minItems: 1,
          description:
            'Host names requests may name in their Host header (port ignored, case-insensitive); others are refused with 400, on the public and the redirect listener. Left out: any well-formed Host. A malformed Host (userinfo, a list, percent-encoding, 127.1-style addresses…) is always refused.',
        },
      ),
    ),
    ipv6_prefix: Type.Integer({
      minimum: 1,
      maximum: 128,
      default: 64,
      description:
        'IPv6 clients are keyed by their network of this prefix length wherever addresses are counted or matched: brute-force lockout, blocks, anomaly detection and rate limits (unless rate_limit.ipv6_prefix is set).',
    }),
    limits: Type.Optional(ListenerLimitsSchema),
    tls: Type.Optional(ListenTlsSchema),
    http_redirect: Type.Optional(HttpRedirectSchema),
  },
  'The public listener.',
);

const AdminRoleSchema = Type.Union(
  [Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')],
  {
    description: 'An admin role: viewer, operator or admin.',
  },
);

export const AdminSchema = section(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Run the admin listener: /healthz, /readyz, /metrics and the admin API (admin.api).',
    }),
    host: Type.String({
      default: '127.0.0.1',
      description: 'Address of the admin listener; loopback unless you have a reason.',
    }),
    port: Port('Port of the admin listener.', 9090),
    api: Type.Optional(
      section(
        {
          enabled: Type.Boolean({
            default: true,
            description:
              'Serve the admin REST API under /admin/ (JSON, authenticated with admin tokens made by `portcullis admin tokens create`).',
          }),
          max_body: Size('Largest request body the admin API accepts.', '64kb'),
        },
        'The admin REST API on the admin listener.',
      ),
    ),
    tls: Type.Optional(
      strict(
        {
          cert: Type.String({
            minLength: 1,
            description: 'PEM certificate chain of the admin listener (relative to the config file).',
          }),
          key: Type.String({
            minLength: 1,
            description: 'PEM private key of the admin listener (relative to the config file).',
          }),
          client_ca: Type.Optional(
            Type.String({
              minLength: 1,
              description:
                'PEM file of the CA(s) whose client certificates the admin listener asks for (optional; relative to the config file). A verified certificate mapped in admin.auth.mtls authenticates an admin without a token.',
            }),
          ),
        },
        'Serve the admin listener over HTTPS. Required in production when the admin host is not loopback.',
      ),
    ),
    auth: Type.Optional(
      strict(
        {
          jwt: Type.Optional(
            strict(
              {
                providers: Type.Array(Type.String({ minLength: 1 }), {
                  minItems: 1,
                  uniqueItems: true,
                  description:
                    'Names of auth.jwt.providers whose tokens may authenticate admins (verified exactly as on the gateway: issuer, audience, algorithms, keys, revocations).',
                }),
                role_claim: Type.String({
                  minLength: 1,
                  default: 'portcullis_admin_role',
                  description:
                    'The claim holding the admin role: a claim name, or a dotted path into nested claims (realm_access.roles); its value is a string or a list of strings.',
                }),
                roles: Type.Record(Type.String({ minLength: 1 }), AdminRoleSchema, {
                  description:
                    'Which claim value gives which admin role (viewer, operator or admin); the highest mapped value wins, and a token with none is refused (403).',
                }),
              },
              'Admins who authenticate with a JWT (e.g. from your OpenID provider) as a Bearer token, instead of an admin token.',
            ),
          ),
          mtls: Type.Optional(
            strict(
              {
                principal: Type.Union(
                  [Type.Literal('fingerprint'), Type.Literal('subject'), Type.Literal('san')],
                  {
                    default: 'fingerprint',
                    description:
                      'What identifies a client certificate: fingerprint (sha256:<hex>), subject (the single CN) or san (the first URI, DNS or email SAN).',
                  },
                ),
                roles: Type.Record(Type.String({ minLength: 1 }), AdminRoleSchema, {
                  description:
                    'Which certificate identity gives which admin role (viewer, operator or admin); a verified certificate not listed is refused (403).',
                }),
              },
              'Admins who authenticate with a client certificate verified against admin.tls.client_ca.',
            ),
          ),
        },
        'Other ways for admins to authenticate besides admin tokens (off unless configured).',
      ),
    ),
  },
  'The admin listener, separate from the public one.',
);

export const StoreSchema = section(
  {
    url: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Where data lives: sqlite:PATH, or postgres://… (a URL with a password must be given as ${env:NAME} or ${file:PATH}). Default: SQLite in the data folder.',
      }),
    ),
  },
  'The store for keys, clients, audit events and quotas.',
);

export const LogSchema = section(
  {
    level: Type.Union(
      ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info', description: 'Lowest level written.' },
    ),
    access: Type.Boolean({ default: false, description: 'Write one log line per request.' }),
    redact: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description:
        'Extra request header names whose values are never logged (Authorization, Cookie, Set-Cookie, X-API-Key and Proxy-Authorization always are).',
    }),
    upstream_error_bodies: Type.Boolean({
      default: false,
      description:
        'Log the start of an upstream error body (5xx) the gateway replaced, truncated to 1 KiB and scrubbed of anything resembling a credential. Off: upstreams echo tokens and cookies into error pages.',
    }),
  },
  'Structured JSON logs on stdout.',
);

export const UpstreamSchema = strict(
  {
    url: Type.String({
      pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$',
      description: 'Origin of the service, with an optional base path prepended to every request path.',
      expected: 'an http:// or https:// URL without query or fragment',
    }),
    connections: Type.Integer({
      minimum: 1,
      maximum: 10000,
      default: 128,
      description: 'Most open connections to this upstream.',
    }),
    connect_timeout: Duration('Time allowed to open a connection.', '5s'),
    headers_timeout: Duration('Time allowed for the response headers to arrive.', '30s'),
    body_timeout: Duration('Longest pause between two chunks of the response body.', '30s'),
    keep_alive_timeout: Duration('How long an idle upstream connection is kept.', '4s'),
    max_connections_per_client: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10000,
        description:
          'Most requests to this upstream one client (IP address; IPv6 by listen.ipv6_prefix) may have in flight at once; beyond, its requests are answered 503 with Retry-After at once, so a few clients (slow readers, say) cannot hold every upstream connection. Left out: no per-client cap.',
      }),
    ),
    tls: Type.Optional(UpstreamTlsSchema),
  },
  'A service behind the gateway.',
);

export const CorsSchema = strict(
  {
    origins: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Allowed origins, exactly as browsers send them (https://app.example.com), or "*".',
    }),
    methods: Type.Optional(
      Type.Array(Method, { description: "Methods allowed cross-origin; default: the route's methods." }),
    ),
    headers: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Request headers allowed cross-origin, beyond the CORS-safelisted ones.',
    }),
    expose_headers: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Response headers readable by the browser script.',
    }),
    credentials: Type.Boolean({
      default: false,
      description: 'Allow cookies and credentials. Never together with origin "*".',
    }),
    max_age: Duration('How long browsers may cache a preflight answer.', '10m'),
  },
  'Cross-origin resource sharing for a route; without it, no CORS header is sent.',
);

export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'HS256',
  'HS384',
  'HS512',
] as const;

const HttpUrl = (description: string) =>
  Type.String({
    pattern: '^https?://[^\\s]+$',
    description,
    expected: 'an http:// or https:// URL',
  });

export const JwtProviderSchema = strict(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: 'A name for logs and metrics.' }),
    issuer: Type.String({
      minLength: 1,
      description: 'The exact `iss` value; tokens are matched to providers by it.',
    }),
    audience: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Accepted `aud` values; a token must carry at least one.',
    }),
    jwks_uri: Type.Optional(
      HttpUrl(
        'Where the signing keys are; default: discovered from issuer + /.well-known/openid-configuration.',
      ),
    ),
    algorithms: Type.Array(
      Type.Union(
        JWT_ALGORITHMS.map((a) => Type.Literal(a)),
        { description: 'A JWS algorithm.' },
      ),
      {
        minItems: 1,
        uniqueItems: true,
        default: ['RS256', 'PS256', 'ES256', 'EdDSA'],
        description: 'Accepted algorithms. HS256/384/512 only together with hmac_secret.',
      },
    ),
    hmac_secret: Type.Optional(SecretRef('Shared secret for HS* algorithms (at least 32 bytes).')),
    clock_skew: Duration('Tolerance for exp, nbf and iat.', '30s'),
    require_typ: Type.Boolean({
      default: false,
      description: 'Require the RFC 9068 header typ "at+jwt" (access tokens only, never ID tokens).',
    }),
    max_token_size: Size('Longest token accepted; longer ones are rejected before any parsing.', '8kb'),
    scopes_claim: Type.String({
      default: 'scope',
      description: 'Claim with the scopes: a space-separated string (RFC 9068 scope) or a list (scp).',
    }),
    roles_claim: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Dotted path to the roles list, e.g. realm_access.roles or groups.',
      }),
    ),
    tenant_claim: Type.Optional(Type.String({ minLength: 1, description: 'Dotted path to the tenant id.' })),
    jwks_cache: Duration('How long fetched keys are used before a background refresh.', '10m'),
    jwks_cooldown: Duration('Least time between two fetches triggered by an unknown kid.', '30s'),
    jwks_timeout: Duration('Time allowed for a discovery or JWKS request.', '5s'),
  },
  'An OAuth 2.0 / OpenID Connect provider whose JWT access tokens are accepted.',
);

export const IntrospectionProviderSchema = strict(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: 'A name for logs and metrics.' }),
    endpoint: HttpUrl('The RFC 7662 introspection endpoint.'),
    issuer: Type.Optional(
      Type.String({ minLength: 1, description: 'Required `iss` of active tokens, if any.' }),
    ),
    audience: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description:
          'Accepted `aud` values: an active token whose introspection response names none of them is refused (401). Set it whenever the provider serves more than one API.',
      }),
    ),
    client_id: Type.String({ minLength: 1, description: 'Client id the gateway authenticates with.' }),
    client_secret: SecretRef('Client secret the gateway authenticates with (client_secret_basic).'),
    cache_ttl: Duration('Longest time an active result is reused (never past the token exp).', '5m'),
    inactive_cache_ttl: Duration('How long an inactive result is remembered.', '10s'),
    timeout: Duration('Time allowed for the introspection request.', '5s'),
    on_failure: Type.Union([Type.Literal(401), Type.Literal(503)], {
      default: 503,
      description: 'Status when the endpoint cannot answer: 503, or 401. Never lets the request through.',
    }),
  },
  'An RFC 7662 token introspection endpoint, for opaque access tokens. A response whose token_type is not an access token type (a refresh token, say) is refused.',
);

export const AuthSchema = section(
  {
    jwt: Type.Optional(
      strict(
        {
          providers: Type.Array(JwtProviderSchema, { minItems: 1, description: 'Accepted token issuers.' }),
          cache_size: Type.Integer({
            minimum: 0,
            default: 10000,
            description: 'Verified tokens remembered (by hash) until they expire; 0 turns the cache off.',
          }),
        },
        'JWT access tokens (Authorization: Bearer).',
      ),
    ),
    introspection: Type.Optional(
      strict(
        {
          providers: Type.Array(IntrospectionProviderSchema, {
            minItems: 1,
            description: 'Introspection endpoints.',
          }),
        },
        'Opaque access tokens, checked by introspection (Authorization: Bearer).',
      ),
    ),
    api_keys: Type.Optional(
      strict(
        {
          header: Type.String({ default: 'x-api-key', description: 'Request header carrying the key.' }),
          query_param: Type.String({
            default: 'api_key',
            description: 'Query parameter carrying the key, read only on routes with api_key_in_query.',
          }),
          pepper: Type.Optional(
            SecretRef(
              'Server secret the stored key hashes are keyed with. Default: a generated file in the data folder (refused in production).',
            ),
          ),
          cache_size: Type.Integer({ minimum: 0, default: 10000, description: 'Key lookups remembered.' }),
          cache_ttl: Duration('How long a key lookup is remembered on this instance.', '30s'),
          imported_keys: Type.Boolean({
            default: false,
            description:
              'Also accept keys brought in from another system with `portcullis keys import` (no `pcl_` format, so found by their hash alone). Failed guesses at them count under one shared credential id, so an IP is locked out after auth.brute_force.max_failures of them. Off: anything that is not a well-formed `pcl_` key is refused with no lookup.',
          }),
        },
        'API keys made with `portcullis keys create`.',
      ),
    ),
    issuer: Type.Optional(
      strict(
        {
          issuer: HttpUrl('Public base URL of this gateway, the `iss` of the tokens it issues.'),
          audience: Type.String({ default: 'portcullis', description: '`aud` of the tokens it issues.' }),
          token_ttl: Duration('Lifetime of an issued access token.', '10m'),
          master_key: Type.Optional(
            SecretRef(
              'Key (32 bytes, base64) that encrypts the signing keys at rest. Default: a generated file in the data folder (refused in production).',
            ),
          ),
          key_rotation: Duration('Age at which a new signing key replaces the current one.', '30d'),
          rate_limit: Type.String({
            pattern: RATE_PATTERN,
            default: '20/s',
            description:
              'Most requests per client IP (IPv6: per rate_limit.ipv6_prefix) to the issuer endpoints (token, revocation, metadata, JWKS), with bursts of up to twice the count; every request there also passes blocks, load shedding and the global network rules. The same rate limits the tokens issued to each client id, counted after its authentication succeeds (so nobody else can use up a client’s budget). Both are per instance; the workers of a cluster count together.',
            expected: 'a rate such as 20/s or 600/m',
          }),
        },
        'The built-in OAuth 2.0 client-credentials issuer (POST /oauth2/token).',
      ),
    ),
    identity_headers: section(
      {
        subject: Type.String({
          default: 'x-portcullis-subject',
          description: 'Header with the principal id.',
        }),
        kind: Type.String({ default: 'x-portcullis-auth', description: 'Header with how it authenticated.' }),
        scopes: Type.String({
          default: 'x-portcullis-scopes',
          description: 'Header with the scopes, space-separated.',
        }),
        roles: Type.String({
          default: 'x-portcullis-roles',
          description: 'Header with the roles, comma-separated.',
        }),
        tenant: Type.String({ default: 'x-portcullis-tenant', description: 'Header with the tenant.' }),
      },
      'Headers the gateway sets for the upstream; the same names from clients are always removed.',
    ),
    revocations: section(
      {
        poll: Duration(
          'How often each instance reads new revocations (tokens, clients, keys, blocks) from the store. With PostgreSQL, LISTEN/NOTIFY applies them at once and polling is the fallback.',
          '1s',
        ),
        retain: Duration(
          'The longest lifetime of any token accepted: a revocation by sub, client or issue time is kept this long (by jti too, when the token itself is not at hand), after which every token it covers has expired.',
          '24h',
        ),
      },
      'The token kill switch (`portcullis tokens revoke`): revocations checked on every request, shared by every instance within about a second.',
    ),
    brute_force: section(
      {
        enabled: Type.Boolean({
          default: true,
          description: 'Lock out sources of repeated failed authentication.',
        }),
        max_failures: Type.Integer({
          minimum: 1,
          default: 10,
          description:
            'Guess-like failures (wrong secret, unknown key id, bad signature) from one client IP (IPv6: its listen.ipv6_prefix network) against one credential id, within the window, before that pair is locked out.',
        }),
        max_failures_per_ip: Type.Integer({
          minimum: 1,
          default: 50,
          description:
            'Guess-like failures from one client IP against any credentials, within the window, before the IP is locked out. Credentials already verified (cached) still pass.',
        }),
        max_failures_per_credential: Type.Integer({
          minimum: 1,
          default: 500,
          description:
            "Guess-like failures against one credential id from all IPs, within the window, before attempts without a known-good proof of it are throttled to throttle_rate per second. The owner's correct proof is never refused.",
        }),
        throttle_rate: Type.Integer({
          minimum: 1,
          default: 2,
          description:
            'Verifications per second still allowed for a throttled credential id, so its owner gets through while a guesser is slowed down.',
        }),
        window: Duration('Window in which failures are counted.', '1m'),
        lockout: Duration('First lockout; it doubles on each repeat.', '1m'),
        max_lockout: Duration('Longest lockout.', '1h'),
      },
      "Brute-force protection against guessing: answered with 429 before the expensive verification of unknown credentials; credentials that verify are never refused for others' failures.",
    ),
  },
  'How callers authenticate.',
);

export const RouteSchema = strict(
  {
    name: Type.Optional(
      Type.String({ minLength: 1, description: 'A name for logs and metrics; default "METHODS path".' }),
    ),
    path: Type.String({
      pattern: '^/',
      description:
        'Path template: literal segments, {param} segments, and an optional final "*" for a prefix route.',
      expected: 'a path starting with "/"',
    }),
    methods: Type.Array(Method, {
      minItems: 1,
      uniqueItems: true,
      description: 'Methods this route accepts; others get 405. GET implies HEAD.',
    }),
    upstream: Type.String({ minLength: 1, description: 'Name of an entry in `upstreams`.' }),
    auth: Type.Optional(
      Type.Union(
        [
          Type.Literal('none'),
          Type.Array(Type.Union(['jwt', 'introspection', 'api_key', 'mtls'].map((m) => Type.Literal(m))), {
            minItems: 1,
            uniqueItems: true,
          }),
        ],
        {
          description:
            'Accepted ways to authenticate, e.g. [jwt, api_key]; default: every configured one. "none" makes the route public.',
          expected: '"none" or a list of jwt, introspection, api_key, mtls',
        },
      ),
    ),
    providers: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), {
        minItems: 1,
        uniqueItems: true,
        description:
          'Token providers this route accepts, by name (auth.jwt.providers, auth.introspection.providers; portcullis-issuer for the built-in issuer); tokens from others get 401. Default: every configured one. Restrict it where owner or tenant rules compare subjects that only mean something within one provider.',
      }),
    ),
    authorize: Type.Optional(AuthorizeSchema),
    api_key_in_query: Type.Boolean({
      default: false,
      description: 'Also read the API key from the query string (it is redacted from logs). Avoid.',
    }),
    body_limit: Type.Optional(
      Type.Union([Size('Largest request body on this route.'), Type.Literal('none')], {
        description: 'Largest request body on this route; "none" streams any size (a warning).',
        expected: 'a size such as 64kb or 1mb, or "none"',
      }),
    ),
    cache_control: Type.String({
      default: 'no-store',
      description: 'Cache-Control sent to clients unless the upstream sets its own on a cacheable route.',
    }),
    cors: Type.Optional(CorsSchema),
    mtls: Type.Optional(RouteMtlsSchema),
    ...ROUTE_RATE_LIMIT_PROPERTIES,
    ...RouteApiProperties,
  },
  'One allowed operation (or family of operations) and where it goes.',
);

/**
 * The version of the configuration format, printed by `portcullis --version`.
 * Raised when a config that was valid stops being valid or changes meaning;
 * new optional keys with defaults do not raise it.
 */
export const CONFIG_SCHEMA_VERSION = 1;

export const ConfigSchema = strict(
  {
    $schema: Type.Optional(Type.String({ description: 'Editor hint; ignored.' })),
    mode: Type.Union([Type.Literal('development'), Type.Literal('production')], {
      default: 'development',
      description:
        'development or production; production refuses settings that are only safe on a developer machine.',
    }),
    allow_insecure: Type.Optional(AllowInsecureSchema),
    listen: Type.Optional(ListenSchema),
    admin: Type.Optional(AdminSchema),
    store: Type.Optional(StoreSchema),
    log: Type.Optional(LogSchema),
    auth: Type.Optional(AuthSchema),
    authorization: Type.Optional(AuthorizationSchema),
    rate_limit: Type.Optional(RateLimitSchema),
    audit: Type.Optional(AuditSchema),
    anomaly: Type.Optional(AnomalySchema),
    alerts: Type.Optional(AlertsSchema),
    blocks: Type.Optional(BlocksSchema),
    secret_scanning: Type.Optional(SecretScanningSchema),
    telemetry: Type.Optional(TelemetrySchema),
    upstreams: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), UpstreamSchema, {
      description: 'Services behind the gateway, by name.',
      minProperties: 1,
    }),
    api: Type.Optional(ApiSchema),
    routes: Type.Optional(
      Type.Array(RouteSchema, {
        minItems: 1,
        description:
          'The allow-list of routes: anything not listed gets 404 or 405. Default: the operations of api.document.',
      }),
    ),
  },
  'Portcullis gateway configuration.',
);

export type RawConfig = Static<typeof ConfigSchema>;
export type RawRoute = Static<typeof RouteSchema>;
export type RawUpstream = Static<typeof UpstreamSchema>;
export type RawCors = Static<typeof CorsSchema>;
