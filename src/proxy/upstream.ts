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
import {
  type ClientWriteLimits,
  clientWriteLimits,
  clientWriteStats,
  type WriteWatchdog,
  watchWrites,
} from './client-writes.js';

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
    const call = new ForwardCall(upstream, res, opts, resolve, reject);
    upstream.pool.dispatch(
      {
        path: opts.path,
        method: opts.method as Dispatcher.HttpMethod,
        headers: opts.headers,
        body: opts.body,
      },
      call as unknown as Dispatcher.DispatchHandler,
    );
  });
}

/** The forward call listening to a response's 'close', set while its upstream request runs. */
const kCall = Symbol('portcullis.forwardCall');
type WithCall = ServerResponse & { [kCall]?: ForwardCall | undefined };

/** A client that went away aborts the upstream request of its response, if one still runs. */
function onResponseClose(this: WithCall): void {
  const call = this[kCall];
  if (call !== undefined && !call.done) call.abort?.(new Error('client went away'));
}

function onResponseDrain(this: WithCall): void {
  this[kCall]?.drained();
}

function onHeadersTimeout(call: ForwardCall): void {
  call.headersTimer = undefined;
  const ms = call.upstream.settings.headersTimeoutMs;
  call.abort?.(
    gatewayError('upstreamTimeout', { internal: `no response headers within ${ms} ms (headers_timeout)` }),
  );
}

/**
 * One upstream call, as undici's original handler interface: a handler with
 * the newer onRequestStart/onResponse* methods is wrapped by undici in an
 * adapter that parses every response's headers into an object, which the
 * gateway does not need (it reads the raw pairs). Major 7 supports both.
 *
 * A class rather than a handler literal of closures: its methods live on the
 * prototype, so a request allocates one object where it allocated about
 * fifteen functions and their contexts (about 1.6 KB of garbage a request
 * in the allocation profile).
 */
class ForwardCall {
  abort: ((err: Error) => void) | undefined = undefined;
  done = false;
  headersTimer: NodeJS.Timeout | undefined = undefined;
  private buffered: BufferedResponse | undefined = undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  // A body to filter whose length the upstream announced is copied into one buffer as it
  // arrives: no list of chunks and no second copy to join them (half the memory at the peak).
  private whole: Buffer | undefined = undefined;
  /** True while the upstream connection is paused for this client (its bytes wait). */
  private paused = false;
  private resumeUpstream: (() => void) | undefined = undefined;
  private readonly limits: ClientWriteLimits;
  private readonly watchdog: WriteWatchdog;

  constructor(
    readonly upstream: Upstream,
    private readonly res: ServerResponse,
    private readonly opts: ForwardOptions,
    private readonly resolve: () => void,
    private readonly reject: (err: unknown) => void,
  ) {
    const limits = clientWriteLimits(res);
    this.limits = limits;
    this.watchdog = watchWrites(res, limits, this);
    (res as WithCall)[kCall] = this;
    res.on('close', onResponseClose);
  }

  /** Whether this call holds a paused upstream connection that other requests wait for. */
  contended(): boolean {
    return !this.done && this.paused && this.upstream.pool.stats.pending > 0;
  }

  /** The client stopped reading (see src/proxy/client-writes.ts): the upstream call is aborted. */
  stalled(early: boolean): void {
    clientWriteStats.timedOut++;
    if (!this.done) {
      clientWriteStats.upstreamAborted++;
      if (early) clientWriteStats.contended++;
      const limits = this.limits;
      const [ms, key] = early
        ? [limits.contendedWriteTimeoutMs, 'contended_write_timeout']
        : [limits.writeTimeoutMs, 'write_timeout'];
      this.abort?.(
        gatewayError('requestTimeout', {
          internal: `the client took none of the response for ${ms} ms (listen.limits.${key})`,
        }),
      );
    }
    this.res.destroy();
  }

  private clearHeadersTimer(): void {
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    this.headersTimer = undefined;
  }

  /** Stops listening to the response's 'close': the upstream request is over. */
  private detach(): void {
    const res = this.res as WithCall;
    if (res[kCall] === this) res[kCall] = undefined;
    res.off('close', onResponseClose);
  }

  onConnect(abort: (err: Error) => void): void {
    this.abort = abort;
    // Called when the request is written on a connection: the wait in the pool's queue is not counted.
    this.headersTimer = setTimeout(onHeadersTimeout, this.upstream.settings.headersTimeoutMs, this);
  }

  // As undici does: the headers timeout counts from the last request body bytes sent.
  onBodySent(): void {
    this.headersTimer?.refresh();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.clearHeadersTimer();
    const buffered = this.opts.onHead(statusCode, rawHeaders);
    this.buffered = buffered;
    if (buffered !== undefined && this.opts.method !== 'HEAD' && statusCode !== 204 && statusCode !== 304) {
      const length = contentLength(rawHeaders);
      if (length !== undefined && length <= buffered.limit) this.whole = Buffer.allocUnsafe(length);
    }
    if (buffered === undefined) this.resumeUpstream = resume;
    return true;
  }

  /** The client took the bytes that waited: the upstream connection reads again. */
  drained(): void {
    this.paused = false;
    this.resumeUpstream?.();
  }

  onData(chunk: Buffer): boolean {
    const buffered = this.buffered;
    if (buffered !== undefined) {
      this.size += chunk.length;
      const size = this.size;
      if (size > buffered.limit) {
        this.chunks = [];
        this.abort?.(
          gatewayError('upstreamTooLarge', { internal: `response passed ${buffered.limit} bytes` }),
        );
        return true;
      }
      const whole = this.whole;
      if (whole !== undefined && size <= whole.length) chunk.copy(whole, size - chunk.length);
      else {
        if (whole !== undefined) {
          // Longer than announced: back to a list of chunks.
          this.chunks.push(whole.subarray(0, size - chunk.length));
          this.whole = undefined;
        }
        this.chunks.push(chunk);
      }
      return true;
    }
    const res = this.res;
    const ok = res.write(chunk);
    this.watchdog.wrote();
    // false pauses the upstream socket until 'drain' calls resume(); but
    // while less than write_buffer waits for this client, reading goes
    // on, so a response that fits never holds the upstream connection.
    if (ok || res.writableLength < this.limits.writeBufferBytes) return true;
    if (!this.paused) res.once('drain', onResponseDrain);
    this.paused = true;
    return false;
  }

  onComplete(): void {
    this.done = true;
    this.clearHeadersTimer();
    this.detach();
    try {
      const buffered = this.buffered;
      if (buffered !== undefined) {
        // (A body shorter than announced is copied out: never a view of unwritten memory.)
        const { whole, size } = this;
        const body =
          whole === undefined
            ? Buffer.concat(this.chunks, size)
            : size === whole.length
              ? whole
              : Buffer.from(whole.subarray(0, size));
        this.chunks = [];
        this.whole = undefined;
        buffered.complete(body);
      } else this.res.end();
      // What still waits for the client is watched until it is taken or the client is closed.
      this.watchdog.wrote();
      this.resolve();
    } catch (err) {
      this.reject(err);
    }
  }

  onError(err: Error): void {
    this.done = true;
    this.clearHeadersTimer();
    this.watchdog.stop();
    this.chunks = [];
    this.whole = undefined;
    this.detach();
    this.reject(toGatewayError(err));
  }
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
