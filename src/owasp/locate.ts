/**
 * Lines of YAML (or JSON) nodes, for the report's locations: the config's
 * `routes[3]`, an API document's `/paths/~1users/get`. A file that cannot be
 * read or parsed gives no lines, never an error: locations are a courtesy.
 */
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';

export type Segment = string | number;

export interface Lines {
  /** The 1-based line of the node at `segments` (the key's line in a mapping), or of its nearest ancestor. */
  line(segments: readonly Segment[]): number | undefined;
  /** The value at `segments` in the parsed file. */
  value(segments: readonly Segment[]): unknown;
}

const NONE: Lines = { line: () => undefined, value: () => undefined };

export function readLines(file: string): Lines {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return NONE;
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: false });
  if (doc.errors.length > 0) return NONE;
  const js = doc.toJS({ maxAliasCount: 100 }) as unknown;
  return {
    line(segments) {
      let node: unknown = doc.contents;
      let offset = (node as Node | null)?.range?.[0];
      for (const seg of segments) {
        if (isMap(node)) {
          const pair = node.items.find(
            (p) => String((p.key as { value?: unknown } | null)?.value) === String(seg),
          );
          if (!pair) break;
          offset = (pair.key as Node | null)?.range?.[0] ?? offset;
          node = pair.value;
        } else if (isSeq(node) && typeof seg === 'number') {
          const item = node.items[seg] as Node | undefined;
          if (!item) break;
          offset = item.range?.[0] ?? offset;
          node = item;
        } else break;
      }
      return offset === undefined ? undefined : counter.linePos(offset).line;
    },
    value(segments) {
      let cur = js;
      for (const seg of segments) {
        if (cur === null || typeof cur !== 'object') return undefined;
        cur = (cur as Record<string, unknown>)[seg];
      }
      return cur;
    },
  };
}

/** `/paths/~1users/get` → `['paths', '/users', 'get']`. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}
