/**
 * The optional transforms of string values in a valid body, applied only
 * where a route configures them and only after validation.
 */
import type { Transform } from '../../openapi/schema.js';

/**
 * C0 and C1 controls except tab, line feed and carriage return, and the
 * bidirectional marks and overrides ("Trojan Source", CVE-2021-42574).
 */
const CONTROL =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;

function transformString(text: string, transforms: readonly Transform[]): string {
  let out = text;
  for (const t of transforms) {
    if (t === 'nfc') out = out.normalize('NFC');
    else if (t === 'trim') out = out.trim();
    else out = out.replace(CONTROL, '');
  }
  return out;
}

/** Applies `transforms` to every string value (not key) of `value`, in place; true when something changed. */
export function applyTransforms(
  value: unknown,
  transforms: readonly Transform[],
): { value: unknown; changed: boolean } {
  if (typeof value === 'string') {
    const out = transformString(value, transforms);
    return { value: out, changed: out !== value };
  }
  let changed = false;
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    const container = node as Record<string, unknown>;
    for (const key of Object.keys(container)) {
      const v = container[key];
      if (typeof v === 'string') {
        const out = transformString(v, transforms);
        if (out !== v) {
          container[key] = out;
          changed = true;
        }
      } else visit(v);
    }
  };
  visit(value);
  return { value, changed };
}
