/**
 * Live decisions for the console: request and admin events as
 * Server-Sent Events, filtered per client.
 *
 * Memory is bounded per client: an event is written at once, and a client
 * whose unsent output passes `maxBufferBytes` (it reads slower than events
 * come) is dropped; its buffer never grows past that. With no client
 * connected, an event costs one size check. Hand-written: SSE is a few lines
 * of text framing over a response, and no library bounds a slow client this way.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventSink, SecurityEvent } from '../../events/types.js';
import type { Logger } from '../../log.js';

export interface LiveFilter {
  type?: 'request' | 'admin' | undefined;
  decision?: string | undefined;
  route?: string | undefined;
  principal?: string | undefined;
  ip?: string | undefined;
}

export interface LiveHubOptions {
  /** Most streams at once. Default 20. */
  maxClients?: number;
  /** Unsent bytes a client may hold before it is dropped. Default 256 KiB. */
  maxBufferBytes?: number;
  /** A comment line this often keeps proxies from closing an idle stream, and checks the session. Default 15 s. */
  heartbeatMs?: number;
  logger: Logger;
}

interface Client {
  res: ServerResponse;
  filter: LiveFilter;
  /** Whether the stream may go on (its session is still live). */
  allowed: () => boolean;
}

const MAX_PATH = 512;

function matches(f: LiveFilter, e: SecurityEvent): boolean {
  if (f.type !== undefined && f.type !== e.type) return false;
  if (e.type === 'admin') {
    // Admin acts have no decision, route or client of their own: a filter on those excludes them.
    return (
      f.decision === undefined && f.route === undefined && f.principal === undefined && f.ip === undefined
    );
  }
  if (f.decision !== undefined && f.decision !== e.decision) return false;
  if (f.route !== undefined && f.route !== e.route) return false;
  if (f.principal !== undefined && f.principal !== e.principal?.id) return false;
  if (f.ip !== undefined && f.ip !== e.clientIp) return false;
  return true;
}

/** The event as the console shows it: no trace context, paths bounded. */
export function liveJson(e: SecurityEvent): Record<string, unknown> {
  if (e.type === 'admin') {
    return {
      type: 'admin',
      time: e.time,
      action: e.action,
      actor: e.actor,
      target: e.target ?? null,
      detail: e.detail ?? null,
    };
  }
  return {
    type: 'request',
    time: e.time,
    requestId: e.requestId,
    clientIp: e.clientIp,
    method: e.method,
    path: e.path.length > MAX_PATH ? `${e.path.slice(0, MAX_PATH)}…` : e.path,
    route: e.route ?? null,
    principal: e.principal?.id ?? null,
    tenant: e.principal?.tenant ?? null,
    decision: e.decision,
    reason: e.reason,
    stage: e.stage ?? null,
    status: e.status,
    latencyMs: Math.round(e.latencyMs * 10) / 10,
  };
}

export class LiveHub implements EventSink {
  private readonly clients = new Set<Client>();
  private readonly maxClients: number;
  private readonly maxBufferBytes: number;
  private readonly heartbeatMs: number;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;

  constructor(options: LiveHubOptions) {
    this.maxClients = options.maxClients ?? 20;
    this.maxBufferBytes = options.maxBufferBytes ?? 256 * 1024;
    this.heartbeatMs = options.heartbeatMs ?? 15_000;
    this.logger = options.logger;
  }

  get size(): number {
    return this.clients.size;
  }

  get full(): boolean {
    return this.clients.size >= this.maxClients;
  }

  emit(event: SecurityEvent): void {
    if (this.clients.size === 0) return;
    let frame: string | undefined;
    for (const c of this.clients) {
      if (!matches(c.filter, event)) continue;
      frame ??= `id: ${++this.seq}\ndata: ${JSON.stringify(liveJson(event))}\n\n`;
      this.write(c, frame);
    }
  }

  /** Starts a stream on `res` (the caller checked authentication, role and `full`). */
  attach(req: IncomingMessage, res: ServerResponse, filter: LiveFilter, allowed: () => boolean): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    });
    res.write('retry: 5000\n\n');
    const client: Client = { res, filter, allowed };
    this.clients.add(client);
    const remove = () => {
      this.clients.delete(client);
      if (this.clients.size === 0 && this.timer !== undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
    req.on('close', remove);
    res.on('close', remove);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.heartbeat(), this.heartbeatMs);
      this.timer.unref();
    }
  }

  /** Ends every stream (shutdown). */
  close(): void {
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private heartbeat(): void {
    for (const c of this.clients) {
      if (!c.allowed()) {
        this.clients.delete(c);
        c.res.end();
        continue;
      }
      this.write(c, ': ping\n\n');
    }
  }

  private write(c: Client, frame: string): void {
    if (c.res.destroyed) {
      this.clients.delete(c);
      return;
    }
    c.res.write(frame);
    const buffered = c.res.writableLength;
    if (buffered > this.maxBufferBytes) {
      this.clients.delete(c);
      c.res.destroy();
      this.logger.warn(
        { buffered, limit: this.maxBufferBytes },
        'console live stream: a client reading too slowly was dropped',
      );
    }
  }
}
