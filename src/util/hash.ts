/**
 * 32-bit FNV-1a of a string's UTF-16 code units, continuing from `seed`, as an unsigned integer.
 * Fast and unkeyed: for spreading values over tables and sketches, never where an attacker
 * choosing colliding inputs would matter (callers that face that bound their probes).
 */
export function hashString(text: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
