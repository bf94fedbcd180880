/**
 * The OpenAPI 3.1 description of the admin API, served at
 * `/admin/openapi.json`. Written by hand, as the contract; a test checks that
 * it describes exactly the operations `index.ts` handles, with the same
 * least role (`x-portcullis-role`).
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const nullable = (s: Schema): Schema => ({ oneOf: [s, { type: 'null' }] });
const time = (description: string): Schema => nullable(str(description, { format: 'date-time' }));
const list = (name: string, item: Schema): Schema => ({
  type: 'object',
  required: [name],
  properties: { [name]: { type: 'array', items: item } },
});

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
});

const COMMON_ERRORS = {
  '401': problem('No admin token, or one that is not valid.'),
  '403': problem('The admin role does not allow this.'),
  '429': problem('Too many failed authentication attempts from this client; see Retry-After.'),
};

const BODY_ERRORS = {
  '400': problem('The body is not valid JSON, not an object, or fails validation.'),
  '413': problem('The body is larger than admin.api.max_body.'),
  '415': problem('The body is not application/json.'),
};

interface OperationSpec {
  operationId: string;
  summary: string;
  role: 'viewer' | 'operator' | 'admin';
  tag: string;
  ok: { status: string; description: string; schema: Schema };
  body?: Schema;
  parameters?: Schema[];
  errors?: Record<string, unknown>;
}

function operation(spec: OperationSpec) {
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    tags: [spec.tag],
    'x-portcullis-role': spec.role,
    ...(spec.parameters ? { parameters: spec.parameters } : {}),
    ...(spec.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: spec.body } } } }
      : {}),
    responses: {
      [spec.ok.status]: {
        description: spec.ok.description,
        content: { 'application/json': { schema: spec.ok.schema } },
      },
      ...COMMON_ERRORS,
      ...(spec.body ? BODY_ERRORS : {}),
      ...spec.errors,
    },
  };
}

const idParam = (description: string): Schema => ({
  name: 'id',
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
});
const queryParam = (name: string, description: string, schema: Schema = { type: 'string' }): Schema => ({
  name,
  in: 'query',
  required: false,
  description,
  schema,
});
const limitParam = queryParam('limit', 'At most this many items (1 to 1000, default 100).', {
  type: 'integer',
  minimum: 1,
  maximum: 1000,
});
const durationSchema = (description: string): Schema =>
  str(description, { pattern: '^[0-9]+(ms|s|m|h|d)$', examples: ['24h'] });
const NOT_FOUND = { '404': problem('No such resource.') };

/** The answer of a revoke: whether it was revoked already, and the record (`schema`) as it is now. */
const revoked = (description: string, record: Schema) => ({
  status: '200',
  description,
  schema: {
    type: 'object',
    required: ['alreadyRevoked', 'record'],
    properties: { alreadyRevoked: { type: 'boolean' }, record },
  },
});

/** An operation whose success is a Server-Sent Events stream rather than JSON. */
function eventStream(o: ReturnType<typeof operation>) {
  const responses = o.responses as Record<string, unknown>;
  const ok = responses['200'] as { description: string };
  return {
    ...o,
    responses: {
      ...responses,
      '200': {
        description: ok.description,
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      },
    },
  };
}

