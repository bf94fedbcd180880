/**
 * Load shedding: the event loop's delay, sampled by `perf_hooks`, decides
 * whether the gateway is overloaded. The per-request check reads one
 * boolean; the measuring happens on a timer.
 *
 * The worst delay of the last sample window is used, not the mean: a
 * request that arrives during a 300 ms stall waits 300 ms whatever the mean
 * says. While it is past the threshold, requests are answered 503 at once,
 * which is what lets the loop catch up.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

export const SAMPLE_MS = 500;

export class OverloadMonitor {
  private readonly histogram: IntervalHistogram;
  private timer: NodeJS.Timeout | undefined;
  /** The worst event-loop delay of the last window, in ms. */
  delayMs = 0;
  overloaded = false;

  constructor(
    readonly maxDelayMs: number,
    private readonly onChange?: (overloaded: boolean, delayMs: number) => void,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
  }

  start(): void {
    if (this.timer) return;
    this.histogram.enable();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  /** Reads and resets the histogram; exposed so tests need not wait for the timer. */
  sample(): void {
    this.delayMs = this.histogram.max / 1e6;
    this.histogram.reset();
    this.record(this.delayMs);
  }

  /** Sets the state from a measured delay. */
  record(delayMs: number): void {
    this.delayMs = delayMs;
    const overloaded = delayMs > this.maxDelayMs;
    if (overloaded !== this.overloaded) {
      this.overloaded = overloaded;
      this.onChange?.(overloaded, delayMs);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
  }
}
