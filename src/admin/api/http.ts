/**
 * HTTP plumbing of the admin API: problem+json errors, JSON answers, and a
 * strict, bounded JSON body reader.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROBLEM_HEADERS } from '../../errors.js';

/** An answer with a status and a stable code; `detail` is written by us, never echoes input. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail?: string,
    readonly headers?: Record<string, string>,
  ) {
    super(title);
  }
}

export const problems = {
  unauthenticated: () =>
    new ApiProblem(401, 'auth.required', 'An admin token is required.', undefined, {
      'www-authenticate': 'Bearer realm="portcullis-admin"',
    }),
  invalidToken: () =>
    new ApiProblem(401, 'auth.invalid_credentials', 'The admin token is not valid.', undefined, {
      'www-authenticate': 'Bearer realm="portcullis-admin", error="invalid_token"',
    }),
  forbidden: (needed: string) =>
    new ApiProblem(
      403,
      'authz.forbidden',
      'Your admin role does not allow this.',
      `this needs the ${needed} role or higher`,
    ),
  notFound: () => new ApiProblem(404, 'route.not_found', 'No such resource.'),
  methodNotAllowed: (allow: string[]) =>
    new ApiProblem(
      405,
      'route.method_not_allowed',
      'The method is not allowed on this resource.',
      undefined,
      {
        allow: allow.join(', '),
      },
    ),
  invalid: (detail: string) =>
    new ApiProblem(400, 'input.invalid', 'The request body or parameters are not valid.', detail),
  badJson: () => new ApiProblem(400, 'request.bad_json', 'The request body is not valid JSON.'),
  tooLarge: () => new ApiProblem(413, 'request.body_too_large', 'The request body is too large.'),
  mediaType: () =>
    new ApiProblem(
      415,
      'input.unsupported_media_type',
      'The media type of the request body is not accepted here.',
      'send application/json',
    ),
  conflict: (code: string, detail: string) =>
    new ApiProblem(409, code, 'The resource is not in a state that allows this.', detail),
};

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

export function sendJson(res: ServerResponse, status: number, body: unknown, head = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}

export function sendApiProblem(res: ServerResponse, p: ApiProblem, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify({
    type: `urn:portcullis:problem:${p.code}`,
    title: p.title,
    status: p.status,
    code: p.code,
    ...(p.detail === undefined ? {} : { detail: p.detail }),
  });
  res.writeHead(p.status, {
    ...PROBLEM_HEADERS,
    ...p.headers,
    'content-length': Buffer.byteLength(text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** Whether the request announces a body. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads a JSON object body of at most `limit` bytes. No body is `{}`.
 * 415 for another media type or any content encoding, 413 past the limit
 * (the connection is then closed), 400 for bad JSON or a non-object.
 */
export async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  if (!hasBody(req)) {
    req.resume();
    return {};
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const charset = /;\s*charset=([^;\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (type !== 'application/json' || (charset !== undefined && charset !== 'utf-8')) {
    throw problems.mediaType();
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') throw problems.mediaType();
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw problems.tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(problems.tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve());
    req.on('error', reject);
  });
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw problems.badJson();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw problems.badJson();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw problems.invalid('the body must be a JSON object');
  }
  if (hasDuplicateKeys(text)) throw problems.invalid('the body repeats a member name');
  return value as Record<string, unknown>;
}

/**
 * Whether any object in the JSON text names a member twice (`JSON.parse`
 * keeps the last silently, so two readers of the same body could disagree).
 * The text is already known to be valid JSON.
 */
function hasDuplicateKeys(text: string): boolean {
  const stack: Array<Set<string> | undefined> = [];
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') stack.push(undefined);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = stack[stack.length - 1] !== undefined;
    i++;
  }
  return false;
}

/** Rejects members other than `allowed`. */
export function onlyMembers(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      throw problems.invalid(`unknown member; accepted: ${allowed.join(', ') || '(none)'}`);
    }
  }
}

export function optionalString(body: Record<string, unknown>, name: string, max = 500): string | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw problems.invalid(`${name} must be a string of 1 to ${max} characters`);
  }
  return v;
}

export function requiredString(body: Record<string, unknown>, name: string, max = 500): string {
  const v = optionalString(body, name, max);
  if (v === undefined) throw problems.invalid(`${name} is required`);
  return v;
}
