/**
 * HTTP plumbing of the OAuth endpoints: bounded form bodies, client
 * authentication (RFC 6749 §2.3.1) and OAuth error objects (RFC 6749 §5.2).
 *
 * The endpoints answer with OAuth's own JSON errors, not the gateway's
 * problem+json: OAuth clients (oauth4webapi, openid-client, every SDK) parse
 * `{ error, error_description }` and switch on `error`, so anything else would
 * surface as an unexplained failure in them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, PROBLEM_HEADERS } from '../errors.js';
import { rejections } from '../events/request-event.js';

/** Largest form body accepted by the token and revocation endpoints. */
export const MAX_FORM_BYTES = 8 * 1024;

/** RFC 6749 §5.2 error codes used here. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'server_error'
  | 'temporarily_unavailable';

/** An OAuth error answer; `description` is public, so it never holds request data or internals. */
export class OAuthError extends Error {
  override readonly name = 'OAuthError';

  constructor(
    readonly status: number,
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly headers: Readonly<Record<string, string>> = {},
    /** The audit reason, when it is not `oauth.<error>` (`auth.invalid_client`, `auth.locked_out`). */
    readonly code?: string,
    /** Detail for the audit log; never sent. */
    readonly internal?: string,
  ) {
    super(description);
  }
}

/** The audit reason of an OAuth error answer. */
function auditCode(err: OAuthError): string {
  if (err.code !== undefined) return err.code;
  return err.error === 'invalid_client' ? 'auth.invalid_client' : `oauth.${err.error}`;
}

// RFC 6749 §5.1: token responses must not be cached; Pragma for HTTP/1.0 caches.
const NO_STORE: Readonly<Record<string, string>> = { 'cache-control': 'no-store', pragma: 'no-cache' };

/**
 * Writes a JSON answer (no body when `body` is undefined) with the gateway's
 * hardening headers, and `Cache-Control: no-store` unless `headers` sets
 * another Cache-Control.
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  requestId: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  const { 'content-type': _problemType, 'cache-control': _cache, ...hardening } = PROBLEM_HEADERS;
  res.writeHead(status, {
    ...hardening,
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(headers['cache-control'] === undefined ? NO_STORE : {}),
    ...headers,
    'content-length': Buffer.byteLength(text),
    'x-request-id': requestId,
  });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}

/**
 * Writes an RFC 6749 §5.2 error object, and records it as the gateway's own
 * answer, so the request's security event is a `deny` (or `error` for 5xx)
 * with its reason, like every other answer the gateway writes itself.
 */
export function sendOAuthError(res: ServerResponse, err: OAuthError, requestId: string): void {
  rejections.set(
    res,
    new GatewayError(
      { code: auditCode(err), status: err.status, title: err.description },
      { internal: err.internal ?? err.description },
    ),
  );
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, { error: err.error, error_description: err.description }, requestId, err.headers);
}

/** 400 invalid_request. */
export function invalidRequest(description: string): OAuthError {
  return new OAuthError(400, 'invalid_request', description);
}

/**
 * 401 invalid_client. Always with a Basic challenge: RFC 6749 §5.2 requires
 * it when the client used the Authorization header, and RFC 9110 §15.5.2
 * requires a challenge on every 401.
 */
export function invalidClient(internal?: string): OAuthError {
  return new OAuthError(
    401,
    'invalid_client',
    'client authentication failed',
    { 'www-authenticate': 'Basic realm="portcullis", charset="UTF-8"' },
    undefined,
    internal,
  );
}

function tooLarge(): OAuthError {
  // Connection: close, so the unread rest of the body is not parsed as a next request nor drained.
  return new OAuthError(413, 'invalid_request', `the request body is larger than ${MAX_FORM_BYTES} bytes`, {
    connection: 'close',
  });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('the client closed the connection before the body was complete'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The parameters of a form body, parameters sent without a value left out (RFC 6749 §3.2). */
export type FormParams = ReadonlyMap<string, string>;

/**
 * Reads an `application/x-www-form-urlencoded` body (RFC 6749 §4.4.2, §3.2)
 * of at most {@link MAX_FORM_BYTES}, without buffering more than that.
 *
 * @throws OAuthError invalid_request for another media type or encoding, a
 * body that is not UTF-8, or a parameter given twice; 413 when too large.
 */
export async function readForm(req: IncomingMessage): Promise<FormParams> {
  const [media, ...params] = (req.headers['content-type'] ?? '')
    .split(';')
    .map((s) => s.trim().toLowerCase());
  if (media !== 'application/x-www-form-urlencoded') {
    throw invalidRequest('the request body must be application/x-www-form-urlencoded');
  }
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw invalidRequest('the request body must be UTF-8');
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw invalidRequest('compressed request bodies are not accepted');
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_FORM_BYTES) throw tooLarge();
  let text: string;
  try {
    text = UTF8.decode(await readBody(req, MAX_FORM_BYTES));
  } catch (err) {
    if (err instanceof OAuthError) throw err;
    throw invalidRequest('the request body is not valid UTF-8');
  }
  const form = new URLSearchParams(text);
  const out = new Map<string, string>();
  const seen = new Set<string>();
  for (const [key, value] of form) {
    // RFC 6749 §3.2: parameters MUST NOT be included more than once.
    if (seen.has(key)) throw invalidRequest(`the parameter ${safeName(key)} appears more than once`);
    seen.add(key);
    if (value !== '') out.set(key, value);
  }
  return out;
}

/** A parameter name fit to echo in an error description. */
function safeName(name: string): string {
  return /^[a-z_]{1,40}$/.test(name) ? `"${name}"` : '(unnamed)';
}

/** Client credentials as presented, not yet verified. */
export interface PresentedClient {
  method: 'client_secret_basic' | 'client_secret_post';
  id: string;
  secret: string;
}

/** RFC 6749 §2.3.1 / Appendix B: each part of the Basic credentials is form-urlencoded. */
function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '));
}

/**
 * Finds the client credentials of a token or revocation request: exactly one
 * of `client_secret_basic` (Authorization: Basic) and `client_secret_post`
 * (client_id and client_secret in the body), per RFC 6749 §2.3.
 *
 * @throws OAuthError invalid_request when both are used, invalid_client when
 * neither is or the Authorization header is not well-formed Basic.
 */
export function findClientCredentials(req: IncomingMessage, form: FormParams): PresentedClient {
  const header = req.headers.authorization;
  const bodyId = form.get('client_id');
  const bodySecret = form.get('client_secret');
  if (header !== undefined && bodySecret !== undefined) {
    // RFC 6749 §2.3: the client MUST NOT use more than one authentication method in each request.
    throw invalidRequest('use one client authentication method: the Authorization header or client_secret');
  }
  if (header !== undefined) {
    // RFC 9110 §11.1: the scheme is case-insensitive.
    const m = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
    if (!m) throw invalidClient();
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw invalidClient();
    let id: string;
    let secret: string;
    try {
      id = formDecode(decoded.slice(0, colon));
      secret = formDecode(decoded.slice(colon + 1));
    } catch {
      throw invalidClient();
    }
    if (bodyId !== undefined && bodyId !== id) {
      throw invalidRequest('client_id in the body differs from the one in the Authorization header');
    }
    return { method: 'client_secret_basic', id, secret };
  }
  if (bodySecret !== undefined) {
    if (bodyId === undefined) throw invalidRequest('client_secret was sent without client_id');
    return { method: 'client_secret_post', id: bodyId, secret: bodySecret };
  }
  throw invalidClient();
}
