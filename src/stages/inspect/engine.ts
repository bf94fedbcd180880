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
 * every leaf string becomes one item of a list, and lists are chunked into
 * trees of at most 256 per level. Nothing is skipped, and a match's key path
 * leads back to the leaf's location (every window of a leaf is owned by it).
 *
 * Long strings, and the guarantee. A string longer than 4096 UTF-8 bytes is
 * inspected as overlapping windows, and the rule is: any stretch of at most
 * MAX_SPAN (2048) bytes of the string lies whole inside at least one window.
 * Windows hold at most 4096 bytes (the engine's limit, marks included) and
 * each starts so that it shares at least MAX_SPAN bytes with the one before;
 * a stretch that starts in one window's lead-in therefore ends before that
 * window does. Windows are cut on code point boundaries, counted in UTF-8
 * bytes as the engine counts them: a multi-byte character or a surrogate
 * pair is never split (a split would reach the engine as U+FFFD). The cost
 * is that each byte is inspected about twice.
 *
 * Padding. What makes a payload long is nearly always filler between its
 * tokens: `x' OR` + 800 spaces + `'1'='1`. Before windowing, a long string
 * has each run of padding squeezed to the distinct tokens in it, in order of
 * first appearance: whitespace characters (any `\s`, and NUL), empty SQL
 * comments (slash, two stars, slash) and the URL escapes of whitespace and
 * NUL (`%20`, `%09`, `%0a`-`%0d`, `%00`). So 800 spaces become one space
 * and `\r\n\r\n` becomes `\r\n`. Keeping one of each kind (not one space)
 * keeps the meaning to every detector: a newline still ends a `--` SQL
 * comment and still separates shell commands, a NUL is still there for the
 * NUL rule, an empty comment still looks like an evasion. (Over the attack
 * corpora with their spaces padded out, squeezing loses no detection.)
 * Comments with content are not squeezed: to MySQL a comment opening with
 * `/*!` is code, and `/*` is not a comment at all in HTML. So the guarantee
 * holds for payloads up to MAX_SPAN bytes once padding runs are squeezed;
 * filler the engine itself decodes (`&#32;`, `\u0020`) or comments with
 * text in them count at full length. A string that fits one window as
 * received is inspected exactly as received.
 *
 * Window edges. A window that does not reach the string's start or end is
 * flanked by U+FFFD, so a cut never passes for the real start or end of the
 * value: `^`- and `$`-anchored rules (`; ls$`, `^\s*1 or true`) cannot fire on
 * a cut (U+FFFD is not a word, space, quote or sign any rule looks for, and
 * NFKD leaves it alone). An edge can still cut an escape (`%2|7`, `&#3|9;`)
 * or a combining sequence; that only garbles a few bytes at a cut, which the
 * overlap guarantees the neighbouring window holds whole.
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
/** The most UTF-8 bytes of a string the engine reads. */
const WINDOW = 4096;
/** Any stretch of a long string up to this many bytes (after squeezing padding) is seen whole in one window. */
export const MAX_SPAN = 2048;
/** Flanks a window's cut edges (3 bytes of UTF-8 each). */
const CUT = '\uFFFD';
/** The bytes of text a window holds, leaving room for a mark at each cut edge. */
const BODY = WINDOW - 2 * 3;

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

/** One run of padding: two or more whitespace characters, NULs, empty SQL comments or their URL escapes. */
const PADDING = /(?:[\s\0]|\/\*\*\/|%[02]0|%0[9a-dA-D]){2,}/g;

/** A run of padding as the distinct tokens in it, in order of first appearance. */
function squeezeRun(run: string): string {
  let out = '';
  for (let i = 0; i < run.length; ) {
    const c = run[i];
    const n = c === '/' ? 4 : c === '%' ? 3 : 1;
    const token = run.slice(i, i + n);
    // Tokens start with a sign no other token contains, so a substring match is a token match.
    if (!out.includes(token)) out += token;
    i += n;
  }
  return out;
}

/** `text` with each run of padding squeezed (see the header). */
export function squeeze(text: string): string {
  return text.replace(PADDING, squeezeRun);
}

/** UTF-8 bytes of the code point starting at `text[i]` (a lone surrogate is sent as U+FFFD: 3). */
function bytesAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c < 0xdc00) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d < 0xe000) return 4;
  }
  return 3;
}

/** UTF-16 units of the code point ending just before `text[end]`. */
function unitsBefore(text: string, end: number): number {
  const c = text.charCodeAt(end - 1);
  if (c >= 0xdc00 && c < 0xe000 && end >= 2) {
    const h = text.charCodeAt(end - 2);
    if (h >= 0xd800 && h < 0xdc00) return 2;
  }
  return 1;
}

/**
 * The strings to hand to the engine for one leaf: itself if it fits one
 * window, else its squeezed form, or overlapping windows of that (see the
 * header for the guarantee). Linear in the length of `text`.
 */
export function windows(text: string): string[] {
  if (text.length * 3 <= WINDOW || Buffer.byteLength(text, 'utf8') <= WINDOW) return [text];
  const squeezed = squeeze(text);
  const size = Buffer.byteLength(squeezed, 'utf8');
  if (size <= WINDOW) return [squeezed];
  // All ASCII (the common case): one byte per unit, so the edges are plain arithmetic.
  const ascii = size === squeezed.length;
  const out: string[] = [];
  const n = squeezed.length;
  let start = 0;
  for (;;) {
    let end = start;
    if (ascii) end = Math.min(n, start + BODY);
    else {
      let bytes = 0;
      while (end < n) {
        const b = bytesAt(squeezed, end);
        if (bytes + b > BODY) break;
        bytes += b;
        end += b === 4 ? 2 : 1;
      }
    }
    const last = end >= n;
    out.push(`${start === 0 ? '' : CUT}${squeezed.slice(start, end)}${last ? '' : CUT}`);
    if (last) return out;
    // The next window starts as late as it can while sharing at least MAX_SPAN bytes with this one.
    let next = end;
    if (ascii) next = end - MAX_SPAN;
    else {
      let shared = 0;
      while (shared < MAX_SPAN) {
        next -= unitsBefore(squeezed, next);
        shared += bytesAt(squeezed, next);
      }
    }
    start = next;
  }
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
