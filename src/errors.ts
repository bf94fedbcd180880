/**
 * Typed gateway errors with stable codes, rendered in one place as RFC 9457
 * `application/problem+json`.
 *
 * The public part (code, status, title, optional safe detail) is what a client
 * sees; the `cause` and `internal` fields are for logs and the audit trail
 * only and never leave the process.
 */
import type { ServerResponse } from 'node:http';

export interface ErrorSpec {
  /** Stable, dotted code; part of the public contract. */
  readonly code: string;
  readonly status: number;
  /** Short, safe, human title. Never contains request data. */
  readonly title: string;
}

/** Every error code the gateway can answer with, defined once. */
export const ERRORS = {
  badRequest: { code: 'request.bad_request', status: 400, title: 'The request is malformed.' },
  badPath: { code: 'request.bad_path', status: 400, title: 'The request path is not acceptable.' },
  badQuery: { code: 'request.bad_query', status: 400, title: 'The query string cannot be decoded.' },
  badHeader: {
    code: 'request.bad_header',
    status: 400,
    title: 'A request header is repeated or malformed.',
  },
  badHost: { code: 'request.bad_host', status: 400, title: 'The Host header is not acceptable.' },
  ambiguousParameter: {
    code: 'request.ambiguous_parameter',
    status: 400,
    title: 'A parameter is given in more than one spelling.',
  },
  unsupportedEncoding: {
    code: 'request.unsupported_encoding',
    status: 415,
    title: 'The content encoding of the request body is not supported.',
  },
  headersTooLarge: {
    code: 'request.headers_too_large',
    status: 431,
    title: 'The request headers are too large.',
  },
  bodyTooLarge: { code: 'request.body_too_large', status: 413, title: 'The request body is too large.' },
  requestTimeout: { code: 'request.timeout', status: 408, title: 'The request took too long to arrive.' },
  notFound: { code: 'route.not_found', status: 404, title: 'No such resource.' },
  methodNotAllowed: {
    code: 'route.method_not_allowed',
    status: 405,
    title: 'The method is not allowed on this resource.',
  },
  authRequired: {
    code: 'auth.required',
    status: 401,
    title: 'Authentication is required.',
  },
  authInvalid: {
    code: 'auth.invalid_credentials',
    status: 401,
    title: 'The credentials are not valid.',
  },
  clientCertificateRequired: {
    code: 'auth.client_certificate_required',
    status: 401,
    title: 'A valid client certificate is required.',
  },
  authLocked: {
    code: 'auth.locked_out',
    status: 429,
    title: 'Too many failed attempts; try again later.',
  },
  authUnavailable: {
    code: 'auth.unavailable',
    status: 503,
    title: 'Credentials cannot be checked right now.',
  },
  forbidden: {
    code: 'authz.forbidden',
    status: 403,
    title: 'You are not allowed to do this.',
  },
  corsRejected: { code: 'cors.rejected', status: 403, title: 'The cross-origin request is not allowed.' },
  upstreamUnavailable: {
    code: 'upstream.unavailable',
    status: 502,
    title: 'The service behind the gateway is unavailable.',
  },
  upstreamTooLarge: {
    code: 'upstream.response_too_large',
    status: 502,
    title: 'The service behind the gateway gave an answer that cannot be checked.',
  },
  upstreamTimeout: {
    code: 'upstream.timeout',
    status: 504,
    title: 'The service behind the gateway did not answer in time.',
  },
  unavailable: {
    code: 'gateway.unavailable',
    status: 503,
    title: 'The gateway is not accepting requests right now.',
  },
  internal: { code: 'gateway.internal', status: 500, title: 'An internal error occurred.' },
  inputInvalid: {
    code: 'input.invalid',
    status: 400,
    title: 'The request does not match the API description.',
  },
  inputRejected: {
    code: 'input.rejected',
    status: 403,
    title: 'The request was rejected by input inspection.',
  },
  unsupportedMediaType: {
    code: 'input.unsupported_media_type',
    status: 415,
    title: 'The media type of the request body is not accepted here.',
  },
  upstreamError: { code: 'upstream.error', status: 502, title: 'The service behind the gateway failed.' },
  upstreamRefused: {
    code: 'upstream.refused',
    status: 400,
    title: 'The service behind the gateway refused the request.',
  },
  upstreamInvalidResponse: {
    code: 'upstream.invalid_response',
    status: 502,
    title: 'The service behind the gateway gave an answer that does not match the API description.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERRORS;

/** An error the gateway answers with; thrown or returned by stages. */
export class GatewayError extends Error {
  readonly code: string;
  readonly status: number;
  readonly title: string;
  /** Extra response headers (e.g. `Allow`, `Retry-After`, `WWW-Authenticate`). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Reason for logs and audit; never sent to the client. */
  readonly internal: string | undefined;

  constructor(
    spec: ErrorSpec,
    options: { headers?: Record<string, string>; internal?: string; cause?: unknown } = {},
  ) {
    super(spec.title, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = spec.code;
    this.status = spec.status;
    this.title = spec.title;
    this.headers = options.headers;
    this.internal = options.internal;
  }
}

/** Shorthand: `gatewayError('notFound', { internal: '…' })`. */
export function gatewayError(
  name: ErrorName,
  options?: { headers?: Record<string, string>; internal?: string; cause?: unknown },
): GatewayError {
  return new GatewayError(ERRORS[name], options);
}

/** The `errors` list of a validation failure (locations and rules, never values), when there is one. */
function problemItems(err: ErrorSpec): { errors?: unknown[] } {
  const errors = (err as unknown as { errors?: unknown }).errors;
  return Array.isArray(errors) && errors.length > 0 ? { errors } : {};
}

/** The RFC 9457 body. `type` is a stable URN per code, so clients can switch on it. */
export function problemBody(err: ErrorSpec, requestId: string | undefined): string {
  return JSON.stringify({
    type: `urn:portcullis:problem:${err.code}`,
    title: err.title,
    status: err.status,
    code: err.code,
    ...(requestId === undefined ? {} : { request_id: requestId }),
    // Validation failures list their locations and rules (never the values): safe by construction.
    ...problemItems(err),
  });
}

/**
 * Headers every gateway-generated answer carries, whatever the route: the
 * same hardening as proxied responses.
 */
export const PROBLEM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/problem+json',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

/**
 * Writes a problem response. Anything that is not a GatewayError becomes a
 * generic 500: its message may carry internals, so it is never rendered.
 */
export function sendProblem(
  res: ServerResponse,
  error: unknown,
  requestId: string | undefined,
  extraHeaders?: Readonly<Record<string, string>>,
): void {
  const err = error instanceof GatewayError ? error : gatewayError('internal');
  if (res.headersSent) {
    // Too late for a clean answer: cut the connection so the client sees a
    // truncated response rather than a silently wrong one.
    res.destroy();
    return;
  }
  const body = problemBody(err, requestId);
  const headers: Record<string, string | number> = {
    ...PROBLEM_HEADERS,
    ...extraHeaders,
    ...err.headers,
    'content-length': Buffer.byteLength(body),
  };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  res.writeHead(err.status, headers);
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
