/**
 * The detection engine: libddwaf (Datadog's WAF, through
 * @datadog/native-appsec), with libinjection's SQL and XSS detectors and
 * RE2 regular expressions, running Portcullis's own rule set (`rules.json`).
 *
 * Why libddwaf: it is a maintained, embeddable engine with libinjection
 * inside (the tokenising SQLi/XSS detectors most WAFs use), decoding
 * transformers (URL, HTML entities, JavaScript/Unicode escapes, NFKD),
 * linear-time RE2 regexes and a hard time budget per call, in a prebuilt
 * binary from npm. A list of hand-written JavaScript regexes would miss the
 * obfuscations libinjection catches and risks catastrophic backtracking.
 *
 * libddwaf stops looking past 256 items per container, 4096 bytes per string
 * and 20 levels of nesting (and reports it). So inputs are flattened here:
 * every leaf string becomes one item of a list, lists are chunked into
 * trees of at most 256 per level, and long strings are cut into overlapping
 * windows. Nothing is skipped, and a match's key path leads back to the
 * leaf's location.
 */
import appsec from '@datadog/native-appsec';
import { pointerSegment } from '../../openapi/errors.js';
import type { Category } from '../../openapi/schema.js';
import rules from './rules.json' with { type: 'json' };

/** One input value (or key) and where it is: `['query', 'q']`, `['body', 'items', '0', 'note']`. */
export interface Leaf {
  readonly location: readonly string[];
  readonly text: string;
}

/** The inputs of one request, by part. Keys are inspected as values of their own. */
export interface Inputs {
  path: Leaf[];
  query: Leaf[];
  headers: Leaf[];
  cookies: Leaf[];
  body: Leaf[];
  keys: Leaf[];
}

export interface Detection {
  readonly rule: string;
  readonly category: Category;
  /** The location as a pointer: `/query/q`. */
  readonly location: string;
}

export interface InspectionResult {
  readonly detections: readonly Detection[];
  /** The time budget ran out: some inputs were not inspected. */
  readonly timedOut: boolean;
}

const ADDRESSES: Record<keyof Inputs, string> = {
  path: 'server.request.path_params',
  query: 'server.request.query',
  headers: 'server.request.headers.no_cookies',
  cookies: 'server.request.cookies',
  body: 'server.request.body',
  keys: 'portcullis.request.keys',
};

const CHUNK = 256;
const WINDOW = 4096;
/** Windows overlap by this much, so any payload up to this length is seen whole in one window. */
const OVERLAP = 1024;

type Waf = InstanceType<typeof appsec.DDWAF>;
let waf: Waf | undefined;

/** The engine, built once per process from the rule set (it is immutable and shared by every route). */
function engine(): Waf {
  if (waf === undefined) {
    const built = new appsec.DDWAF(rules, 'portcullis');
    const failed = built.diagnostics.rules;
    if (failed && 'failed' in failed && failed.failed.length > 0) {
      built.dispose();
      throw new Error(
        `inspection rules failed to load: ${failed.failed.join(', ')} ${JSON.stringify(failed.errors)}`,
      );
    }
    waf = built;
  }
  return waf;
}

/** The rule ids by category, for reports and tests. */
export function ruleCategories(): Record<string, Category> {
  const out: Record<string, Category> = {};
  for (const r of rules.rules) out[r.id] = r.tags.type as Category;
  return out;
}

/** Chunks a list into nested lists of at most CHUNK items per level. */
function chunked(items: unknown[]): unknown[] {
  let level = items;
  while (level.length > CHUNK) {
    const next: unknown[][] = [];
    for (let i = 0; i < level.length; i += CHUNK) next.push(level.slice(i, i + CHUNK));
    level = next;
  }
  return level;
}

/** The strings to hand to the engine for one leaf: itself, or overlapping windows of it. */
function windows(text: string): string[] {
  // Bytes, not characters, are what the engine bounds; UTF-8 takes up to 3 bytes per UTF-16 unit.
  if (text.length * 3 <= WINDOW) return [text];
  const size = Math.floor(WINDOW / 3);
  const step = size - Math.floor(OVERLAP / 3);
  const out: string[] = [];
  for (let start = 0; start < text.length; start += step) {
    out.push(text.slice(start, start + size));
    if (start + size >= text.length) break;
  }
  return out;
}

interface Prepared {
  payload: Record<string, unknown>;
  /** Per address: the leaf behind each flattened item. */
  owners: Record<string, Leaf[]>;
}

/**
 * Text that no rule can match: short runs of ASCII letters, digits, `_`,
 * `.` and `-` (ids, enums, numbers, most keys). Every payload of every
 * category needs a space, a quote, a bracket, a slash, `%`, `$`, `;`, `|`,
 * `&`, `<` or another sign outside this set.
 */
const INERT = /^[A-Za-z0-9_.-]{0,128}$/;

function prepare(inputs: Inputs): Prepared {
  const payload: Record<string, unknown> = {};
  const owners: Record<string, Leaf[]> = {};
  for (const part of Object.keys(ADDRESSES) as (keyof Inputs)[]) {
    const leaves = inputs[part];
    if (leaves.length === 0) continue;
    const items: string[] = [];
    const owner: Leaf[] = [];
    // The same text is inspected once per part (JSON keys repeat in every array item); a match
    // names the first place it occurs.
    const seen = new Set<string>();
    for (const leaf of leaves) {
      if (INERT.test(leaf.text) || seen.has(leaf.text)) continue;
      seen.add(leaf.text);
      for (const w of windows(leaf.text)) {
        items.push(w);
        owner.push(leaf);
      }
    }
    if (items.length === 0) continue;
    const address = ADDRESSES[part];
    payload[address] = chunked(items);
    owners[address] = owner;
  }
  return { payload, owners };
}

function toPointer(location: readonly string[]): string {
  return location.map((s) => `/${pointerSegment(s)}`).join('');
}

interface WafEvent {
  rule: { id: string; tags: { type: string } };
  rule_matches: { parameters: { address: string; key_path: (string | number)[] }[] }[];
}

/**
 * Runs the rules over `inputs` within `timeoutMicros`. Detections carry the
 * rule, its category and the input's location, never the matched value.
 */
export function inspect(inputs: Inputs, timeoutMicros: number): InspectionResult {
  const { payload, owners } = prepare(inputs);
  if (Object.keys(payload).length === 0) return { detections: [], timedOut: false };
  const context = engine().createContext();
  try {
    const result = context.run({ persistent: payload }, timeoutMicros);
    const detections: Detection[] = [];
    for (const event of (result.events ?? []) as WafEvent[]) {
      for (const match of event.rule_matches) {
        for (const p of match.parameters) {
          let index = 0;
          for (const k of p.key_path) index = index * CHUNK + Number(k);
          const leaf = owners[p.address]?.[index];
          detections.push({
            rule: event.rule.id,
            category: event.rule.tags.type as Category,
            location: leaf === undefined ? '' : toPointer(leaf.location),
          });
        }
      }
    }
    return { detections, timedOut: result.timeout };
  } finally {
    context.dispose();
  }
}
