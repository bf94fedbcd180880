/**
 * Forwarding to an upstream with undici: one keep-alive Pool per upstream,
 * bounded connections, timeouts, request and response bodies streamed with
 * back-pressure, hop-by-hop headers removed both ways.
 */
import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import type { UpstreamSettings } from '../config/types.js';
import { GatewayError, gatewayError } from '../errors.js';
import type { UpstreamTlsSettings } from '../tls/types.js';
import { upstreamConnectOptions } from '../tls/upstream-tls.js';

/**
 * Response headers that tell an attacker what runs behind the gateway
 * (software, versions, internal hosts, debug links): dropped from every
 * response, streamed or filtered.
 */
export const LEAKY_RESPONSE_HEADERS: readonly string[] = [
  'server',
  'x-powered-by',
  'x-aspnet-version',
  'x-aspnetmvc-version',
  'x-runtime',
  'x-backend-server',
  'x-generator',
  'x-debug-token',
  'x-debug-token-link',
  'x-drupal-cache',
  'x-drupal-dynamic-cache',
  'x-varnish',
  'via',
  'x-served-by',
  'x-upstream',
  'x-envoy-upstream-service-time',
  'x-application-context',
  'x-sourcemap',
  'sourcemap',
  'x-php-version',
  'x-turbo-charged-by',
  'x-litespeed-cache',
  'x-cf-powered-by',
  'x-mod-pagespeed',
  'x-page-speed',
  'x-pingback',
  'x-redirect-by',
];

/** Response headers never returned: hop-by-hop, and ones that only tell an attacker what runs behind. */
export const DROP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  ...LEAKY_RESPONSE_HEADERS,
]);

export interface Upstream {
  readonly settings: UpstreamSettings;
  readonly pool: Pool;
  close(): Promise<void>;
}

export function createUpstream(settings: UpstreamSettings, tls?: UpstreamTlsSettings): Upstream {
  const pool = new Pool(settings.origin, {
    ...(tls ? { connect: upstreamConnectOptions(tls) } : {}),
    connections: settings.connections,
    pipelining: 1,
    connectTimeout: settings.connectTimeoutMs,
    headersTimeout: settings.headersTimeoutMs,
    bodyTimeout: settings.bodyTimeoutMs,
    keepAliveTimeout: settings.keepAliveTimeoutMs,
    keepAliveMaxTimeout: Math.max(settings.keepAliveTimeoutMs, 1000),
  });
  return {
    settings,
    pool,
    // Waits for in-flight requests; the caller bounds the wait.
    close: () => pool.close(),
  };
}

/**
 * Where a response body goes when it must be seen whole before it is sent
 * (response filtering): the gateway collects it, up to `limit` bytes, and
 * hands it to `complete`, which writes the response.
 */
export interface BufferedResponse {
  limit: number;
  complete(body: Buffer): void;
}

export interface ForwardOptions {
  path: string;
  method: string;
  headers: string[];
  body: Dispatcher.DispatchOptions['body'];
  /**
   * Called with the upstream's status and raw header pairs. Either writes
   * the response head itself (the body then streams through) and returns
   * undefined, or returns a BufferedResponse to collect the body first.
   */
  onHead(status: number, rawHeaders: Buffer[]): BufferedResponse | undefined;
}

/**
 * Sends one request upstream and streams (or collects) the response into
 * `res`. Resolves when the response is complete; rejects with a GatewayError
 * (502/504, or the error the request body raised) when nothing has been sent
 * to the client yet, after which the caller renders it.
 */
export function forward(upstream: Upstream, res: ServerResponse, opts: ForwardOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let abort: ((err: Error) => void) | undefined;
    let done = false;
    let buffered: BufferedResponse | undefined;
    let chunks: Buffer[] = [];
    let size = 0;
    const onClose = () => {
      if (!done) abort?.(new Error('client went away'));
    };
    res.once('close', onClose);
    // undici's original handler interface: a handler with the newer
    // onRequestStart/onResponse* methods is wrapped by undici in an adapter
    // that parses every response's headers into an object, which the
    // gateway does not need (it reads the raw pairs). Major 7 supports both.
    const handler = {
      onConnect(a: (err: Error) => void) {
        abort = a;
      },
      onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
        if (statusCode < 200) return true;
        buffered = opts.onHead(statusCode, rawHeaders);
        if (buffered === undefined) res.on('drain', resume);
        return true;
      },
      onData(chunk: Buffer): boolean {
        if (buffered !== undefined) {
          size += chunk.length;
          if (size > buffered.limit) {
            chunks = [];
            abort?.(
              gatewayError('upstreamTooLarge', { internal: `response passed ${buffered.limit} bytes` }),
            );
            return true;
          }
          chunks.push(chunk);
          return true;
        }
        // false pauses the upstream socket until 'drain' calls resume().
        return res.write(chunk);
      },
      onComplete() {
        done = true;
        res.off('close', onClose);
        try {
          if (buffered !== undefined) buffered.complete(Buffer.concat(chunks, size));
          else res.end();
          resolve();
        } catch (err) {
          reject(err);
        }
      },
      onError(err: Error) {
        done = true;
        res.off('close', onClose);
        reject(toGatewayError(err));
      },
    };
    upstream.pool.dispatch(
      {
        path: opts.path,
        method: opts.method as Dispatcher.HttpMethod,
        headers: opts.headers,
        body: opts.body,
      },
      handler as unknown as Dispatcher.DispatchHandler,
    );
  });
}

function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = (err as { code?: string }).code ?? '';
  const internal = `${code} ${(err as Error).message ?? ''}`.trim();
  if (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return gatewayError('upstreamTimeout', { internal, cause: err });
  }
  return gatewayError('upstreamUnavailable', { internal, cause: err });
}

/** Response headers the gateway owns: an upstream's value is replaced, not merged. */
export const OWNED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'strict-transport-security',
  'ratelimit',
  'ratelimit-policy',
  'cache-control',
  'x-content-type-options',
  'content-security-policy',
  'referrer-policy',
  'x-request-id',
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-expose-headers',
  'access-control-allow-methods',
  'access-control-allow-headers',
]);
