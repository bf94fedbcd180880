/**
 * The request body, read whole once, decoded once and parsed once.
 *
 * - Read within the route's limit (413 as soon as it is passed).
 * - Decoded: `Content-Encoding` gzip, x-gzip, deflate and br (at most two
 *   codings) are removed, with the route's limit applied to the decoded
 *   size too, so a decompression bomb gets 413. Any other coding gets 415.
 *   The upstream then receives the decoded bytes without Content-Encoding:
 *   it acts on exactly what was checked.
 * - Parsed by the strict parser of its kind (JSON, form, multipart, XML,
 *   text). A body of another kind, or one its parser refuses, is kept as
 *   raw text with the parser's problem: stages that need to read it
 *   refuse it; inspection reads the raw text.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { BodyField, BodyProblem, MediaType, RequestBody } from '../contracts/request.js';
import type { RequestContext } from '../contracts/stage.js';
import { gatewayError } from '../errors.js';
import type { JsonLimits } from '../openapi/settings.js';
import { decodeUtf8, parseJson } from './json.js';
import { bodyKindOf } from './media-type.js';
import { parseMultipart } from './multipart.js';
import { parseFormPairs } from './query.js';
import { readXml } from './xml.js';

/** What reading a body needs from the request: its stream and limit. */
interface BodySource {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly limit: number;
}

/** Whether the request declares a body (Content-Length above 0, or chunked; in HTTP/2, DATA frames to come). */
export function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['content-length'] === undefined && http2DataFollows(req)) return true;
  return (
    h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
  );
}

/**
 * An HTTP/2 request is framed by DATA frames, not by a header (RFC 9113
 * §8.1): it has a body, of unannounced length when there is no
 * content-length, unless its HEADERS frame ended the stream. nghttp2 has
 * already refused a content-length the DATA frames do not match.
 */
function http2DataFollows(req: IncomingMessage): boolean {
  if (req.httpVersionMajor !== 2) return false;
  return (req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false;
}

/** Reads the raw bytes of the body, at most `limit`. */
export function readBytes(source: BodySource): Promise<Buffer> {
  const { req, limit } = source;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(
      gatewayError('bodyTooLarge', { internal: `content-length ${declared} > ${limit}` }),
    );
  }
  if (!hasBody(req)) return Promise.resolve(Buffer.alloc(0));
  if (req.headers.expect?.toLowerCase() === '100-continue') source.res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(gatewayError('bodyTooLarge', { internal: `body passed ${limit} bytes` }));
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
      reject(gatewayError('badRequest', { internal: `reading the body failed: ${err.message}` }));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

type Decoder = (buf: Buffer, options: zlib.ZlibOptions | zlib.BrotliOptions) => Promise<Buffer>;

const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: promisify(zlib.gunzip) as Decoder,
  'x-gzip': promisify(zlib.gunzip) as Decoder,
  deflate: promisify(zlib.inflate) as Decoder,
  br: promisify(zlib.brotliDecompress) as Decoder,
};

/** Most content codings applied on top of each other that are decoded. */
const MAX_CODINGS = 2;

/** Removes the content codings (RFC 9110 §8.4: listed in the order applied), within `limit` decoded bytes. */
export async function decodeBody(
  bytes: Buffer,
  encoding: string | undefined,
  limit: number,
): Promise<Buffer> {
  if (encoding === undefined) return bytes;
  const codings = encoding
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length > MAX_CODINGS) {
    throw gatewayError('unsupportedEncoding', { internal: `${codings.length} content codings` });
  }
  let out = bytes;
  for (const coding of codings.reverse()) {
    const decode = DECODERS[coding];
    if (decode === undefined) {
      throw gatewayError('unsupportedEncoding', {
        internal: `content coding ${JSON.stringify(coding.slice(0, 40))}`,
      });
    }
    if (out.length === 0) continue;
    try {
      out = await decode(out, { maxOutputLength: Number.isFinite(limit) ? Math.max(1, limit) : 2 ** 31 - 1 });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw gatewayError('bodyTooLarge', { internal: `decoded body passed ${limit} bytes` });
      }
      throw gatewayError('badRequest', { internal: `the ${coding} body does not decode` });
    }
  }
  return out;
}

const TEXT_CHARSETS = /^(utf-8|utf8|us-ascii)$/i;

