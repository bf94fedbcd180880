/** Parsing of the human units used in the config: durations and sizes. */

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const DURATION_PATTERN = DURATION.source;

/** `"500ms"`, `"10s"`, `"5m"`, `"2h"`, `"90d"` → milliseconds. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * DURATION_MS[m[2]!]!;
}

const SIZE = /^(\d+)(b|kb|mb|gb)$/;
const SIZE_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

export const SIZE_PATTERN = SIZE.source;

/** `"512b"`, `"16kb"`, `"1mb"`, `"1gb"` → bytes (binary multiples). */
export function parseSize(text: string): number {
  const m = SIZE.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * SIZE_BYTES[m[2]!]!;
}