/** The document (a fresh object each time). */
export function adminOpenApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Portcullis admin API',
      version: '1',
      description:
        'Manage a running Portcullis gateway: API keys, OAuth clients, blocks, token revocations, alerts, audit, routes and reloads. Served by the admin listener only. Authenticate with an admin token (`portcullis admin tokens create --role viewer|operator|admin`) as `Authorization: Bearer pcla_…`, or, when configured (admin.auth), with a JWT from one of the gateway’s providers carrying an admin role claim, or with a client certificate mapped to a role. Roles: viewer reads; operator also manages API keys, OAuth clients, blocks and revocations; admin also manages admin tokens and reloads. Every error is application/problem+json; every state-changing call is recorded in the audit chain with the admin’s identity.',
    },
    security: [{ adminToken: [] }, { adminJwt: [] }, { adminCertificate: [] }, { consoleSession: [] }],
    tags: [
      'meta',
      'keys',
      'clients',
      'blocks',
      'revocations',
      'alerts',
      'audit',
      'config',
      'admin-tokens',
      'console',
    ].map((name) => ({
      name,
    })),
    paths: {
      '/admin/openapi.json': {
        get: operation({
          operationId: 'getOpenApi',
          summary: 'This description.',
          role: 'viewer',
          tag: 'meta',
          ok: { status: '200', description: 'The OpenAPI 3.1 document.', schema: { type: 'object' } },
        }),
      },
      '/admin/whoami': {
        get: operation({
          operationId: 'whoami',
          summary: 'The admin making the call.',
          role: 'viewer',
          tag: 'meta',
          ok: {
            status: '200',
            description:
              'Its id, name and role; how it authenticated (an admin token, a JWT or a client certificate); and, for a JWT or a certificate, when that credential ends.',
            schema: {
              type: 'object',
              required: ['id', 'name', 'role', 'kind'],
              properties: {
                id: { type: 'string' },
                name: { type: 'string' },
                role: ref('Role'),
                kind: { enum: ['token', 'jwt', 'mtls'] },
                expires_at: { type: 'string', format: 'date-time' },
              },
            },
          },
        }),
      },
      '/admin/status': {
        get: operation({
          operationId: 'getStatus',
          summary: 'Readiness (as /readyz) and the configuration in force.',
          role: 'viewer',
          tag: 'config',
          ok: { status: '200', description: 'Each check, and the config version.', schema: ref('Status') },
        }),
      },
      '/admin/routes': {
        get: operation({
          operationId: 'listRoutes',
          summary: 'The routes and their effective policies, from the running config, secrets redacted.',
          role: 'viewer',
          tag: 'config',
          ok: { status: '200', description: 'Every route.', schema: list('routes', { type: 'object' }) },
        }),
      },
      '/admin/explain': {
        post: operation({
          operationId: 'explain',
          summary:
            'The decision trail for one request, from a dry run of the real pipeline with the running config; never calls the upstream, never spends a rate limit.',
          role: 'viewer',
          tag: 'config',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['method', 'target'],
            properties: {
              method: str('The HTTP method, upper case.', { pattern: '^[A-Z]+$' }),
              target: str('The path, with an optional query.', { maxLength: 8192 }),
              headers: { type: 'object', additionalProperties: { type: 'string' } },
              token: str('A bearer token to authenticate with.'),
              key: str('An API key to authenticate with.'),
              claims: {
                type: 'object',
                description: 'Claims of a hypothetical JWT principal (no signature).',
              },
              body: str('The request body.', { maxLength: 60000 }),
              ip: str('The client IP (default 127.0.0.1).'),
            },
          },
          ok: {
            status: '200',
            description: 'The route, principal, every rule and its outcome, and the decision.',
            schema: {
              type: 'object',
              required: ['request', 'rules', 'decision', 'status'],
              properties: {
                request: { type: 'string' },
                route: { type: 'string' },
                authentication: { type: 'string' },
                rules: { type: 'array', items: { type: 'object' } },
                decision: { enum: ['allow', 'deny'] },
                status: { type: 'integer' },
                code: { type: 'string' },
              },
            },
          },
        }),
      },
      '/admin/keys': {
        get: operation({
          operationId: 'listKeys',
          summary: 'Every API key (never a secret).',
          role: 'viewer',
          tag: 'keys',
          ok: { status: '200', description: 'The keys, oldest first.', schema: list('keys', ref('ApiKey')) },
        }),
        post: operation({
          operationId: 'createKey',
          summary: 'Create an API key; the key is in the answer, once.',
          role: 'operator',
          tag: 'keys',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'scopes'],
            properties: {
              name: str('Who or what the key is for.', { minLength: 1, maxLength: 200 }),
              scopes: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 100 },
              tenant: str('The tenant the key acts for.', { minLength: 1, maxLength: 200 }),
              expires_in: durationSchema('Lifetime; default: no expiry.'),
              routes: {
                type: 'array',
                description: 'Route names (routes[].name) the key is restricted to; default: every route.',
                items: { type: 'string' },
                minItems: 1,
                maxItems: 100,
              },
            },
          },
          ok: {
            status: '201',
            description: 'The key (shown once) and its record.',
            schema: ref('CreatedKey'),
          },
        }),
      },
      '/admin/keys/{id}/revoke': {
        post: operation({
          operationId: 'revokeKey',
          summary: 'Revoke an API key; running gateways refuse it within about a second.',
          role: 'operator',
          tag: 'keys',
          parameters: [idParam('The key id, key_…')],
          ok: revoked('The revoked key.', ref('ApiKey')),
          errors: NOT_FOUND,
        }),
      },
      '/admin/keys/{id}/rotate': {
        post: operation({
          operationId: 'rotateKey',
          summary: 'Replace an API key by a new one; the old one works for the overlap.',
          role: 'operator',
          tag: 'keys',
          parameters: [idParam('The key id, key_…')],
          body: {
            type: 'object',
            additionalProperties: false,
            properties: {
              overlap: durationSchema('How long the old key keeps working (default 24h).'),
              expires_in: durationSchema('Lifetime of the new key (default: the old one’s).'),
            },
          },
          ok: {
            status: '201',
            description: 'The new key (shown once), its record and the old one’s.',
            schema: {
              type: 'object',
              required: ['key', 'record', 'previous'],
              properties: { key: { type: 'string' }, record: ref('ApiKey'), previous: ref('ApiKey') },
            },
          },
          errors: { ...NOT_FOUND, '409': problem('The key is revoked, expired or already rotated.') },
        }),
      },
      '/admin/clients': {
        get: operation({
          operationId: 'listClients',
          summary: 'Every OAuth client of the built-in issuer (never a secret).',
          role: 'viewer',
          tag: 'clients',
          ok: {
            status: '200',
            description: 'The clients, oldest first.',
            schema: list('clients', ref('Client')),
          },
        }),
        post: operation({
          operationId: 'createClient',
          summary: 'Register an OAuth client (client credentials); its secret is in the answer, once.',
          role: 'operator',
          tag: 'clients',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'scopes'],
            properties: {
              name: str('A label for people.', { minLength: 1, maxLength: 100 }),
              scopes: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 100 },
              tenant: str('The tenant its tokens carry.', { minLength: 1, maxLength: 128 }),
            },
          },
          ok: {
            status: '201',
            description: 'The client, its secret (shown once) and the token endpoint.',
            schema: {
              type: 'object',
              required: ['client_secret', 'client'],
              properties: {
                client_secret: { type: 'string' },
                client: ref('Client'),
                token_endpoint: nullable({ type: 'string' }),
              },
            },
          },
        }),
      },
      '/admin/clients/{id}/revoke': {
        post: operation({
          operationId: 'revokeClient',
          summary: 'Revoke an OAuth client: no new tokens, and its tokens are refused within about a second.',
          role: 'operator',
          tag: 'clients',
          parameters: [idParam('The client id, cli_…')],
          ok: {
            status: '200',
            description: 'The client is revoked.',
            schema: {
              type: 'object',
              required: ['alreadyRevoked', 'id'],
              properties: { alreadyRevoked: { type: 'boolean' }, id: { type: 'string' } },
            },
          },
          errors: NOT_FOUND,
        }),
      },
      '/admin/blocks': {
        get: operation({
          operationId: 'listBlocks',
          summary: 'Blocks, newest first: active ones unless all=true.',
          role: 'viewer',
          tag: 'blocks',
          parameters: [
            queryParam('all', 'Include lifted and expired blocks.', { enum: ['true', 'false'] }),
            limitParam,
          ],
          ok: { status: '200', description: 'The blocks.', schema: list('blocks', ref('Block')) },
          errors: { '400': problem('A query parameter is not valid.') },
        }),
        post: operation({
          operationId: 'addBlock',
          summary: 'Block an IP, an API key or a principal; it applies at once.',
          role: 'operator',
          tag: 'blocks',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['kind', 'subject', 'duration'],
            properties: {
              kind: { enum: ['ip', 'api_key', 'principal'] },
              subject: str('The IP, key id or principal id.', { minLength: 1, maxLength: 200 }),
              duration: durationSchema('How long the block lasts.'),
              status: { enum: [429, 403], default: 429 },
              reason: str('Why.', { maxLength: 500 }),
            },
          },
          ok: {
            status: '201',
            description: 'The block.',
            schema: { type: 'object', required: ['block'], properties: { block: ref('Block') } },
          },
        }),
      },
      '/admin/blocks/{id}': {
        delete: operation({
          operationId: 'liftBlock',
          summary: 'Lift a block.',
          role: 'operator',
          tag: 'blocks',
          parameters: [idParam('The block id, blk_…')],
          ok: {
            status: '200',
            description: 'The lifted block.',
            schema: { type: 'object', required: ['block'], properties: { block: ref('Block') } },
          },
          errors: { ...NOT_FOUND, '409': problem('The block is not active.') },
        }),
      },
      '/admin/revocations': {
        get: operation({
          operationId: 'listRevocations',
          summary: 'The token revocations in force (the kill switch).',
          role: 'viewer',
          tag: 'revocations',
          ok: {
            status: '200',
            description: 'The revocations.',
            schema: list('revocations', ref('Revocation')),
          },
        }),
        post: operation({
          operationId: 'revokeTokens',
          summary:
            'Revoke access tokens by jti, subject, client or issue time, on every gateway within about a second.',
          role: 'operator',
          tag: 'revocations',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['kind'],
            properties: {
              kind: { enum: ['jti', 'sub', 'client', 'before'] },
              subject: str('The jti, subject or client id (not with before).', { maxLength: 500 }),
              issuer: str('Only tokens with this iss (default: any).', { maxLength: 500 }),
              issued_before: str('With before: an ISO 8601 time, or "now".'),
              expires_at: str('With jti: the token’s exp, ISO 8601.', { format: 'date-time' }),
              reason: str('Why.', { maxLength: 500 }),
            },
          },
          ok: {
            status: '201',
            description: 'The revocation.',
            schema: {
              type: 'object',
              required: ['revocation'],
              properties: { revocation: ref('Revocation') },
            },
          },
        }),
      },
      '/admin/alerts': {
        get: operation({
          operationId: 'listAlerts',
          summary: 'Alerts raised, most recent first.',
          role: 'viewer',
          tag: 'alerts',
          parameters: [queryParam('since', 'How far back (default 24h).'), limitParam],
          ok: { status: '200', description: 'The alerts.', schema: list('alerts', { type: 'object' }) },
          errors: { '400': problem('A query parameter is not valid.') },
        }),
      },
      '/admin/audit/events': {
        get: operation({
          operationId: 'searchAudit',
          summary: 'Search the audit log: the latest matching events, oldest first.',
          role: 'viewer',
          tag: 'audit',
          parameters: [
            queryParam('principal', 'A principal id, or an admin event’s actor.'),
            queryParam('decision', 'allow, deny or error.'),
            queryParam('route', 'A route name.'),
            queryParam('ip', 'A client IP.'),
            queryParam('type', 'request or admin.'),
            queryParam('action', 'An admin action, e.g. key.created.'),
            queryParam('since', 'How far back, e.g. 1h.'),
            limitParam,
          ],
          ok: { status: '200', description: 'The events.', schema: list('events', { type: 'object' }) },
          errors: { '400': problem('A query parameter is not valid.') },
        }),
      },
      '/admin/audit/verify': {
        get: operation({
          operationId: 'verifyAudit',
          summary: 'Verify the audit log’s hash chain and signed checkpoints.',
          role: 'viewer',
          tag: 'audit',
          ok: {
            status: '200',
            description: 'The verification result (ok, events, checkpoints, problems).',
            schema: { type: 'object', required: ['ok', 'events', 'problems'] },
          },
        }),
      },
      '/admin/reload': {
        post: operation({
          operationId: 'reload',
          summary: 'Reload the configuration from its file, as SIGHUP does.',
          role: 'admin',
          tag: 'config',
          ok: {
            status: '200',
            description: 'The new configuration serves.',
            schema: {
              type: 'object',
              properties: {
                reloaded: { type: 'boolean' },
                requested: { type: 'boolean' },
                version: nullable({ type: 'string' }),
                routes: { type: 'integer' },
              },
            },
          },
          errors: {
            '202': {
              description:
                'Cluster mode: every worker was asked to reload, as SIGHUP does; check /admin/status for the version.',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: { reloaded: { const: false }, requested: { const: true } },
                  },
                },
              },
            },
            '409': problem('The new configuration is invalid; the previous one keeps serving.'),
          },
        }),
      },
      '/admin/tokens': {
        get: operation({
          operationId: 'listAdminTokens',
          summary: 'Every admin token (never a secret).',
          role: 'admin',
          tag: 'admin-tokens',
          ok: { status: '200', description: 'The tokens.', schema: list('tokens', ref('AdminToken')) },
        }),
        post: operation({
          operationId: 'createAdminToken',
          summary: 'Create an admin token; the token is in the answer, once.',
          role: 'admin',
          tag: 'admin-tokens',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['role'],
            properties: { role: ref('Role'), name: str('Who it is for.', { maxLength: 200 }) },
          },
          ok: {
            status: '201',
            description: 'The token (shown once) and its record.',
            schema: {
              type: 'object',
              required: ['token', 'record'],
              properties: { token: { type: 'string' }, record: ref('AdminToken') },
            },
          },
        }),
      },
      '/admin/tokens/{id}': {
        delete: operation({
          operationId: 'revokeAdminToken',
          summary: 'Revoke an admin token.',
          role: 'admin',
          tag: 'admin-tokens',
          parameters: [idParam('The token id, adt_…')],
          ok: revoked('The revoked token.', ref('AdminToken')),
          errors: NOT_FOUND,
        }),
      },
      '/admin/session': {
        post: operation({
          operationId: 'login',
          summary:
            'Log in to the web console: trades the bearer admin token (or admin JWT, or client certificate) for a session cookie (HttpOnly, Secure, SameSite=Strict) and a CSRF token; a session never outlives a JWT’s exp. Failed attempts are audited and count towards the brute-force lockout.',
          role: 'viewer',
          tag: 'console',
          ok: {
            status: '201',
            description: 'The session; the cookie is in Set-Cookie.',
            schema: ref('Session'),
          },
        }),
        get: operation({
          operationId: 'getSession',
          summary: 'The session the call is made with (and its CSRF token); with a bearer token, the token.',
          role: 'viewer',
          tag: 'console',
          ok: { status: '200', description: 'The session.', schema: ref('Session') },
        }),
        delete: operation({
          operationId: 'logout',
          summary: 'Log out: ends the session and clears its cookie. With the cookie, needs x-csrf-token.',
          role: 'viewer',
          tag: 'console',
          ok: {
            status: '200',
            description: 'Whether a session was ended.',
            schema: {
              type: 'object',
              required: ['loggedOut'],
              properties: { loggedOut: { type: 'boolean' } },
            },
          },
        }),
      },
      '/admin/metrics/timeseries': {
        get: operation({
          operationId: 'getTimeSeries',
          summary:
            'This instance’s recent traffic in 10-second buckets: requests, allowed, denied by reason, 429s, 5xx, p50/p99 latency, and the most denied principals, IPs and routes.',
          role: 'viewer',
          tag: 'console',
          parameters: [
            queryParam('minutes', 'How far back, 1 to 60 (default 15).', {
              type: 'integer',
              minimum: 1,
              maximum: 60,
            }),
          ],
          ok: { status: '200', description: 'The series.', schema: ref('TimeSeries') },
          errors: { '400': problem('A query parameter is not valid.') },
        }),
      },
      '/admin/events/stream': {
        get: eventStream(
          operation({
            operationId: 'streamEvents',
            summary:
              'Live request and admin events as Server-Sent Events (one JSON object per data line), filtered. A client that reads too slowly is disconnected.',
            role: 'viewer',
            tag: 'console',
            parameters: [
              queryParam('type', 'request or admin.'),
              queryParam('decision', 'allow, deny or error.'),
              queryParam('route', 'A route name.'),
              queryParam('principal', 'A principal id.'),
              queryParam('ip', 'A client IP.'),
            ],
            ok: { status: '200', description: 'The stream.', schema: { type: 'string' } },
            errors: {
              '400': problem('A query parameter is not valid.'),
              '406': problem('The request does not accept text/event-stream.'),
              '503': problem('Too many streams are open.'),
            },
          }),
        ),
      },
    },
    components: {
      securitySchemes: {
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'An admin token, pcla_…, from `portcullis admin tokens create`.',
        },
        adminJwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'When admin.auth.jwt is configured: a JWT from one of the listed auth.jwt.providers, verified as on the gateway (issuer, audience, algorithms, keys, revocations). Its role claim (admin.auth.jwt.role_claim) maps to a role through admin.auth.jwt.roles; a valid token with no mapped role gets 403 authz.forbidden.',
        },
        adminCertificate: {
          type: 'mutualTLS',
          description:
            'When the admin listener serves HTTPS with admin.tls.client_ca and admin.auth.mtls is configured: a client certificate verified against that CA, whose identity (fingerprint, subject CN or SAN) maps to a role through admin.auth.mtls.roles, authenticates without a token; an unmapped one gets 403 authz.forbidden. Its state-changing calls must not come from another site (403 csrf.cross_site).',
        },
        consoleSession: {
          type: 'apiKey',
          in: 'cookie',
          name: '__Host-pcl_session',
          description:
            'The web console’s session cookie, from POST /admin/session. Every call with it that is not a GET needs the session’s CSRF token in the x-csrf-token header (403 csrf.missing / csrf.invalid otherwise).',
        },
      },
      schemas: {
        Role: { enum: ['viewer', 'operator', 'admin'] },
        Session: {
          type: 'object',
          required: ['id', 'name', 'role', 'csrfToken'],
          properties: {
            id: {
              type: 'string',
              description:
                'The admin’s id: adt_… (admin token), jwt:<provider>:<sub> or mtls:<certificate identity>.',
            },
            name: { type: 'string' },
            role: ref('Role'),
            csrfToken: nullable(str('Send it in x-csrf-token with every state-changing call.')),
            expiresAt: time('When the session ends if unused.'),
            idleTimeoutSeconds: nullable({ type: 'integer' }),
          },
        },
        TimeSeries: {
          type: 'object',
          required: ['bucketSeconds', 'times', 'requests', 'totals', 'top'],
          properties: {
            bucketSeconds: { type: 'integer' },
            times: {
              type: 'array',
              items: { type: 'integer' },
              description: 'Bucket starts, epoch seconds.',
            },
            requests: { type: 'array', items: { type: 'integer' } },
            allowed: { type: 'array', items: { type: 'integer' } },
            denied: { type: 'array', items: { type: 'integer' } },
            limited: { type: 'array', items: { type: 'integer' } },
            errors: { type: 'array', items: { type: 'integer' } },
            reasons: { type: 'object', additionalProperties: { type: 'array', items: { type: 'integer' } } },
            p50: { type: 'array', items: nullable({ type: 'number' }) },
            p99: { type: 'array', items: nullable({ type: 'number' }) },
            totals: { type: 'object' },
            top: { type: 'object' },
          },
        },
        Problem: {
          type: 'object',
          description: 'RFC 9457 problem details.',
          required: ['type', 'title', 'status', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            code: { type: 'string' },
            detail: { type: 'string' },
          },
        },
        ApiKey: {
          type: 'object',
          required: ['id', 'name', 'scopes', 'status'],
          properties: {
            id: { type: 'string' },
            name: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
            tenant: nullable({ type: 'string' }),
            createdAt: time('When it was made.'),
            expiresAt: time('When it stops working.'),
            revokedAt: time('When it was revoked.'),
            lastUsedAt: time('When it was last used (to the minute).'),
            replacedBy: nullable({ type: 'string' }),
            routes: nullable({ type: 'array', items: { type: 'string' } }),
            status: { enum: ['active', 'rotating', 'expired', 'revoked'] },
          },
        },
        CreatedKey: {
          type: 'object',
          required: ['key', 'record'],
          properties: {
            key: str('The whole key: store it now, it is never shown again.'),
            record: ref('ApiKey'),
          },
        },
        Client: {
          type: 'object',
          required: ['id', 'name', 'scopes', 'status'],
          properties: {
            id: { type: 'string' },
            name: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
            tenant: nullable({ type: 'string' }),
            createdAt: time('When it was registered.'),
            revokedAt: time('When it was revoked.'),
            status: { enum: ['active', 'revoked'] },
          },
        },
        Block: {
          type: 'object',
          required: ['id', 'kind', 'subject', 'status', 'state'],
          properties: {
            id: { type: 'string' },
            kind: { enum: ['ip', 'api_key', 'principal'] },
            subject: { type: 'string' },
            status: { enum: [429, 403] },
            reason: { type: 'string' },
            alertId: nullable({ type: 'string' }),
            createdBy: { type: 'string' },
            createdAt: time('When it was added.'),
            expiresAt: time('When it ends.'),
            liftedAt: time('When it was lifted.'),
            liftedBy: nullable({ type: 'string' }),
            state: { enum: ['active', 'expired', 'lifted'] },
          },
        },
        Revocation: {
          type: 'object',
          required: ['kind', 'subject'],
          properties: {
            kind: { enum: ['jti', 'sub', 'client', 'before'] },
            subject: { type: 'string' },
            issuer: nullable({ type: 'string' }),
            revokedAt: time('The revocation time, or the cut-off of before.'),
            expiresAt: time('When the revocation is no longer needed.'),
            actor: { type: 'string' },
            reason: nullable({ type: 'string' }),
          },
        },
        AdminToken: {
          type: 'object',
          required: ['id', 'name', 'role', 'status'],
          properties: {
            id: { type: 'string' },
            name: { type: 'string' },
            role: ref('Role'),
            createdAt: time('When it was made.'),
            createdBy: { type: 'string' },
            revokedAt: time('When it was revoked.'),
            lastUsedAt: time('When it was last used.'),
            status: { enum: ['active', 'revoked'] },
          },
        },
        Status: {
          type: 'object',
          required: ['ready', 'checks', 'config'],
          properties: {
            ready: { type: 'boolean' },
            checks: { type: 'object', additionalProperties: { type: 'object' } },
            config: {
              type: 'object',
              properties: {
                file: { type: 'string' },
                version: nullable({ type: 'string' }),
                loadedAt: time('When it was loaded.'),
                mode: { enum: ['development', 'production'] },
                routes: { type: 'integer' },
              },
            },
          },
        },
      },
    },
  };
}
