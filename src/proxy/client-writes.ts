/**
 * Writing to clients that may stop reading (issue 18, item 3).
 *
 * A client that requests a large response and never reads it used to hold
 * its upstream connection for as long as the upstream's body timeout: the
 * response is streamed with back-pressure, so a full client socket pauses
 * the upstream, and a paused upstream connection is lost to the pool. Enough
 * such clients starved every other request to that upstream. Two bounds,
 * from `listen.limits`:
 *
 * - `write_buffer`: the response bytes the gateway buffers for one client
 *   connection before it pauses the upstream. A response that fits is read
 *   whole and its upstream connection goes back to the pool at once,
 *   whatever the client does; memory is bounded by connections × this.
 * - `write_timeout`: while response bytes wait for a client, the client must
 *   take some of them at least once per `write_timeout`; one that takes none
 *   is closed and its upstream request aborted (which frees the upstream
 *   connection). A slow client that keeps reading is not cut.
 * - `contended_write_timeout`: the same, shorter, while the upstream is
 *   paused for this client and other requests wait for a connection to that
 *   upstream: a client that is not reading does not hold a connection others
 *   need for longer than this (500 ms by default), whatever `write_timeout`.
 */
import type { ServerResponse } from 'node:http';

export interface ClientWriteLimits {
  /** `listen.limits.write_timeout`. */
  readonly writeTimeoutMs: number;
  /** `listen.limits.write_buffer`. */
  readonly writeBufferBytes: number;
  /** `listen.limits.contended_write_timeout`. */
  readonly contendedWriteTimeoutMs: number;
}

/** The schema defaults, for responses no listener gave limits to (unit tests of the stage). */
export const DEFAULT_CLIENT_WRITE_LIMITS: ClientWriteLimits = {
  writeTimeoutMs: 10_000,
  writeBufferBytes: 64 * 1024,
  contendedWriteTimeoutMs: 500,
};

const limitsOf = new WeakMap<ServerResponse, ClientWriteLimits>();

/** Called by the listener for each response (src/runtime.ts). */
export function setClientWriteLimits(res: ServerResponse, limits: ClientWriteLimits): void {
  limitsOf.set(res, limits);
}

export function clientWriteLimits(res: ServerResponse): ClientWriteLimits {
  return limitsOf.get(res) ?? DEFAULT_CLIENT_WRITE_LIMITS;
}

/** Process-wide counts, exported as metrics by src/runtime.ts. */
export const clientWriteStats = {
  /** Client connections closed because they took nothing for `write_timeout`. */
  timedOut: 0,
  /** Upstream requests aborted because their client stopped reading. */
  upstreamAborted: 0,
  /** Of those, aborted early because other requests waited for the upstream (`contended_write_timeout`). */
  contended: 0,
};

export interface WriteWatchdog {
  /** Call after each write to the response (and after `end`): arms the watch when bytes wait. */
  wrote(): void;
  /** Stops watching (the response is finished or closed). */
  stop(): void;
}

/** Bytes of the connection that the kernel took: written minus still waiting. */
function delivered(res: ServerResponse): number {
  const socket = res.socket;
  if (socket === null) return 0;
  return (socket.bytesWritten ?? 0) - socket.writableLength;
}

/** What a watch reports to: whether others wait for the upstream, and that the client stalled. */
export interface WriteWatchOwner {
  /** Whether other requests wait for a connection to the same upstream while this one is paused. */
  contended(): boolean;
  /** The client took nothing for the timeout (`contended`: the shorter one); it is closed. */
  stalled(contended: boolean): void;
}

/** The watch of a response, for its 'close' and 'finish' listeners (shared functions, not closures). */
const kWatch = Symbol('portcullis.writeWatch');
type Watched = ServerResponse & { [kWatch]?: WriteWatch | undefined };

function stopWatch(this: Watched): void {
  this[kWatch]?.stop();
}

function checkWatch(watch: WriteWatch): void {
  watch.check();
}

/**
 * Watches a response's bytes waiting for the client. While some wait, it
 * checks every quarter of the shorter timeout (10–500 ms) whether the client
 * took any since the last check; when none was taken for `writeTimeoutMs`
 * (or for `contendedWriteTimeoutMs` while `owner.contended()` says so), it
 * calls `owner.stalled` (which closes the client). Costs nothing for a
 * client that keeps up: the watch is armed only while bytes wait.
 *
 * A class with shared listeners rather than closures: one object a response
 * where there were six functions and two `once` wrappers.
 */
class WriteWatch implements WriteWatchdog {
  private timer: NodeJS.Timeout | undefined = undefined;
  private lastDelivered = 0;
  private lastProgressAt = 0;
  private stopped = false;
  private readonly timeoutMs: number;
  private readonly shortMs: number;
  private readonly step: number;

  constructor(
    private readonly res: ServerResponse,
    limits: ClientWriteLimits,
    private readonly owner: WriteWatchOwner,
  ) {
    const timeoutMs = limits.writeTimeoutMs;
    this.timeoutMs = timeoutMs;
    this.shortMs = Math.min(timeoutMs, limits.contendedWriteTimeoutMs);
    // 125 ms with the defaults: a stall is seen within a quarter of the timeout, at a few timer
    // runs per second per connection whose bytes wait.
    this.step = Math.max(10, Math.min(500, Math.floor(this.shortMs / 4)));
    (res as Watched)[kWatch] = this;
    // `on`, not `once`: each is emitted once, and `stop` may run twice; no wrapper per listener.
    res.on('close', stopWatch);
    res.on('finish', stopWatch);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  check(): void {
    this.timer = undefined;
    const res = this.res;
    if (this.stopped || res.destroyed) {
      this.stop();
      return;
    }
    if (res.writableLength === 0) return; // everything taken: disarmed until the next write
    const now = performance.now();
    const d = delivered(res);
    if (d !== this.lastDelivered) {
      this.lastDelivered = d;
      this.lastProgressAt = now;
    }
    const idle = now - this.lastProgressAt;
    if (idle >= this.timeoutMs) {
      this.stop();
      this.owner.stalled(false);
      return;
    }
    if (idle >= this.shortMs && this.owner.contended()) {
      this.stop();
      this.owner.stalled(true);
      return;
    }
    this.timer = setTimeout(checkWatch, this.step, this);
  }

  wrote(): void {
    const res = this.res;
    if (this.stopped || this.timer !== undefined || res.writableLength === 0) return;
    this.lastDelivered = delivered(res);
    this.lastProgressAt = performance.now();
    this.timer = setTimeout(checkWatch, Math.min(this.step, this.timeoutMs), this);
  }
}

/** Starts watching `res`; see {@link WriteWatch}. */
export function watchWrites(
  res: ServerResponse,
  limits: ClientWriteLimits,
  owner: WriteWatchOwner,
): WriteWatchdog {
  return new WriteWatch(res, limits, owner);
}