/** Parses decoded bytes by the kind of their media type. Never throws. */
export function parseBody(bytes: Buffer, type: MediaType | undefined, jsonLimits: JsonLimits): RequestBody {
  if (bytes.length === 0) return { kind: 'none', bytes };
  const declared = type === undefined ? 'binary' : bodyKindOf(type.essence);
  const raw = (problem: BodyProblem | string | undefined): RequestBody => ({
    kind: 'raw',
    bytes,
    text: decodeUtf8(bytes) ?? bytes.toString('latin1'),
    declared,
    problem: typeof problem === 'string' ? { location: '/body', rule: problem } : problem,
  });
  const charset = type?.parameters.charset;
  if (charset !== undefined && declared !== 'multipart' && !TEXT_CHARSETS.test(charset))
    return raw('charset');
  switch (declared) {
    case 'json': {
      const parsed = parseJson(bytes, jsonLimits);
      return parsed.ok ? { kind: 'json', bytes, value: parsed.value } : raw(parsed.problem);
    }
    case 'form': {
      const text = decodeUtf8(bytes);
      const pairs = text === undefined ? undefined : parseFormPairs(text);
      if (pairs === undefined) return raw('encoding');
      return { kind: 'form', bytes, fields: pairs.map(([name, value]) => ({ name, value })) };
    }
    case 'multipart': {
      const boundary = type?.parameters.boundary;
      if (boundary === undefined) return raw('boundary');
      const parsed = parseMultipart(bytes, boundary);
      if (!parsed.ok) return raw({ location: '/body', rule: 'multipart' });
      const fields: BodyField[] = [];
      for (const part of parsed.parts) {
        if (part.filename !== undefined) {
          fields.push({ name: part.name, value: '', filename: part.filename });
          continue;
        }
        const value = decodeUtf8(part.data);
        if (value === undefined) return raw('encoding');
        fields.push({ name: part.name, value });
      }
      return { kind: 'multipart', bytes, fields };
    }
    case 'xml': {
      const text = decodeUtf8(bytes);
      if (text === undefined) return raw('encoding');
      const parsed = readXml(text);
      return parsed.ok
        ? { kind: 'xml', bytes, leaves: parsed.leaves }
        : raw({ location: '/body', rule: 'xml' });
    }
    case 'text': {
      const text = decodeUtf8(bytes);
      return text === undefined ? raw('encoding') : { kind: 'text', bytes, text };
    }
    default:
      return raw(undefined);
  }
}

/**
 * The request's body, read, decoded and parsed on the first call (by
 * whichever stage needs it first); later calls return the same reading.
 */
export async function readRequestBody(ctx: RequestContext, jsonLimits: JsonLimits): Promise<RequestBody> {
  if (ctx.requestBody !== undefined) return ctx.requestBody;
  const limit = ctx.route.bodyLimit;
  const bytes = await readBytes({ req: ctx.req, res: ctx.res, limit });
  const decoded = await decodeBody(bytes, ctx.headers.get('content-encoding'), limit);
  ctx.body = decoded;
  ctx.requestBody = parseBody(decoded, ctx.contentType, jsonLimits);
  return ctx.requestBody;
}

/**
 * The body to stream upstream, bounded by `limit` (413 when a declared
 * length passes it, or as soon as a chunked body does); undefined when the
 * request has none.
 */
export function streamedBody(req: IncomingMessage, res: ServerResponse, limit: number): Readable | undefined {
  let body: Readable | undefined;
  const length = req.headers['content-length'];
  if (length !== undefined) {
    // llhttp has already rejected malformed and conflicting Content-Length values.
    const n = Number(length);
    if (n > limit) throw gatewayError('bodyTooLarge', { internal: `content-length ${n} > ${limit}` });
    body = n > 0 ? req : undefined;
  } else if (req.headers['transfer-encoding'] !== undefined || http2DataFollows(req)) {
    body = Number.isFinite(limit) ? limitBody(req, limit) : req;
  }
  if (body !== undefined && req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
  return body;
}

/**
 * Streams a chunked body, failing with 413 as soon as it passes `limit`.
 * `pipe` (not `pipeline` or async iteration) on purpose: on failure the
 * client's request must stay open so the 413 can be written to it.
 */
function limitBody(req: IncomingMessage, limit: number): Transform {
  let seen = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) {
        req.unpipe(limiter);
        callback(gatewayError('bodyTooLarge', { internal: `chunked body passed ${limit} bytes` }));
      } else callback(null, chunk);
    },
  });
  req.pipe(limiter);
  return limiter;
}
