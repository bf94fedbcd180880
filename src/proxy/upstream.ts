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
import { clientWriteLimits, clientWriteStats, watchWrites } from './client-writes.js';

/**
 * undici checks timeouts above 1 s on a coarse clock (a 499 ms tick,
 * lib/util/timers.js), so its headers timeout fires up to half a second
 * late (a 2 s timeout at 2.5 s) or early. `forward` holds its own timer for
 * the response headers; undici's is only a backstop this much later.
 */
const UNDICI_BACKSTOP_MS = 1000;

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
    headersTimeout: settings.headersTimeoutMs + UNDICI_BACKSTOP_MS,
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
 *
 * A client that stops reading (see src/proxy/client-writes.ts) is closed
 * after `listen.limits.write_timeout` and its upstream request aborted; up
 * to `listen.limits.write_buffer` bytes are buffered for it before the
 * upstream is paused, so a response that fits frees its upstream connection
 * whatever the client does.
 */
export function forward(upstream: Upstream, res: ServerResponse, opts: ForwardOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    let abort: ((err: Error) => void) | undefined;
    let done = false;
    let buffered: BufferedResponse | undefined;
    let chunks: Buffer[] = [];
    let size = 0;
    // A body to filter whose length the upstream announced is copied into one buffer as it
    // arrives: no list of chunks and no second copy to join them (half the memory at the peak).
    let whole: Buffer | undefined;
    let headersTimer: NodeJS.Timeout | undefined;
    const clearHeadersTimer = () => {
      if (headersTimer !== undefined) clearTimeout(headersTimer);
      headersTimer = undefined;
    };
    // True while the upstream connection is paused for this client (its bytes wait).
    let paused = false;
    const limits = clientWriteLimits(res);
    const contended = () => !done && paused && upstream.pool.stats.pending > 0;
    const watchdog = watchWrites(res, limits, contended, (early) => {
      clientWriteStats.timedOut++;
      if (!done) {
        clientWriteStats.upstreamAborted++;
        if (early) clientWriteStats.contended++;
        const [ms, key] = early
          ? [limits.contendedWriteTimeoutMs, 'contended_write_timeout']
          : [limits.writeTimeoutMs, 'write_timeout'];
        abort?.(
          gatewayError('requestTimeout', {
            internal: `the client took none of the response for ${ms} ms (listen.limits.${key})`,
          }),
        );
      }
      res.destroy();
    });
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
        // Called when the request is written on a connection: the wait in the pool's queue is not counted.
        const ms = upstream.settings.headersTimeoutMs;
        headersTimer = setTimeout(() => {
          headersTimer = undefined;
          a(
            gatewayError('upstreamTimeout', {
              internal: `no response headers within ${ms} ms (headers_timeout)`,
            }),
          );
        }, ms);
      },
      // As undici does: the headers timeout counts from the last request body bytes sent.
      onBodySent() {
        headersTimer?.refresh();
      },
      onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
        if (statusCode < 200) return true;
        clearHeadersTimer();
        buffered = opts.onHead(statusCode, rawHeaders);
        if (buffered !== undefined && opts.method !== 'HEAD' && statusCode !== 204 && statusCode !== 304) {
          const length = contentLength(rawHeaders);
          if (length !== undefined && length <= buffered.limit) whole = Buffer.allocUnsafe(length);
        }
        if (buffered === undefined) {
          res.on('drain', () => {
            paused = false;
            resume();
          });
        }
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
          if (whole !== undefined && size <= whole.length) chunk.copy(whole, size - chunk.length);
          else {
            if (whole !== undefined) {
              // Longer than announced: back to a list of chunks.
              chunks.push(whole.subarray(0, size - chunk.length));
              whole = undefined;
            }
            chunks.push(chunk);
          }
          return true;
        }
        const ok = res.write(chunk);
        watchdog.wrote();
        // false pauses the upstream socket until 'drain' calls resume(); but
        // while less than write_buffer waits for this client, reading goes
        // on, so a response that fits never holds the upstream connection.
        if (ok || res.writableLength < limits.writeBufferBytes) return true;
        paused = true;
        return false;
      },
      onComplete() {
        done = true;
        clearHeadersTimer();
        res.off('close', onClose);
        try {
          if (buffered !== undefined) {
            // (A body shorter than announced is copied out: never a view of unwritten memory.)
            const body =
              whole === undefined
                ? Buffer.concat(chunks, size)
                : size === whole.length
                  ? whole
                  : Buffer.from(whole.subarray(0, size));
            chunks = [];
            whole = undefined;
            buffered.complete(body);
          } else res.end();
          // What still waits for the client is watched until it is taken or the client is closed.
          watchdog.wrote();
          resolve();
        } catch (err) {
          reject(err);
        }
      },
      onError(err: Error) {
        done = true;
        clearHeadersTimer();
        watchdog.stop();
        chunks = [];
        whole = undefined;
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

/** The Content-Length of raw response headers, when there is exactly one valid one. */
function contentLength(rawHeaders: Buffer[]): number | undefined {
  let found: number | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 14 || name.toString('latin1').toLowerCase() !== 'content-length') continue;
    const value = rawHeaders[i + 1]!.toString('latin1').trim();
    if (found !== undefined || !/^\d{1,15}$/.test(value)) return undefined;
    found = Number(value);
  }
  return found;
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
