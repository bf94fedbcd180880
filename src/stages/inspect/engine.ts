/**
 * The detection engine: libddwaf (Datadog's WAF, through
 * @datadog/native-appsec), with libinjection's SQL and XSS detectors and
 * RE2 regular expressions, running the OWASP Core Rule Set compiled for it
 * (`crs-rules.json`, made by `scripts/compile-crs.ts`) and Portcullis's own
 * rules (`rules.json`: NoSQL, template injection, and the families CRS 4
 * catches that the compiled CRS 3.3 misses).
 *
 * Addresses. Each rule input is a Portcullis address naming a CRS target
 * (`crs.args`, `crs.cookies`, `crs.headers`, `crs.filename`, ...), read from
 * the one parsed view of the request by the stage; `:name` selects one
 * header or argument, `!name` leaves one out (`~` makes it a regex), and
 * `|t=a,b` names transformations libddwaf lacks, done here before libddwaf's
 * own (`removeWhitespace`, `replaceComments`, and the decoding before them).
 *
 * One rule set per paranoia level: the CRS rules of that level and below,
 * with Portcullis's rules, built once per process when a route first asks.
 *
 * What a run costs is mostly libddwaf evaluating every condition of every
 * rule on every value. Measured on libddwaf 1.30 (native-appsec 11), with
 * the paranoia level 1 rules as planned, one core (`bench/inspect/cost.ts`'s
 * JSON body of new values, then 2.9 KB: 96 strings over 29 addresses): a run costs
 * about 5 µs with nothing handed over; anything handed over adds a walk over
 * every rule and input address of the rule set (about 30 µs: one plain
 * string costs a run 37 µs; hence a rule set per group of targets, `ruleSet`,
 * of which a request of new arguments walks one); the binding converts each
 * string at about 0.35 µs and each list at about 1 µs more, whether a rule
 * reads it or not (so an address of one value gets the bare string: `add`; 43 µs for that
 * body, 67 µs with a list per address); the rest is a few tenths of a µs
 * to a µs per condition and value it reads (transformations, regex,
 * libinjection): some 90 µs for that body (165 µs a run in all),
 * libinjection's SQL check on plain values the largest (about 30 µs, until
 * the SQL gate, `sqlSigned`, kept values without a sign of SQL from it), then
 * pc-cmdi-320 (10 µs). Our
 * own `prepare` (transforming, sorting and routing each value) costs that
 * body about 120-150 µs, and what it allocates (35 KB) sets how often the
 * young-generation collector runs (see `admits` and `Memo`).
 * Most values are plain (words, numbers, URLs, prose, and names and prose
 * beyond ASCII: `plain.ts`) and most CRS regexes need a character such
 * values lack, so the rules are planned
 * (`plan`): plain values go to addresses of their own that only the
 * conditions able to match them read, a condition that needs one of a few
 * words reads them through an address of its own that only values holding
 * one of its words go to, and libinjection runs once per plain value, not
 * once per rule (and its SQL check only on values that show a sign of
 * SQL). A reference engine without the plan (tests) must fire exactly the
 * same rules (`plain.test.ts`).
 *
 * Cost. The budget is CPU time, not wall-clock time: a busy machine delays
 * inspection without making it cost more, so it must not turn ordinary
 * requests into 403s. Inspection runs in slices of at most SLICE bytes;
 * after each, the CPU time spent (process CPU time over the run, which on a
 * busy machine is at most the wall time) is compared with the budget, and
 * past it the rest is not inspected (`overBudget`: the stage fails closed).
 * libddwaf's own clock is wall time: it is given a wall ceiling of
 * WALL_FACTOR times the budget, which only a machine stalled for that long
 * reaches.
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
import { openSync, readSync } from 'node:fs';
import appsec from '@datadog/native-appsec';
import { pointerSegment } from '../../openapi/errors.js';
import type { Category } from '../../openapi/schema.js';
import { GenerationalCache } from '../../util/lru.js';
import { type Signs, splitRegex, unicodeBoundaries } from './boundaries.js';
import crsRules from './crs-rules.json' with { type: 'json' };
import { Memo } from './memo.js';
import {
  type Charset,
  canMatchPlain,
  conditionKeys,
  keepsPlain,
  LETTERS,
  LUMPED,
  PLAIN,
  TEXT,
  URLISH,
  WORDS,
} from './plain.js';
import ownRules from './rules.json' with { type: 'json' };
import { type PreTransform, preTransform } from './transforms.js';

/** The CRS targets the stage fills from the request's parsed view. */
export const TARGETS = [
  'args',
  'args_names',
  'cookies',
  'cookies_names',
  'headers',
  'headers_names',
  'filename',
  'basename',
  'uri',
  'query_string',
  'body',
  'files',
] as const;
export type Target = (typeof TARGETS)[number];

/**
 * The engine's three shards (`ruleSet`), by the targets their inputs read: what a request of an
 * API client brings anew (its arguments, path and body), the names and headers that a client's
 * requests mostly repeat, and what API requests seldom carry (cookies, files).
 */
const SHARD_OF: Readonly<Record<Target, number>> = {
  args: 0,
  query_string: 0,
  uri: 0,
  filename: 0,
  basename: 0,
  body: 0,
  args_names: 1,
  headers: 1,
  headers_names: 1,
  cookies: 2,
  cookies_names: 2,
  files: 2,
};
const SHARDS = 3;

/**
 * The sets of shards with a rule set of their own (`ruleSet`), as bit masks (`1 << shard` each):
 * each shard alone; arguments with names and headers, which a client's first request brings all
 * new (without cookies or files, which hold a third of the rules' input addresses); and all.
 */
const SHARD_SETS: readonly number[] = [0b001, 0b010, 0b100, 0b011, 0b111];

/** For each mask of shards a slice hands something to, the smallest of SHARD_SETS holding them. */
const SET_FOR: readonly number[] = Array.from({ length: 1 << SHARDS }, (_, mask) =>
  SHARD_SETS.filter((set) => (set & mask) === mask).reduce((a, b) => (bitCount(b) < bitCount(a) ? b : a)),
);

function bitCount(mask: number): number {
  let n = 0;
  for (let m = mask; m !== 0; m &= m - 1) n++;
  return n;
}

/** One input value (or key) and where it is: `['query', 'q']`, `['body', 'items', '0', 'note']`. */
export interface Leaf {
  readonly location: readonly string[];
  readonly text: string;
}

/** The inputs of one request, by CRS target. */
export type Inputs = Record<Target, Leaf[]>;

export function emptyInputs(): Inputs {
  const out = {} as Inputs;
  for (const t of TARGETS) out[t] = [];
  return out;
}

export interface Detection {
  readonly rule: string;
  readonly category: Category;
  /** The location as a pointer: `/query/q`. */
  readonly location: string;
  /** The leaf's location as segments (for exclusions). */
  readonly segments: readonly string[];
}

export interface InspectionResult {
  readonly detections: readonly Detection[];
  /** The CPU-time budget ran out (or the wall ceiling was reached): some inputs were not inspected. */
  readonly timedOut: boolean;
  /** CPU time spent, in microseconds (within the budget, the wall time: an upper bound of it). */
  readonly cpuMicros: number;
}

/** What the engine knows of a rule: for scoring and exclusions. */
export interface RuleInfo {
  readonly id: string;
  readonly category: Category;
  readonly paranoiaLevel: number;
  /** Anomaly score: critical 5, error 4, warning 3, notice 2. */
  readonly score: number;
  /** CRS tags (`attack-sqli`, `platform-windows`, ...) and the category. */
  readonly tags: readonly string[];
}

interface RawInput {
  address: string;
  transformers?: string[];
}

interface RawCondition {
  operator: string;
  parameters: { inputs: RawInput[]; regex?: string; list?: string[] };
}

interface RawRule {
  id: string;
  name?: string;
  tags: Record<string, string>;
  conditions: RawCondition[];
  transformers?: string[];
}

/**
 * The signs beyond ASCII that end a word in a rule's boundaries (`boundaries.ts`): none for PHP
 * (CRS `language-php`: PHP takes every byte beyond ASCII into a name), Latin-1's for SQL, every
 * sign for the rest (JavaScript, PowerShell, rules of several languages).
 */
function signsOf(rule: RawRule): Signs {
  if ((rule.tags.crs ?? '').split(' ').includes('language-php')) return 'none';
  return rule.tags.type === 'sqli' ? 'latin1' : 'all';
}

/**
 * Both rule sets as the engine runs them: each regex with its word boundaries made to know
 * letters beyond ASCII (`boundaries.ts`: "Haßelt (1599)" holds no SQL function `elt(`).
 */
const ALL_RULES: RawRule[] = [...(crsRules.rules as RawRule[]), ...(ownRules.rules as RawRule[])].map(
  (rule) => ({
    ...rule,
    conditions: rule.conditions.map((c) =>
      c.parameters.regex === undefined
        ? c
        : {
            ...c,
            parameters: { ...c.parameters, regex: unicodeBoundaries(c.parameters.regex, signsOf(rule)) },
          },
    ),
  }),
);

/**
 * The rules whose regex runs as several (`splitRegex`: pieces that match together exactly where it
 * matches), each piece a rule of its own, `<id>/<n>`, reported as the rule (`PIECE_OF`); by rule,
 * the number of pieces. Why: libddwaf gives each regex 512 KB (RE2's `max_mem`), and a regex whose
 * search needs more automaton states than fit leaves RE2's automaton (DFA) for its slow simulation
 * (NFA): tens of ns a byte where most regexes cost one or two. Its pieces each fit. Found with
 * `npm run bench:regex` (each regex's cost per byte of ordinary and attack values), in ns a byte
 * of ordinary values whole and split: pc-cmdi-320 84 and about 1 (two pieces: the backtick
 * parser at its start multiplied the states of the command names); 941160 28 and about 1 (four:
 * a long list of event-handler names after "anything, then a space"); at paranoia level 2, 942480
 * 62 and about 1 (eight), 942150 and 942410 12 and about 1 (two). The reference engine (tests)
 * runs each whole.
 */
const SPLIT: ReadonlyMap<string, number> = new Map([
  ['pc-cmdi-320', 2],
  ['941160', 4],
  ['942480', 8],
  ['942150', 2],
  ['942410', 2],
]);

/** A piece of a SPLIT rule → the rule. */
const PIECE_OF = new Map<string, string>();

/** The rules with each SPLIT rule as its pieces (`SPLIT`). */
function splitPieces(rules: readonly RawRule[]): RawRule[] {
  return rules.flatMap((r) => {
    const count = SPLIT.get(r.id);
    if (count === undefined) return [r];
    const [condition, ...more] = r.conditions;
    const pieces =
      condition?.parameters.regex === undefined ? undefined : splitRegex(condition.parameters.regex, count);
    if (condition === undefined || more.length > 0 || pieces === undefined)
      throw new Error(`inspection rule ${r.id} cannot run as pieces of its regex`);
    return pieces.map((regex, n) => {
      const id = `${r.id}/${n}`;
      PIECE_OF.set(id, r.id);
      return {
        ...r,
        id,
        conditions: [{ ...condition, parameters: { ...condition.parameters, regex } }],
      };
    });
  });
}

function infoOf(r: RawRule): RuleInfo {
  return {
    id: r.id,
    category: r.tags.type as Category,
    paranoiaLevel: Number(r.tags.paranoia_level ?? '1'),
    score: Number(r.tags.score ?? '5'),
    tags: [...(r.tags.crs ?? '').split(' ').filter((t) => t !== ''), r.tags.type ?? ''],
  };
}

const RULES = new Map<string, RuleInfo>(ALL_RULES.map((r) => [r.id, infoOf(r)]));

/** The rules, by id: paranoia level, score, tags and category. */
export function ruleInfo(id: string): RuleInfo | undefined {
  return RULES.get(id);
}

/** The rule ids by category, for reports and tests. */
export function ruleCategories(): Record<string, Category> {
  const out: Record<string, Category> = {};
  for (const r of RULES.values()) out[r.id] = r.category;
  return out;
}

/** The CRS version the compiled rules come from. */
export const CRS_VERSION: string = crsRules.metadata.rules_version;

/**
 * The charsets values are sorted by (see `plain.ts`): a value goes to the first that holds it.
 * Each holds the ones before it but WORDS, which holds PLAIN and URLISH but not TEXT (ASCII with
 * quotes goes to TEXT, letters beyond ASCII without them to WORDS, both to LETTERS).
 */
const TIERS: readonly Charset[] = [PLAIN, URLISH, TEXT, WORDS, LETTERS];

/** Per tier, whether its charset holds characters beyond ASCII (which JavaScript lower-cases for the word test). */
const BEYOND: readonly boolean[] = TIERS.map((t) => [...t.chars].some((c) => c.charCodeAt(0) >= 128));

/** The address suffix for values of a charset: `#plain`. */
function suffix(charset: Charset): string {
  return `#${charset.name}`;
}

/**
 * The address suffix for the values of a charset that hold one of the words of word-filtered
 * condition `w` (see `plan`): `#plain+12`. Read by that condition alone.
 */
function wordSuffix(charset: Charset, w: number): string {
  return `#${charset.name}+${w}`;
}

/**
 * A value's kind, as an index into KINDS: 0 for none of the charsets, then 1 + its tier's index in
 * TIERS. An index, not the suffix, so that an address's full names and cache slots are looked up in
 * arrays made once per engine (`slotted`), not built per value.
 */
const KINDS: readonly string[] = ['', ...TIERS.map((t) => suffix(t))];
/**
 * The kinds an `unshell`-only address does not read when `unshell` left the value as it was (PLAIN
 * and URLISH values: see `identityOn`): such a value is read under the address without `unshell`.
 */
const SKIP_UNCHANGED: readonly boolean[] = KINDS.map((_, k) => {
  const tier = k === 0 ? undefined : TIERS[k - 1];
  return tier === PLAIN || tier === URLISH;
});

/**
 * For an address of PLAIN or URLISH values read through `unshell` alone, the same address without
 * it; else the address itself. `unshell` only drops `\\ ' " ^`, `$` expansions and `[c]` globs,
 * none of which such values hold: a value `unshell` left as it was is already handed over under
 * `crs.args#plain` (say), and is not handed over again as `crs.args|t=unshell#plain` (`prepare`),
 * which spares libddwaf a copy of it; the conditions read both addresses, so the values that
 * `unshell` did change (`w'h'o` → `who`) still reach them under the longer one.
 */
function identityOn(address: string): string {
  const m = /^(.*)\|t=unshell(#(?:plain|urlish)(?:\+\d+)?)$/.exec(address);
  return m === null ? address : `${m[1]}${m[2]}`;
}

/** Whether an address reads through `unshell` alone (see `identityOn`). */
function unshellOnly(address: Address): boolean {
  return address.preNames.length === 1 && address.preNames[0] === 'unshell';
}

/** Operators several rules apply to the same inputs, whose check on a plain value is run once and shared. */
const SHARED_OPERATORS = new Set(['is_sqli', 'is_xss']);

/**
 * Transformations that leave a plain value exactly as it is (so every chain of them gives the same
 * text); on a charset, less its `unsteady` ones (`identical`).
 */
const IDENTITY_ON_PLAIN = new Set([
  'url_decode',
  'url_decode_iis',
  'html_entity_decode',
  'js_decode',
  'css_decode',
  'remove_nulls',
  'unicode_normalize',
  // Values with `--` are not sorted into a charset (`inCharset`): nothing else in them is a comment.
  'remove_comments',
  'urlDecode',
  'urlDecodeUni',
  // Changes only values with `<?`, which no charset holds.
  'removeXmlDeclarations',
  // Leaves a value as it is or empties it, and an empty value is not handed over (`prepare`).
  'sqlSigned',
]);

/** Whether every transformation of a chain leaves the values of a charset as they are. */
function identical(chain: readonly string[], charset: Charset): boolean {
  return chain.every((t) => IDENTITY_ON_PLAIN.has(t) && !charset.unsteady.includes(t));
}

/** The rules as the engine runs them, the shared checks (a shared rule's id → the rules it stands for), the words. */
interface Plan {
  readonly rules: RawRule[];
  readonly shared: ReadonlyMap<string, readonly string[]>;
  /**
   * Per charset, the words of each word-filtered condition (by its index `w`, see `plan`): a value
   * of the charset holding one of them goes to that condition's addresses (`wordSuffix`).
   */
  readonly words: ReadonlyMap<Charset, readonly (readonly string[])[]>;
  /** Per charset, the word-filtered conditions that also read every value of base64 characters alone. */
  readonly base64: ReadonlyMap<Charset, readonly number[]>;
}

/**
 * Whether a chain keeps values of a charset in it but for base64 decoding, and decodes only after
 * transformations that leave such values as they are. libddwaf decodes a value only when it is
 * made of base64 characters (letters, digits, `+ /`, then `=` padding), else leaves it as it is:
 * so a value of a charset holding any other character goes through the chain as through one that
 * keeps the charset, and only the values of base64 characters alone need reading as undecided.
 */
function decodesOnlyBase64(chain: readonly string[], charset: Charset): boolean {
  const at = chain.indexOf('base64_decode');
  if (at < 0 || chain.lastIndexOf('base64_decode') !== at) return false;
  return identical(chain.slice(0, at), charset) && keepsPlain(chain.filter((t) => t !== 'base64_decode'));
}

/**
 * The rules as the engine runs them (each its own libddwaf `type`, see
 * `engine`), cutting what plain values (`plain.ts`) cost:
 *
 * - Non-plain values go to the address itself; plain ones to
 *   `<address>#plain` (and `#urlish`, `#text`, `#letters` for the wider
 *   charsets).
 * - An input also reads plain values only when its condition can match one
 *   (most CRS regexes need a character like `<`, `'`, `(`; libinjection's
 *   XSS check needs one of `< = ' "` or a backtick), or when its
 *   transformations could make a plain value non-plain. Base64 decoding
 *   does so only to values of base64 characters alone (`decodesOnlyBase64`):
 *   such a condition reads the others as if it did not decode, and those
 *   values through its own address (below) as if they held one of its words.
 * - A regex or phrase list whose every match on a plain value contains one
 *   of a few words (`union`, `runtime`, `pg_catalog` ...: `requiredWords`)
 *   does not read `#plain` at all but an address of its own,
 *   `<address>#plain+<w>` (`w` numbers such conditions per charset): a
 *   plain value goes there only when it holds one of that condition's
 *   words. So a value with a word (`sean@example.com` holds `.com`, which
 *   one rule about host names needs) is read by the few conditions that
 *   want that word, not by every word-filtered one: libddwaf's cost is per
 *   condition and value, and most words are in one or two conditions.
 * - Where words are no filter (the chain can join two words into one:
 *   `unshell`, `shell_unescape`), a condition whose every match on a value
 *   of the charset holds one of a few rare signs (`; = ( ' ...`:
 *   `conditionKeys`) reads such values the same way, through an address
 *   of its own that only values holding one of its signs go to. No
 *   transformation keeping a value in its charset makes such a sign.
 * - libinjection, the costliest check, runs once per plain value and
 *   address, not once per rule: on a plain value every chain of
 *   IDENTITY_ON_PLAIN transformations (but for the charset's `unsteady`
 *   ones: `unicode_normalize` on LETTERS) gives the value itself, so `is_sqli`
 *   after `url_decode_iis,remove_nulls` and after
 *   `url_decode_iis,html_entity_decode,remove_nulls` are the same check. A
 *   shared rule (`shared:is_sqli:crs.args#plain`) makes it, and its match is
 *   reported for every rule it stands for.
 */
function plan(rules: readonly RawRule[]): Plan {
  const shared = new Map<string, { operator: string; address: string; rules: string[] }>();
  const words = new Map<Charset, string[][]>(TIERS.map((t) => [t, []]));
  const base64 = new Map<Charset, number[]>(TIERS.map((t) => [t, []]));
  const out: RawRule[] = rules.map((rule) => {
    const single = rule.conditions.length === 1;
    const conditions = rule.conditions.map((c) => {
      const inputs: RawInput[] = [];
      // Per charset, this condition's index among the word-filtered ones (made at its first such input).
      const wordIndex = new Map<Charset, number>();
      for (const input of c.parameters.inputs) {
        inputs.push(input);
        const chain = [
          ...parseAddress(input.address).preNames,
          ...(input.transformers ?? rule.transformers ?? []),
        ];
        for (const tier of TIERS) {
          const share = single && SHARED_OPERATORS.has(c.operator) && identical(chain, tier);
          const all = { ...input, address: `${input.address}${suffix(tier)}` };
          if (share) {
            if (!canMatchPlain(c, tier)) continue;
            const id = `shared:${c.operator}:${all.address}`;
            const group = shared.get(id) ?? { operator: c.operator, address: all.address, rules: [] };
            group.rules.push(rule.id);
            shared.set(id, group);
            continue;
          }
          const decodes = decodesOnlyBase64(chain, tier);
          if (!keepsPlain(chain) && !decodes) {
            inputs.push(all);
            continue;
          }
          // A chain decoding base64 reads, besides what the filter lets through, every value made of
          // base64 characters alone (`BASE64_CHARS`), which base64 decoding may make anything.
          const can = canMatchPlain(c, tier);
          if (!can && !decodes) continue;
          // Words are a filter only where no transformation of the chain can join two into one;
          // the characters of KEY_SYMBOLS (`conditionKeys`) are one whatever the chain.
          const filter = !can
            ? []
            : conditionKeys(
                c,
                tier,
                chain.some((t) => tier.joiners.includes(t)),
              );
          if (filter === null) inputs.push(all);
          else {
            const list = words.get(tier) as string[][];
            let w = wordIndex.get(tier);
            if (w === undefined) {
              w = list.length;
              list.push(filter);
              wordIndex.set(tier, w);
            }
            const decoding = base64.get(tier) as number[];
            if (decodes && !decoding.includes(w)) decoding.push(w);
            inputs.push({ ...input, address: `${input.address}${wordSuffix(tier, w)}` });
          }
        }
      }
      // Where the pre-transformation leaves a charset's values as they are, the values it did not
      // change are read from the address without it (`identityOn`).
      for (const input of [...inputs]) {
        const base = identityOn(input.address);
        if (base !== input.address && !inputs.some((i) => i.address === base))
          inputs.push({ ...input, address: base });
      }
      return { ...c, parameters: { ...c.parameters, inputs } };
    });
    return { ...rule, conditions, tags: { ...rule.tags, type: rule.id } };
  });
  // One shared rule per operator and set of rules it stands for, reading every address that set has
  // in common (a rule's first match is all libddwaf reports, and every rule of the set reads every
  // address of it, so the report is the same): fewer rules is less work per run.
  const merged = new Map<string, { operator: string; addresses: string[]; rules: string[] }>();
  for (const group of shared.values()) {
    const key = `${group.operator} ${group.rules.join(' ')}`;
    const m = merged.get(key) ?? { operator: group.operator, addresses: [], rules: group.rules };
    m.addresses.push(group.address);
    merged.set(key, m);
  }
  const byRule = new Map<string, readonly string[]>();
  let n = 0;
  for (const m of merged.values()) {
    const id = `shared:${m.operator}:${++n}`;
    out.push({
      id,
      name: `${m.operator} on the plain values of ${m.addresses.join(', ')}, for ${m.rules.join(', ')}`,
      tags: { type: id, category: 'attack_attempt' },
      conditions: [
        { operator: m.operator, parameters: { inputs: m.addresses.map((address) => ({ address })) } },
      ],
    });
    byRule.set(id, m.rules);
  }
  return { rules: out, shared: byRule, words, base64 };
}

/**
 * An address as `prepare` uses it, per kind: its full name (`<name><suffix>`) when some condition
 * reads it, else undefined; the full names of its word-filtered conditions' addresses, by their
 * index `w` (`wordSuffix`; undefined where that condition does not read this address); and the slot
 * of the lot in the inert-value cache's bit sets, or -1 when no condition reads any of them.
 */
interface SlottedAddress {
  readonly address: Address;
  /** The shard of its target (`SHARD_OF`): what a slice it goes to must run (`Slice.shards`). */
  readonly shard: number;
  readonly full: readonly (string | undefined)[];
  readonly byWord: readonly (readonly (string | undefined)[])[];
  readonly slots: readonly number[];
  /** Reads through `unshell` alone (see `identityOn`). */
  readonly unshellOnly: boolean;
  /** Has a `:name` or `!name`: the leaf's name decides whether it reads it. */
  readonly byName: boolean;
}

/** Whether `address` reads `leaf`, by its `:name` and `!name` parts; `name` is `leafName(leaf)`. */
function readsName(address: Address, name: string): boolean {
  if (address.select !== undefined && !address.select(name)) return false;
  for (const e of address.exclude) if (e(name)) return false;
  return true;
}

/** A parsed address: which leaves of which target, transformed how. */
interface Address {
  readonly name: string;
  readonly target: Target;
  readonly select: NameTest | undefined;
  readonly exclude: readonly NameTest[];
  readonly pre: readonly PreTransform[];
  readonly preNames: readonly string[];
}
type NameTest = (name: string) => boolean;

function nameTest(spec: string): NameTest {
  if (spec.startsWith('~')) {
    const re = new RegExp(spec.slice(1), 'i');
    return (n) => re.test(n);
  }
  return (n) => n === spec;
}

/** `crs.cookies!~__utm|t=urlDecodeUni,removeWhitespace` → its parts. */
export function parseAddress(name: string): Address {
  const m = /^crs\.([a-z_]+)(?::([^!|]+))?((?:![^!|]+)*)(?:\|t=(.+))?$/.exec(name);
  if (!m || !(TARGETS as readonly string[]).includes(m[1] ?? ''))
    throw new Error(`inspection rules use an unknown address: ${name}`);
  const preNames = m[4] === undefined ? [] : m[4].split(',');
  return {
    name,
    target: m[1] as Target,
    select: m[2] === undefined ? undefined : nameTest(m[2]),
    exclude: (m[3] ?? '')
      .split('!')
      .filter((e) => e !== '')
      .map(nameTest),
    pre: preNames.map(preTransform),
    preNames,
  };
}

type Waf = InstanceType<typeof appsec.DDWAF>;
type Context = ReturnType<Waf['createContext']>;

interface Engine {
  /**
   * The libddwaf instances by the mask of the shards their rule set reads (`ruleSet`), one for each
   * of SHARD_SETS (none where no rule reads its targets).
   */
  readonly wafs: readonly (Waf | undefined)[];
  readonly addresses: readonly Address[];
  /** The addresses by target and pre-transformations: a leaf is transformed, windowed and sorted once per group. */
  readonly groups: readonly AddressGroup[];
  /** How many addresses some condition reads under some kind: the slots of `Known.inert`. */
  readonly slots: number;
  readonly shared: ReadonlyMap<string, readonly string[]>;
  /** The conditions of multi-condition rules, run as rules of their own (see `splitChains`). */
  readonly parts: ReadonlyMap<string, Part>;
  /** What is known of recent values: their kind, and the addresses they matched nothing under (see `INERT_ENTRIES`); none for the reference and tail engines. */
  readonly inert: GenerationalCache<string, Known> | undefined;
  /** The later conditions of multi-condition rules, run only when a first one matched (see `splitChains`). */
  readonly tails: Engine | undefined;
  /** The kind of a value and the word-filtered conditions it holds a word of (see `plan`). */
  readonly kindOf: (text: string) => Sort;
  /** What one `prepare` knows of each text the cache does not hold (`MemoEntry`): emptied at its start and end. */
  readonly memo: Memo<MemoEntry>;
  /** Per leaf index, the text last met there in this `prepare` and what is known of it (`leafMet`). */
  readonly leafTexts: (string | undefined)[];
  readonly leafMets: (Met | undefined)[];
  /** How many leaf indexes are in use. */
  leaves: number;
  /** The texts `leafMet` last looked up, by a hash of their length and ends, with what is known of them. */
  readonly recentTexts: (string | undefined)[];
  readonly recentMets: (Met | undefined)[];
  /** Counts the group passes of `prepare` (see `MemoEntry.pass`). */
  pass: number;
  /** The 32-bit words of `Known.inert`: one bit per slot. */
  readonly words: number;
  /** The texts earlier requests held: the cache's admission filter (`admits`). */
  readonly sightings: Sightings;
  /** Counts the calls of `prepare` (see `Sightings.stamps`). */
  requests: number;
  /** Per instance of `wafs` (by the same mask), a context kept for the next run (`runEngine`, CONTEXT_RUNS). */
  readonly contexts: (PooledContext | undefined)[];
}

/** A libddwaf context kept between inspections, and how many runs it has served. */
interface PooledContext {
  readonly context: Context;
  runs: number;
}

/**
 * How many runs a context serves before it is disposed and a new one made. A context allocates
 * its per-rule evaluation state on its first run, from an arena it frees only when disposed
 * (libddwaf's `context_wrapper`: a monotonic buffer); runs of ephemeral data that match nothing
 * leave no state behind but add a little to the arena (about 100 bytes a run, measured over 200,000
 * runs of the paranoia level 1 rules), so a kept context is bounded by its number of runs. Made
 * fresh for every inspection, the contexts cost a request of new values 11 µs (the 4 KB body of
 * `bench/inspect/cost.ts`, new values) to 32 µs (every value new, all the rules) more.
 */
export const CONTEXT_RUNS = 1024;

/**
 * How a value is sorted (`kindTest`): its kind (an index into KINDS: 0 unless it is of one of the
 * charsets), and the word-filtered conditions of its charset (their index `w`, see `plan`) whose
 * words it holds, in increasing order.
 */
interface Sort {
  readonly kind: number;
  readonly hits: readonly number[];
}

/** No word-filtered condition (shared: most values hold no word). */
const NO_HITS: readonly number[] = Object.freeze([]);
/** A value of none of the charsets. */
const RAW: Sort = Object.freeze({ kind: 0, hits: NO_HITS });
/** A value of each tier holding no word (most values: one shared Sort each, not one per value). */
const BARE: readonly Sort[] = TIERS.map((_, i) => Object.freeze({ kind: 1 + i, hits: NO_HITS }));

/**
 * What the inert-value cache knows of one value (at most INERT_MAX_LENGTH characters) under one
 * engine: its kind and word hits (a function of the text and the engine's words) and, one bit per
 * slot (an address and kind some condition reads, see `SlottedAddress`), whether it matched nothing
 * there: under the address's full name for the kind and its word addresses for those hits, handed
 * over together in one slice (`Slices.hand`), so one run without events proves the lot.
 */
interface Known extends Sort {
  readonly inert: Uint32Array;
  /** Scratch for `prepare`: as `MemoEntry.pass`, `mask` and `done`. */
  pass: number;
  mask: number;
  done: number;
}

/**
 * What one `prepare` knows of a text the cache does not hold (`Engine.memo`): its kind and hits,
 * once sorted (`kind` -1 before); whether the admission filter was asked (`looked`) and the cache
 * entry it made (`known`); and the group pass (`Engine.pass`) that last met the text, with the
 * addresses of the group (bits) it was read by in that pass, so a text repeated in a group is read
 * once per address; and the group pass that has read the text as received under every address of
 * its group (`done`), so a leaf repeating it is passed over before its pre-transformations run.
 * `inert` is always undefined: what tells it from a `Known`.
 */
interface MemoEntry extends Sort {
  kind: number;
  hits: readonly number[];
  readonly inert: undefined;
  looked: boolean;
  known: Known | undefined;
  pass: number;
  mask: number;
  done: number;
}

function memoEntry(): MemoEntry {
  return {
    kind: -1,
    hits: NO_HITS,
    inert: undefined,
    looked: false,
    known: undefined,
    pass: 0,
    mask: 0,
    done: 0,
  };
}

function resetEntry(e: MemoEntry): void {
  e.kind = -1;
  e.hits = NO_HITS;
  e.looked = false;
  e.known = undefined;
  e.pass = 0;
  e.mask = 0;
  e.done = 0;
}

/**
 * A test for the words of word-filtered conditions (`byCondition[w]`: the
 * words of condition `w`), as substrings of a lower-cased value, by the
 * words' first two or three characters (words have at least two): linear in
 * the value, where one regex of a thousand alternatives is not. It answers
 * the conditions with a word in the value, in increasing order.
 */
function wordTest(byCondition: readonly (readonly string[])[]): (text: string) => readonly number[] {
  // Words are ASCII: two characters make a 14-bit key, three 21 bits. A character beyond ASCII (in
  // LETTERS's values) is in no word and counts as NUL, so it neither starts nor blurs a key; but for
  // those LUMPED to an ASCII sign, which count as the sign (`LOWER`).
  const key2 = (t: string, i: number) => (t.charCodeAt(i) << 7) | t.charCodeAt(i + 1);
  const key3 = (t: string, i: number) => (key2(t, i) << 7) | t.charCodeAt(i + 2);
  const conditionsOf = new Map<string, number[]>();
  byCondition.forEach((words, w) => {
    for (const word of words) {
      const list = conditionsOf.get(word) ?? [];
      if (!list.includes(w)) list.push(w);
      conditionsOf.set(word, list);
    }
  });
  type Entry = { word: string; conditions: readonly number[] };
  // Words by their key: one-character words (the symbols of `conditionKeys`) by their code,
  // two-character words by theirs, longer ones by their first three.
  const single: (readonly number[] | undefined)[] = new Array(128).fill(undefined);
  const short = new Map<number, Entry>();
  const byPrefix = new Map<number, Entry[]>();
  // One bit per possible key (2^21 bits, 256 KB; 2^14 for two characters): most positions of a
  // value start no word, and a bit test is what tells them apart, not a Map lookup per character.
  const starts = new Uint32Array(1 << 16);
  const starts2 = new Uint32Array(1 << 9);
  for (const [word, conditions] of conditionsOf) {
    if (word.length === 1) {
      single[word.charCodeAt(0) & 127] = conditions;
      continue;
    }
    if (word.length === 2) {
      const k = key2(word, 0);
      short.set(k, { word, conditions });
      starts2[k >>> 5] = (starts2[k >>> 5] as number) | (1 << (k & 31));
      continue;
    }
    const k = key3(word, 0);
    const list = byPrefix.get(k) ?? [];
    list.push({ word, conditions });
    byPrefix.set(k, list);
    starts[k >>> 5] = (starts[k >>> 5] as number) | (1 << (k & 31));
  }
  const anyShort = short.size > 0;
  const anySingle = single.some((c) => c !== undefined);
  // Marks of the conditions found in the value being tested (cleared before returning).
  const marked = new Uint8Array(byCondition.length);
  let hits: number[] | undefined;
  const found = (conditions: readonly number[]) => {
    for (let c = 0; c < conditions.length; c++) {
      const w = conditions[c] as number;
      if (marked[w] === 1) continue;
      marked[w] = 1;
      hits ??= [];
      hits.push(w);
    }
  };
  return (text) => {
    hits = undefined;
    // The keys of the two and three characters ending at `i`, rolled along the value, lower-cased as
    // they are read (ASCII only, as words are: no lower-cased copy of the value is made).
    let k2 = 0;
    let k3 = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      const c = LOWER[code] as number;
      k3 = ((k2 << 7) | c) & 0x1fffff;
      k2 = ((k2 << 7) | c) & 0x3fff;
      if (anySingle) {
        const conditions = single[c];
        if (conditions !== undefined) found(conditions);
      }
      if (i < 1) continue;
      if (anyShort && ((starts2[k2 >>> 5] as number) & (1 << (k2 & 31))) !== 0)
        found((short.get(k2) as Entry).conditions);
      if (i < 2 || ((starts[k3 >>> 5] as number) & (1 << (k3 & 31))) === 0) continue;
      const list = byPrefix.get(k3) as Entry[];
      for (let j = 0; j < list.length; j++) {
        const entry = list[j] as Entry;
        if (startsWithLower(text, entry.word, i - 2)) found(entry.conditions);
      }
    }
    // (`found` sets `hits`: TypeScript does not see it through the call.)
    const out = hits as number[] | undefined;
    if (out === undefined) return NO_HITS;
    hits = undefined;
    for (const w of out) marked[w] = 0;
    return sortSmall(out);
  };
}

/**
 * What the word test reads a UTF-16 code unit as: ASCII lower-cased, a character LUMPED to an ASCII
 * sign as that sign (`’` as `'`: a chain's `unicode_normalize` makes the one of the other), any
 * other character beyond ASCII as NUL.
 */
const LOWER: Uint8Array = (() => {
  const out = new Uint8Array(0x10000);
  for (let c = 0; c < 128; c++) out[c] = c >= 65 && c <= 90 ? c + 32 : c;
  for (const [from, to] of Object.entries(LUMPED)) out[from.charCodeAt(0)] = to.charCodeAt(0);
  return out;
})();

/** Whether `text`, ASCII lower-cased, holds the lower-case ASCII `word` at `at`. */
function startsWithLower(text: string, word: string, at: number): boolean {
  if (at + word.length > text.length) return false;
  for (let j = 0; j < word.length; j++) {
    const code = text.charCodeAt(at + j);
    if (LOWER[code] !== word.charCodeAt(j)) return false;
  }
  return true;
}

/** A short list of numbers sorted in place, by insertion (`Array.prototype.sort` copies it first). */
function sortSmall(list: number[]): number[] {
  for (let i = 1; i < list.length; i++) {
    const x = list[i] as number;
    let j = i - 1;
    for (; j >= 0 && (list[j] as number) > x; j--) list[j + 1] = list[j] as number;
    list[j + 1] = x;
  }
  return list;
}

/** The characters libddwaf's base64 decoding reads (and `=` padding): a value of only these may be decoded. */
const BASE64_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=';
/** The bit of TIER_BITS (above the tiers' bits) for BASE64_CHARS. */
const BASE64_BIT = 1 << TIERS.length;

/**
 * Per UTF-16 code unit, one bit per tier (TIERS) whose charset holds the character, and BASE64_BIT:
 * a value's tier is the first whose bit survives the AND over its characters (`inCharset`, in one
 * pass for all tiers), and it may be base64-decoded when BASE64_BIT survives. Beyond ASCII only
 * WORDS's and LETTERS's bits are ever set (never on a surrogate: their characters are all in the BMP).
 */
const TIER_BITS: Uint8Array = (() => {
  const bits = new Uint8Array(0x10000);
  TIERS.forEach((tier, i) => {
    for (const c of tier.chars) bits[c.charCodeAt(0)] = (bits[c.charCodeAt(0)] as number) | (1 << i);
  });
  for (const c of BASE64_CHARS) bits[c.charCodeAt(0)] = (bits[c.charCodeAt(0)] as number) | BASE64_BIT;
  return bits;
})();

/** Sorts values by charset and words (see `plan` and `Sort`). */
function kindTest(
  words: ReadonlyMap<Charset, readonly (readonly string[])[]>,
  base64: ReadonlyMap<Charset, readonly number[]>,
): (text: string) => Sort {
  const hitsOf = TIERS.map((tier) => wordTest(words.get(tier) ?? []));
  const decoding = TIERS.map((tier) => base64.get(tier) ?? []);
  return (text) => {
    // The tiers whose charset holds every character, and none if `--` occurs (see `inCharset`).
    let bits = (1 << TIERS.length) - 1 + BASE64_BIT;
    let dash = false;
    for (let i = 0; i < text.length && bits !== 0; i++) {
      const c = text.charCodeAt(i);
      bits &= TIER_BITS[c] as number;
      if (c === 45) {
        if (dash) bits = 0;
        dash = true;
      } else dash = false;
    }
    const tiers = bits & (BASE64_BIT - 1);
    if (tiers === 0) return RAW;
    const tier = 31 - Math.clz32(tiers & -tiers);
    // Lower-cased by JavaScript where it may change a character beyond ASCII (`İ` to `i̇`), as before
    // the word test lower-cased ASCII itself: the same words are found either way.
    const hits = (hitsOf[tier] as (text: string) => readonly number[])(
      BEYOND[tier] === true ? text.toLowerCase() : text,
    );
    const decoded = decoding[tier] as readonly number[];
    if ((bits & BASE64_BIT) === 0 || decoded.length === 0)
      return hits === NO_HITS ? (BARE[tier] as Sort) : { kind: 1 + tier, hits };
    return { kind: 1 + tier, hits: hits.length === 0 ? decoded : [...new Set([...hits, ...decoded])] };
  };
}

/** The engines by paranoia level (planned, and reference). */
const engines: Engine[] = [];
const referenceEngines: Engine[] = [];

/** One condition of a multi-condition rule, run as a rule of its own. */
interface Part {
  readonly rule: string;
  readonly index: number;
  readonly of: number;
}

/**
 * Each condition of a multi-condition rule (a CRS chain; 6 rules) becomes a
 * rule of its own, `<id>~<n>`, and the rule fires when every part matched
 * somewhere in the request (the compiler already applies a chained part to
 * any of the head's inputs, not the same one). The first conditions (heads)
 * run with the other rules; the later ones (tails, often as broad as "has
 * a `=`") run in an engine of their own, over every value of the request,
 * only when a head matched. So a run of the main engine without any event
 * proves that every value in it matched no rule and no head, and can match
 * none later: what makes the inert-value cache exact. A tail cannot fire a
 * rule without its head, and the tail engine never skips cached values.
 */
function splitChains(rules: readonly RawRule[]): {
  heads: RawRule[];
  tails: RawRule[];
  parts: Map<string, Part>;
} {
  const parts = new Map<string, Part>();
  const heads: RawRule[] = [];
  const tails: RawRule[] = [];
  for (const r of rules) {
    if (r.conditions.length === 1) {
      heads.push(r);
      continue;
    }
    r.conditions.forEach((c, index) => {
      const id = `${r.id}~${index}`;
      parts.set(id, { rule: r.id, index, of: r.conditions.length });
      (index === 0 ? heads : tails).push({ ...r, id, conditions: [c] });
    });
  }
  return { heads, tails, parts };
}

/**
 * The inert-value cache. Most of what a request carries recurs from request
 * to request: Host, User-Agent, Accept and the other headers, paths, common
 * values. A value that matched no condition of any rule (an engine run
 * without any event, chains split) matches none the next time either: the
 * rules, transformations and address (which names the transformations and
 * the value's charset) are the same and libddwaf keeps no state between
 * runs. So such values are left out of later runs, and a request made only
 * of them does not run the engine at all. Exact, not a heuristic: a value
 * is cached only from a run that reported nothing, and only per engine
 * (paranoia level). Bounded: INERT_ENTRIES values of at most
 * INERT_MAX_LENGTH characters (a few MB); longer values rarely recur.
 * Two generations (`GenerationalCache`), not an exact LRU: requests of new
 * values insert a key per value, and an LRU's per-insert eviction (a Map
 * delete and iterator step, plus a second chance for keys read twice in the
 * request) cost more than the lookups; dropping a whole generation is free.
 *
 * A value is entered the second time a request holds it (`admits`), not
 * the first: what only one request holds (an order number, a comment) never
 * recurs, and entering it cost more than the cache saves (see `admits`).
 *
 * Keyed by the value alone (no `address + value` string to build and hash
 * per address), each entry holding the value's kind, its word hits and one
 * bit per address and kind (`Known`): a request made of recurring values costs one lookup
 * per value, and builds nothing. Route exclusions
 * play no part: they select which leaves are inspected (`detect`) and which
 * detections count, never what the engine reports for a value.
 */
const INERT_ENTRIES = 10_000;
const INERT_MAX_LENGTH = 256;

/**
 * The engine of a paranoia level, built once per process (immutable, shared
 * by every route). `reference`: the rules as compiled, every value read by
 * every input (no `plan`) — what the planned engine must agree with (tests).
 */
function engine(paranoiaLevel: number, reference = false): Engine {
  const built = (reference ? referenceEngines : engines)[paranoiaLevel];
  if (built !== undefined) return built;
  const rules = ALL_RULES.filter((r) => Number(r.tags.paranoia_level ?? '1') <= paranoiaLevel);
  const split = splitChains(reference ? rules : splitPieces(rules));
  const tails =
    split.tails.length > 0 ? buildEngine(split.tails, split.parts, reference, 'tails') : undefined;
  const made = buildEngine(split.heads, split.parts, reference, 'main', tails);
  (reference ? referenceEngines : engines)[paranoiaLevel] = made;
  return made;
}

/** One libddwaf instance over `rules` (planned unless `reference`). */
function buildEngine(
  rules: readonly RawRule[],
  parts: ReadonlyMap<string, Part>,
  reference: boolean,
  role: 'main' | 'tails',
  tails?: Engine,
): Engine {
  {
    // libddwaf reports one match per `type` tag (a collection) and skips the rest of it; every rule
    // must be evaluated for scoring, so each rule is a type of its own (the category is in RULES).
    const planned: Plan = reference
      ? {
          rules: rules.map((r) => ({ ...r, tags: { ...r.tags, type: r.id } })),
          shared: new Map(),
          words: new Map(),
          base64: new Map(),
        }
      : plan(rules);
    const wafs: (Waf | undefined)[] = [];
    for (const set of SHARD_SETS) {
      const rules = ruleSet(planned.rules, set);
      if (rules.length === 0) continue;
      const waf = new appsec.DDWAF({ version: '2.1', rules }, 'portcullis');
      const failed = waf.diagnostics.rules;
      if (failed && 'failed' in failed && failed.failed.length > 0) {
        waf.dispose();
        throw new Error(
          `inspection rules failed to load: ${failed.failed.join(', ')} ${JSON.stringify(failed.errors)}`,
        );
      }
      wafs[set] = waf;
    }
    const names = new Set<string>();
    const read = new Set<string>();
    for (const r of planned.rules)
      for (const c of r.conditions)
        for (const i of c.parameters.inputs) {
          names.add(i.address.replace(/#.*$/, ''));
          read.add(i.address);
        }
    // A slot per address and kind some condition reads (under `<name><suffix>` or one of its word
    // addresses). A value that no condition reads under its address and kind (a plain value
    // without words, where only word-filtered conditions look) has none and is not handed over at
    // all: converting it costs as much as a check.
    const wordCounts = TIERS.map((t) => planned.words.get(t)?.length ?? 0);
    const groups = groupAddresses([...names].sort().map(parseAddress), read, wordCounts);
    return {
      wafs,
      addresses: [...names].sort().map(parseAddress),
      groups: groups.groups,
      slots: groups.slots,
      shared: planned.shared,
      parts,
      // Only the main engine skips values; the tail engine reads every value.
      inert: reference || role === 'tails' ? undefined : new GenerationalCache<string, Known>(INERT_ENTRIES),
      tails,
      kindOf: reference ? () => RAW : kindTest(planned.words, planned.base64),
      memo: new Memo(memoEntry, resetEntry),
      leafTexts: [],
      leafMets: [],
      leaves: 0,
      recentTexts: new Array<string | undefined>(RECENT).fill(undefined),
      recentMets: new Array<Met | undefined>(RECENT).fill(undefined),
      words: (groups.slots + 31) >>> 5,
      pass: 0,
      sightings: { hashes: new Int32Array(SEEN_SLOTS), stamps: new Int32Array(SEEN_SLOTS) },
      requests: 0,
      contexts: [],
    };
  }
}

/**
 * The rules as read from the shards of `mask` (`SHARD_OF`, SHARD_SETS): each rule with the inputs
 * of those shards' targets, and without the rules that read none. Why: libddwaf's run walks every
 * rule and every input address of its rule set whenever anything is handed over (about 80 ns a
 * rule and 9 ns an input address; measured with the 168 rules of paranoia level 1: some 38 µs of
 * a run that matches 8 µs of values), whether the rule reads what was handed over or not. A
 * request of an API client hands over new arguments, and seldom new names or headers, or cookies
 * and files (a third of the input addresses): a 4 KB JSON body of new values costs libddwaf about
 * 30 µs with the rule sets split, 56 µs in one. A slice that hands something to several shards (a
 * client's first request: every target new) runs the smallest set holding them all (`SET_FOR`), as a
 * run per shard costs more there (`runEngine`); without cookies and files, that set's run costs
 * about 12 µs less than all the rules' (116 against 128 µs for the 4 KB body, every value new).
 *
 * Exact: a single-condition rule matches when one of its inputs does, whatever set the input is
 * in. Every rule the engine runs has one condition (`splitChains`); one with more would have to be
 * matched in one run, and is refused.
 */
function ruleSet(rules: readonly RawRule[], mask: number): RawRule[] {
  const out: RawRule[] = [];
  for (const r of rules) {
    const [condition, ...more] = r.conditions;
    if (condition === undefined || more.length > 0)
      throw new Error(`inspection rule ${r.id} has ${r.conditions.length} conditions, not one`);
    const inputs = condition.parameters.inputs.filter(
      (input) => (mask & (1 << SHARD_OF[parseAddress(input.address.replace(/#.*$/, '')).target])) !== 0,
    );
    if (inputs.length === 0) continue;
    out.push(
      inputs.length === condition.parameters.inputs.length
        ? r
        : { ...r, conditions: [{ ...condition, parameters: { ...condition.parameters, inputs } }] },
    );
  }
  return out;
}

/** The rules of a paranoia level as libddwaf runs them (for tests and cost measurements). */
export function plannedRules(paranoiaLevel: number): { id: string; conditions: unknown[] }[] {
  const split = splitChains(
    splitPieces(ALL_RULES.filter((r) => Number(r.tags.paranoia_level ?? '1') <= paranoiaLevel)),
  );
  return [...plan(split.heads).rules, ...plan(split.tails).rules];
}

/** What the engine is handed for these inputs at a paranoia level (for cost measurements). */
export function payloadOf(inputs: Inputs, paranoiaLevel: number): Record<string, unknown>[] {
  return prepare(inputs, engine(paranoiaLevel)).map((slice) => chunkedPayload(slice.payload));
}

/** The charset a value is sorted into by the engine of a paranoia level, or '' for none (for tests). */
export function charsetOf(text: string, paranoiaLevel: number): string {
  const kind = engine(paranoiaLevel).kindOf(text).kind;
  return kind === 0 ? '' : (TIERS[kind - 1] as Charset).name;
}

/** How many rules each paranoia level runs (for tests and reports). */
export function ruleCount(paranoiaLevel: number): number {
  return ALL_RULES.filter((r) => Number(r.tags.paranoia_level ?? '1') <= paranoiaLevel).length;
}

/** Builds the engines of these levels now (at start-up, not on a first request). */
export function warmUp(levels: Iterable<number>): void {
  for (const l of levels) {
    engine(l);
    // A first inspection compiles the paths it takes (V8 compiles functions lazily, libddwaf
    // sets up on first use): measured cold, a 14-character value cost 2.4 ms of CPU and a
    // 5,000-character one 8 ms, near the default 10 ms budget, which then refused a benign
    // request or two after each start. So every path runs here, twice, before any request does:
    // each of the rule sets (`ruleSet`, SHARD_SETS) alone. (Every run holds a match,
    // so the inert-value cache learns nothing of these values.)
    for (let round = 0; round < 2; round++)
      for (const inputs of WARM_UP_RUNS) inspect(inputs, { paranoiaLevel: l, budgetMicros: 1_000_000 });
  }
}

/**
 * Inputs that take each path of `prepare` and the engine: plain words, a URL, text beyond ASCII,
 * punctuation, a value that matches rules, and one long enough to be windowed.
 */
const WARM_UP_INPUTS: Inputs = (() => {
  const inputs = emptyInputs();
  const values = [
    'hello world',
    'https://example.com/a/b?c=1&d=two',
    "Jürgen Müller-O'Brien, 東京",
    '-filetype:pdf (draft) #3; 50% off!',
    "1' OR '1'='1",
    `${'lorem ipsum dolor sit amet '.repeat(200)}<b>`,
    // Long, with words the word filter and the SQL gate let through: without it, the first such
    // values after a start cost 7-15 ms of CPU each where later ones cost 2 (V8 optimising the
    // path they take, measured on one core; `--no-concurrent-recompilation` shows it as one 25 ms
    // compilation).
    'Over the weekend the committee will select, and order,\nthe union of results or sleep on it. '.repeat(
      60,
    ),
  ];
  values.forEach((text, i) => {
    const location = ['query', `w${i}`];
    inputs.args.push({ location, text });
    inputs.args_names.push({ location, text: `w${i}` });
    inputs.headers.push({ location: ['header', `x-w${i}`], text });
    inputs.cookies.push({ location: ['cookie', `w${i}`], text });
  });
  inputs.filename.push({ location: ['path'], text: '/warm/up.json' });
  inputs.basename.push({ location: ['path'], text: 'up.json' });
  inputs.uri.push({ location: ['uri'], text: '/warm/up.json?w0=hello' });
  inputs.query_string.push({ location: ['query'], text: 'w0=hello' });
  return inputs;
})();

/** WARM_UP_INPUTS's inputs of the shards of each of SHARD_SETS (`SHARD_OF`), so that each rule set runs. */
const WARM_UP_RUNS: readonly Inputs[] = SHARD_SETS.map((set) => {
  const inputs = emptyInputs();
  for (const target of TARGETS)
    if ((set & (1 << SHARD_OF[target])) !== 0) inputs[target] = WARM_UP_INPUTS[target];
  return inputs;
});

const CHUNK = 256;
/** The most UTF-8 bytes of a string the engine reads. */
const WINDOW = 4096;
/** Any stretch of a long string up to this many bytes (after squeezing padding) is seen whole in one window. */
export const MAX_SPAN = 2048;
/** Flanks a window's cut edges (3 bytes of UTF-8 each). */
const CUT = '\uFFFD';
/** The bytes of text a window holds, leaving room for a mark at each cut edge. */
const BODY = WINDOW - 2 * 3;

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

/** A slice of the inputs handed to the engine in one run, and the leaf behind each item. */
interface Slice {
  /** Per address, its one item as a bare string, or its list (`add`). */
  payload: Payload;
  /** The shards (`SHARD_OF`, a bit each) of the addresses in `payload`: which rule set runs it (`SET_FOR`). */
  shards: number;
  owners: Record<string, Leaf | Leaf[]>;
  /** Whether some address's list is longer than CHUNK (`chunkedPayload` has work to do). */
  long: boolean;
  bytes: number;
  /** The cached values in it (`Known`) and the slot each was handed under: marked inert after a run without events. */
  known: Known[];
  slots: number[];
}

type Payload = Record<string, string | string[]>;

/** The most bytes of text handed to the engine in one run; the CPU budget is checked between runs. */
export const SLICE = 64 * 1024;
/** libddwaf's wall-clock ceiling, as a multiple of the CPU budget. */
export const WALL_FACTOR = 20;

/** The name a leaf has for `:name` and `!name` (a header, cookie or argument name), lower case. */
function leafName(leaf: Leaf): string {
  return (leaf.location[1] ?? '').toLowerCase();
}

/** Addresses that read the same target through the same pre-transformations. */
interface AddressGroup {
  readonly target: Target;
  readonly pre: readonly PreTransform[];
  /**
   * The pre-transformation is a gate (`sqlSigned` alone): it leaves a text as it is or empties it,
   * so what is known of the text as received holds for what the group reads (`prepare`).
   */
  readonly gate: boolean;
  readonly addresses: readonly SlottedAddress[];
  /**
   * Whether the group hands over nothing of a text of this sort (kind and words) as received, for a
   * group whose pre-transformations are known to leave such a text as it is (`passesOver`).
   */
  readonly passes: ((sort: Sort) => boolean) | undefined;
}

/** Pre-transformations that leave a text as it is or empty it (see `AddressGroup.gate`). */
const GATES: ReadonlySet<string> = new Set(['sqlSigned']);

/**
 * The addresses by group, each with its full names, word addresses and cache slots per kind (`read`:
 * the full names some condition reads; `wordCounts`: per tier, how many word-filtered conditions).
 */
function groupAddresses(
  addresses: readonly Address[],
  read: ReadonlySet<string>,
  wordCounts: readonly number[],
): { groups: AddressGroup[]; slots: number } {
  const groups = new Map<
    string,
    { target: Target; pre: readonly PreTransform[]; gate: boolean; addresses: SlottedAddress[] }
  >();
  let slots = 0;
  for (const a of addresses) {
    // At most MASK_BITS addresses a group (`prepare` keeps a bit per address): more start another.
    let key = `${a.target}|${a.preNames.join(',')}`;
    while ((groups.get(key)?.addresses.length ?? 0) >= MASK_BITS) key += '+';
    const g = groups.get(key) ?? {
      target: a.target,
      pre: a.pre,
      gate: a.preNames.length === 1 && GATES.has(a.preNames[0] as string),
      addresses: [],
    };
    const full = KINDS.map((k) => (read.has(a.name + k) ? a.name + k : undefined));
    const byWord = KINDS.map((_, k) => {
      const tier = k === 0 ? undefined : TIERS[k - 1];
      if (tier === undefined) return [];
      return Array.from({ length: wordCounts[k - 1] ?? 0 }, (_, w) => {
        const name = a.name + wordSuffix(tier, w);
        return read.has(name) ? name : undefined;
      });
    });
    g.addresses.push({
      address: a,
      shard: SHARD_OF[a.target],
      full,
      byWord,
      slots: KINDS.map((_, k) =>
        full[k] !== undefined || (byWord[k] ?? []).some((n) => n !== undefined) ? slots++ : -1,
      ),
      unshellOnly: unshellOnly(a),
      byName: a.select !== undefined || a.exclude.length > 0,
    });
    groups.set(key, g);
  }
  // Each target's groups one after another (by the target's first group; the sort is stable), not
  // as the names sort (`args`, `args_names`, `args|t=...`): `leafMet` then finds the text of leaf
  // `i` where the group before left it, without a lookup (measured on the 4 KB body with every
  // value new: 16-18 µs a request for each of the two transformed groups of `args` that followed
  // those of `args_names`).
  const ordered = [...groups.values()];
  const first = new Map<Target, number>();
  for (const [i, g] of ordered.entries()) if (!first.has(g.target)) first.set(g.target, i);
  ordered.sort((a, b) => (first.get(a.target) as number) - (first.get(b.target) as number));
  return {
    groups: ordered.map((g) => ({ ...g, passes: passesOver(g) })),
    slots,
  };
}

/**
 * `AddressGroup.passes` for a group, where its pre-transformations are known to leave a text as it
 * is, so that what it would hand over follows from the kind and words of the text as received:
 * - a gate (`sqlSigned`) leaves a text as it is or empties it: it hands over a text only under an
 *   address that reads its kind in full or one of its words (`copies`), and then the gate runs; a
 *   text it would hand to none needs no gate;
 * - `unshell` alone leaves PLAIN and URLISH texts as they are (`identityOn`), which its addresses
 *   then do not read (`SKIP_UNCHANGED`).
 * Measured on the 4 KB body with every value new: the SQL gate ran on each of its 110 values and
 * `unshell` on each, 8-18 µs a request each.
 */
function passesOver(group: {
  gate: boolean;
  addresses: readonly SlottedAddress[];
}): ((sort: Sort) => boolean) | undefined {
  if (group.gate) return (sort) => group.addresses.every((a) => copies(a, sort.kind, sort.hits) === 0);
  if (group.addresses.every((a) => a.unshellOnly)) return (sort) => SKIP_UNCHANGED[sort.kind] === true;
  return undefined;
}

/**
 * How many times a text of kind `kind` holding the words of conditions `hits` is handed over under
 * an address (`Slices.hand`): under its full name for the kind, and its word address for each hit.
 */
function copies(slotted: SlottedAddress, kind: number, hits: readonly number[]): number {
  const byWord = slotted.byWord[kind] as readonly (string | undefined)[];
  let n = slotted.full[kind] === undefined ? 0 : 1;
  for (let i = 0; i < hits.length; i++) if (byWord[hits[i] as number] !== undefined) n++;
  return n;
}

/** Slices being filled by `prepare`: made at the first value that is to be handed over, not before. */
class Slices {
  readonly done: Slice[] = [];
  current: Slice = newSlice();

  /**
   * Hands `text` over under every address that reads it as a value of kind `kind` holding the words
   * of conditions `hits`: `slotted`'s full name for the kind, and its word addresses for `hits`. All
   * in one slice, so that a run without events proves the value inert under the whole lot (`slot`).
   */
  hand(
    slotted: SlottedAddress,
    kind: number,
    hits: readonly number[],
    text: string,
    leaf: Leaf,
    known: Known | undefined,
    slot: number,
  ): void {
    const n = copies(slotted, kind, hits);
    if (n === 0) return;
    const full = slotted.full[kind];
    const byWord = slotted.byWord[kind] as readonly (string | undefined)[];
    let current = this.current;
    const bytes = text.length * n;
    if (current.bytes > 0 && current.bytes + bytes > SLICE) {
      this.done.push(current);
      current = newSlice();
      this.current = current;
    }
    if (known !== undefined) {
      current.known.push(known);
      current.slots.push(slot);
    }
    current.shards |= 1 << slotted.shard;
    const payload = current.payload;
    if (full !== undefined) add(current, payload, full, text, leaf);
    for (let i = 0; i < hits.length; i++) {
      const name = byWord[hits[i] as number];
      if (name !== undefined) add(current, payload, name, text, leaf);
    }
    current.bytes += bytes;
  }

  finish(): Slice[] {
    if (this.current.bytes > 0) this.done.push(this.current);
    return this.done;
  }
}

/**
 * Adds one item to a slice's payload: an address's first item as a bare
 * string, a list from its second. Most addresses of a request get one item (a word-filtered
 * condition's own address, a header), and the binding converts a one-item list at about 1 µs more than the string alone (measured: 20
 * addresses of one string each, 35 µs a run as lists, 19 µs as strings). To libddwaf a string is
 * the one value of its address (key path empty), read by the same conditions.
 */
function add(slice: Slice, payload: Payload, address: string, text: string, leaf: Leaf): void {
  const items = payload[address];
  if (items === undefined) {
    payload[address] = text;
    slice.owners[address] = leaf;
  } else if (typeof items === 'string') {
    payload[address] = [items, text];
    slice.owners[address] = [slice.owners[address] as Leaf, leaf];
  } else {
    if (items.push(text) > CHUNK) slice.long = true;
    (slice.owners[address] as Leaf[]).push(leaf);
  }
}

/**
 * A slice with nothing in it. Its payload and owners are objects without a prototype, which V8
 * keeps as hash tables from the start: a request adds some 30 addresses to each, a different set
 * each time, which as ordinary objects went through a chain of hidden classes first (measured on
 * objects of 32 such keys: 4-5 µs to build and walk, against 10-12 µs).
 */
function newSlice(): Slice {
  return {
    payload: Object.create(null) as Payload,
    shards: 0,
    owners: Object.create(null) as Record<string, Leaf | Leaf[]>,
    long: false,
    bytes: 0,
    known: [],
    slots: [],
  };
}

/** Nothing to hand to the engine. */
const NO_SLICES: readonly Slice[] = Object.freeze([]);

/** The most addresses in a group (`groupAddresses`): one bit each in a text's memo entry (`MemoEntry.mask`). */
const MASK_BITS = 30;

/** Whether bit `slot` is set. */
function isSet(bits: Uint32Array, slot: number): boolean {
  return ((bits[slot >>> 5] as number) & (1 << (slot & 31))) !== 0;
}

/**
 * The inputs as slices of at most SLICE bytes (a longer string is a slice of its own windows).
 * Leaf by leaf within each group of addresses (`groupAddresses`): a leaf's text is transformed,
 * windowed and sorted by charset once for all the addresses of its group, not once per address.
 *
 * What is known of a text (`Met`: its cache entry, or its entry in the engine's memo, with its kind
 * and the addresses of the group it was read by) is looked up once per leaf, not once per group of
 * addresses, where the groups leave the text as it is (`leafMet`). The common case is a request of
 * recurring values (the same headers, path and parameters as the requests before it), all known
 * inert: that costs one cache lookup per value, and builds nothing (no Map, Set, slice or key
 * string; `NO_SLICES`). A request of new values builds only its slices (and a cache entry for each
 * value an earlier request held: `admits`). What is built per address (full names, cache slots) was
 * built with the engine; slices are made at the first value to hand over.
 */
function prepare(inputs: Inputs, built: Engine): readonly Slice[] {
  const { groups } = built;
  built.requests++;
  forget(built);
  let out: Slices | undefined;
  for (const group of groups) {
    const leaves = inputs[group.target];
    const n = leaves.length;
    if (n === 0) continue;
    const addresses = group.addresses;
    // The same text is inspected once per address (JSON keys repeat in every array item; a match
    // names the first place): its memo entry keeps the addresses of the group it was read by.
    const pass = ++built.pass;
    const every = (1 << addresses.length) - 1;
    for (let i = 0; i < n; i++) {
      const leaf = leaves[i] as Leaf;
      let text = leaf.text;
      // A text the group has already read under every address in this request (a JSON key, in
      // each item of an array) leaves nothing to do: passed over before its pre-transformations.
      const received = leafMet(built, i, text);
      if (received.done === pass) continue;
      // Where the group's transformations are known to leave the text as it is and hand it to none
      // of its addresses (`AddressGroup.passes`, by the kind of the text as received: sorted by the
      // group before, for most texts), they are not run. (Not for a long text, read in windows.)
      if (group.passes !== undefined && text.length * 3 <= WINDOW) {
        const sort = received.inert === undefined ? sorted(built, received, text) : (received as Known);
        if (group.passes(sort)) {
          received.done = pass;
          continue;
        }
      }
      if (group.gate) {
        // A gate leaves the text as it is or empties it: where the cache knows the text inert
        // under every address of the group, there is nothing to do, and the gate is not run. A
        // text it empties is never read under them, which the cache is told (`closeGate`).
        if (received.inert !== undefined && inertUnder(received as Known, addresses)) continue;
        text = (group.pre[0] as PreTransform)(text);
        if (text === '') {
          if (received.inert !== undefined) closeGate(received as Known, addresses);
          received.done = pass;
          continue;
        }
      } else for (let t = 0; t < group.pre.length; t++) text = (group.pre[t] as PreTransform)(text);
      if (text === '') {
        received.done = pass;
        continue;
      }
      const met = leafMet(built, i, text);
      if (met.pass !== pass) {
        met.pass = pass;
        met.mask = 0;
      }
      // The text is its one window when short, as nearly every value is; else `windows`, when first read.
      const long = text.length * 3 > WINDOW;
      let parts: string[] | undefined;
      let name: string | undefined;
      let mask = met.mask;
      for (let a = 0; a < addresses.length; a++) {
        const slotted = addresses[a] as SlottedAddress;
        if (slotted.byName) {
          name ??= leafName(leaf);
          if (!readsName(slotted.address, name)) continue;
        }
        if ((mask & (1 << a)) !== 0) continue;
        mask |= 1 << a;
        const unchanged = slotted.unshellOnly && text === leaf.text;
        if (!long) {
          const known = met.inert === undefined ? undefined : (met as Known);
          const sort = known ?? sorted(built, met as MemoEntry, text);
          const kind = sort.kind;
          // Left as it was by `unshell`, a PLAIN or URLISH value is read under the address without it.
          if (unchanged && SKIP_UNCHANGED[kind]) continue;
          const slot = slotted.slots[kind] as number;
          if (slot < 0) continue;
          if (known !== undefined && isSet(known.inert, slot)) continue;
          out ??= new Slices();
          out.hand(slotted, kind, sort.hits, text, leaf, known, slot);
          continue;
        }
        parts ??= windows(text);
        for (const w of parts) {
          // Most windows are longer than INERT_MAX_LENGTH, but a squeezed text can be short.
          const wMet = metOf(built, w);
          const wKnown = wMet.inert === undefined ? undefined : (wMet as Known);
          const wSort = wKnown ?? sorted(built, wMet as MemoEntry, w);
          if (unchanged && SKIP_UNCHANGED[wSort.kind]) continue;
          const slot = slotted.slots[wSort.kind] as number;
          if (slot < 0) continue;
          if (wKnown !== undefined && isSet(wKnown.inert, slot)) continue;
          out ??= new Slices();
          out.hand(slotted, wSort.kind, wSort.hits, w, leaf, wKnown, slot);
        }
      }
      met.mask = mask;
      // (An address reading some names only may not have read it: then a leaf repeating it goes on.)
      if (mask === every) received.done = pass;
    }
  }
  forget(built);
  return out === undefined ? NO_SLICES : out.finish();
}

/** Whether a cached text is known inert under every address of a group that reads its kind. */
function inertUnder(known: Known, addresses: readonly SlottedAddress[]): boolean {
  for (let a = 0; a < addresses.length; a++) {
    const slot = (addresses[a] as SlottedAddress).slots[known.kind] as number;
    if (slot >= 0 && !isSet(known.inert, slot)) return false;
  }
  return true;
}

/**
 * Marks a cached text inert under every address of a gate's group (`AddressGroup.gate`) that reads
 * its kind: the gate empties it, so no condition reading them ever sees it. Exact, as the cache's
 * other entries are: the gate is a function of the text alone.
 */
function closeGate(known: Known, addresses: readonly SlottedAddress[]): void {
  for (let a = 0; a < addresses.length; a++) {
    const slot = (addresses[a] as SlottedAddress).slots[known.kind] as number;
    if (slot >= 0) known.inert[slot >>> 5] = (known.inert[slot >>> 5] as number) | (1 << (slot & 31));
  }
}

/**
 * What `prepare` keeps of a text for one request: its cache entry when the cache holds it (or has
 * just admitted it: `admits`), else its memo entry (`Engine.memo`). Both hold the text's kind (a memo
 * entry once `sorted`) and the group pass and addresses it was read by (`pass`, `mask`).
 */
type Met = Known | MemoEntry;

/**
 * What is known of `text` in this request: the cache is looked up first (a recurring value costs one
 * Map read, whose hash V8 keeps in the string), the memo only for a text the cache does not hold, and
 * the admission filter once per request and text.
 */
function metOf(built: Engine, text: string): Met {
  const inert = built.inert;
  const cacheable = inert !== undefined && text.length <= INERT_MAX_LENGTH;
  if (cacheable) {
    const known = inert.get(text);
    if (known !== undefined) return known;
  }
  const entry = built.memo.of(text);
  if (!entry.looked) {
    entry.looked = true;
    if (cacheable && admits(built.sightings, built.requests, built.memo.hash)) {
      const sort = built.kindOf(text);
      const known = {
        kind: sort.kind,
        hits: sort.hits,
        inert: new Uint32Array(built.words),
        pass: 0,
        mask: 0,
        done: 0,
      };
      inert.set(text, known);
      entry.known = known;
    }
  }
  return entry.known ?? entry;
}

/**
 * Slots of `leafMet`'s table of recent texts (a power of two): the texts that repeat from leaf to
 * leaf of a target are a JSON body's keys, a handful per object.
 */
const RECENT = 16;

/**
 * `metOf` for the text of leaf `i` of a group: without a lookup when the last one for index `i` (a
 * group before, most often of the same target with the text as the leaf holds it) was of the same
 * text. Every target's leaf `i` shares the index: a match is a match of the text, whatever leaf.
 * Else, without one either when the text is in the table of recent texts: the keys of the items of
 * an array (`sku`, `name`, `price` in each), which the cache and memo would hash again at each leaf
 * (187 leaves of ten texts in the 4 KB body; a string compare costs less than two hashes).
 */
function leafMet(built: Engine, i: number, text: string): Met {
  if (built.leafTexts[i] === text) return built.leafMets[i] as Met;
  const r = (text.length * 7 + text.charCodeAt(0) * 3 + text.charCodeAt(text.length - 1)) & (RECENT - 1);
  let met: Met;
  if (built.recentTexts[r] === text) met = built.recentMets[r] as Met;
  else {
    met = metOf(built, text);
    built.recentTexts[r] = text;
    built.recentMets[r] = met;
  }
  built.leafTexts[i] = text;
  built.leafMets[i] = met;
  if (i >= built.leaves) built.leaves = i + 1;
  return met;
}

/** Forgets what one `prepare` met (at its start and end: one cut short by an exception leaves nothing behind). */
function forget(built: Engine): void {
  built.memo.clear();
  built.leafTexts.fill(undefined, 0, built.leaves);
  built.leafMets.fill(undefined, 0, built.leaves);
  built.recentTexts.fill(undefined);
  built.recentMets.fill(undefined);
  built.leaves = 0;
}

/** Slots of the admission filter (`Sightings`): a power of two. */
const SEEN_SLOTS = 1 << 14;

/**
 * The admission filter of the inert-value cache: which texts earlier requests held, by a 32-bit hash,
 * one per slot (direct-mapped, made once per engine: nothing is allocated per value). Lossy both
 * ways, which costs no detection: a text taken as seen when it was not (another with its hash) is
 * cached a request early, one whose slot was taken over is cached a request late.
 */
interface Sightings {
  readonly hashes: Int32Array;
  /** The request (`Engine.requests`) that last wrote each slot: a text seen earlier in the same request is not admitted. */
  readonly stamps: Int32Array;
}

/**
 * Whether the cache admits a text of hash `h` (`Memo.hash`): it was seen by an earlier request
 * (else it is noted as seen by this one). Why: an entry is a value's kind, a bit set and the text itself, all kept alive, and
 * the young-generation collector copies every one of them (twice: it survives, then is promoted);
 * for a request of new values that copying cost more than the cache saves, and made the p99 (a
 * scavenge of 5 to 14 ms every 70 requests of the bench's 4 KB body). A value that recurs is cached
 * from its second request, and skipped from its third.
 */
function admits(seen: Sightings, request: number, h: number): boolean {
  const slot = h & (SEEN_SLOTS - 1);
  if (seen.hashes[slot] === h) return seen.stamps[slot] !== request;
  seen.hashes[slot] = h;
  seen.stamps[slot] = request;
  return false;
}

/** `text`'s memo entry, sorted (`kindOf`) when the request first needs its kind. */
function sorted(built: Engine, entry: MemoEntry, text: string): Sort {
  if (entry.kind < 0) {
    const sort = built.kindOf(text);
    entry.kind = sort.kind;
    entry.hits = sort.hits;
  }
  return entry;
}

function toPointer(location: readonly string[]): string {
  return location.map((s) => `/${pointerSegment(s)}`).join('');
}

interface WafEvent {
  rule: { id: string; tags: { type: string } };
  rule_matches: { parameters: { address: string; key_path: (string | number)[] }[] }[];
}

/**
 * The CPU time of the thread that runs the engine, in microseconds, where it
 * can be read (Linux: the first field of /proc/thread-self/schedstat, in ns).
 * Written by hand because Node 20 has no per-thread CPU clock
 * (`process.threadCpuUsage` came in Node 23.9), and `process.cpuUsage()`
 * counts every thread of the process: under load the garbage collector's and
 * the compiler's threads ran up more than the 10 ms budget during a single
 * inspection of a bare `GET /bench`, which was refused with 403 (seen in
 * the bench with the machine's load at about 4). The file is opened once,
 * by the main thread, which is the one that runs inspection; reading it is
 * one pread (3-10 µs), done at the start of a run (at most once a
 * millisecond: `startClock`) and again only when the wall time has passed
 * the budget. The kernel brings the figure up to date at
 * scheduler ticks and switches (in steps of 0.5-3 ms on the test machine), so
 * a reading may lag by that much: against a budget of milliseconds, a
 * tolerance, not a hole (a request that truly needs more is still stopped).
 */
export const threadClock: (() => number) | undefined = (() => {
  try {
    const fd = openSync('/proc/thread-self/schedstat', 'r');
    const buf = Buffer.alloc(96);
    const read = () => {
      const n = readSync(fd, buf, 0, buf.length, 0);
      const end = buf.indexOf(32);
      return Number(buf.toString('latin1', 0, end > 0 && end < n ? end : n)) / 1000;
    };
    return Number.isFinite(read()) ? read : undefined;
  } catch {
    return undefined;
  }
})();

export interface Clock {
  readonly wall: number;
  /** This thread's CPU microseconds (threadClock), or the process's where that cannot be read. */
  readonly cpu: number | NodeJS.CpuUsage;
}

/** The last reading of `threadClock` that `startClock` took, and the wall time (ms) it took it at. */
let lastReading = { wall: Number.NEGATIVE_INFINITY, cpu: 0 };
/** How long (ms of wall time) `startClock` reuses a reading of `threadClock`. */
const REUSE_MS = 1;

/**
 * A clock started now. At thousands of inspections a second, the pread of
 * `threadClock` was a measurable part of one (10 µs of about 250 for a new
 * 4 KB body on the test machine), so a reading less than REUSE_MS old is
 * reused: CPU time the thread spent since that reading is counted as the
 * inspection's, at most REUSE_MS (1 ms against a budget of milliseconds,
 * the order of the clock's own steps), and never in the direction that lets
 * a costly request through (`spent` reads the clock afresh).
 */
export function startClock(): Clock {
  const wall = performance.now();
  if (threadClock === undefined) return { wall, cpu: process.cpuUsage() };
  if (wall - lastReading.wall > REUSE_MS) lastReading = { wall, cpu: threadClock() };
  return { wall, cpu: lastReading.cpu };
}

/**
 * CPU microseconds spent since `start`, never more than the wall time. CPU
 * time never exceeds the wall time of a synchronous run, so below `threshold`
 * the wall time answers without a system call.
 */
export function spent(start: Clock, threshold: number): number {
  const wall = (performance.now() - start.wall) * 1000;
  if (wall <= threshold) return wall;
  if (typeof start.cpu === 'number') return Math.min((threadClock as () => number)() - start.cpu, wall);
  const cpu = process.cpuUsage(start.cpu);
  return Math.min(cpu.user + cpu.system, wall);
}

const NO_DETECTIONS: readonly Detection[] = Object.freeze([]);

export interface InspectOptions {
  /** CRS paranoia level, 1-4. */
  readonly paranoiaLevel: number;
  /** CPU-time budget, in microseconds. */
  readonly budgetMicros: number;
  /** Run the reference engine (see `engine`): for tests. */
  readonly reference?: boolean;
}

/**
 * Runs the rules of a paranoia level over `inputs` within a CPU-time
 * budget. Detections carry the rule, its category and the input's
 * location, never the matched value.
 */
export function inspect(inputs: Inputs, options: InspectOptions): InspectionResult {
  const built = engine(options.paranoiaLevel, options.reference);
  const wallStart = performance.now();
  const slices = prepare(inputs, built);
  // Nothing left to run (every value known inert): the wall time is the cost, no clock read.
  if (slices.length === 0)
    return { detections: NO_DETECTIONS, timedOut: false, cpuMicros: (performance.now() - wallStart) * 1000 };
  // The CPU clock starts with the engine (one pread); the wall clock already covers preparing.
  const clock: Clock = { wall: wallStart, cpu: startClock().cpu };
  const run: Run = { detections: [], partHits: new Map(), timedOut: false };
  runEngine(built, slices, clock, options.budgetMicros, run);
  // A chain's later conditions, over every value of the request, only when a first one matched.
  const tails = built.tails;
  if (
    tails !== undefined &&
    !run.timedOut &&
    run.partHits.size > 0 &&
    [...run.partHits.values()].some((h) => h.matched.has(0))
  ) {
    runEngine(tails, prepare(inputs, tails), clock, options.budgetMicros, run);
  }
  for (const hits of run.partHits.values()) {
    if (hits.matched.size === hits.of) run.detections.push(...hits.found);
  }
  return {
    detections: run.detections,
    timedOut: run.timedOut,
    cpuMicros: spent(clock, options.budgetMicros),
  };
}

/** What the runs of one inspection found. */
interface Run {
  readonly detections: Detection[];
  /** Parts of multi-condition rules that matched: a rule fires when all its parts did. */
  readonly partHits: Map<string, { of: number; matched: Set<number>; found: Detection[] }>;
  timedOut: boolean;
}

/**
 * Runs one engine over the slices within the budget, adding what it finds to `run`. A slice that
 * hands something to one shard only (`SHARD_OF`), as a request of an API client's new values does,
 * runs that shard's rules; one that hands something to several runs the smallest rule set reading
 * them all (`SET_FOR`) at once, which costs less than a run per shard (measured: 178 µs against
 * 226 µs for libddwaf's part of the 4 KB body with every value new, the path's and headers' too).
 */
function runEngine(
  built: Engine,
  slices: readonly Slice[],
  clock: Clock,
  budgetMicros: number,
  run: Run,
): void {
  const { wafs, shared, parts, inert, contexts } = built;
  const ceiling = budgetMicros * WALL_FACTOR;
  for (const slice of slices) {
    const { payload } = slice;
    const set = SET_FOR[slice.shards] as number;
    // The instance's kept context, taken out while it runs: one that throws is not kept.
    const pooled = contexts[set] ?? { context: (wafs[set] as Waf).createContext(), runs: 0 };
    contexts[set] = undefined;
    const left = Math.max(1, ceiling - (performance.now() - clock.wall) * 1000);
    let result: ReturnType<Context['run']>;
    try {
      result = pooled.context.run({ ephemeral: slice.long ? chunkedPayload(payload) : payload }, left);
    } catch (error) {
      pooled.context.dispose();
      throw error;
    }
    const events = (result.events ?? []) as WafEvent[];
    // Kept only after a run that found nothing and ran to its end: a run that matched or timed out
    // leaves state in the context (a rule's match, a condition cut short) that only its disposal
    // clears for sure.
    if (events.length === 0 && !result.timeout && ++pooled.runs < CONTEXT_RUNS) contexts[set] = pooled;
    else pooled.context.dispose();
    for (const event of events) found(event, slice, shared, parts, run);
    if (events.length === 0 && !result.timeout && inert !== undefined) {
      const { known, slots } = slice;
      for (let i = 0; i < known.length; i++) {
        const bits = (known[i] as Known).inert;
        const slot = slots[i] as number;
        bits[slot >>> 5] = (bits[slot >>> 5] as number) | (1 << (slot & 31));
      }
    }
    if (result.timeout || spent(clock, budgetMicros) > budgetMicros) {
      run.timedOut = true;
      break;
    }
  }
}

/** Adds the detections of one event of a run over `slice` to `run`. */
function found(
  event: WafEvent,
  slice: Slice,
  shared: ReadonlyMap<string, readonly string[]>,
  parts: ReadonlyMap<string, Part>,
  run: Run,
): void {
  for (const match of event.rule_matches) {
    for (const p of match.parameters) {
      let index = 0;
      for (const k of p.key_path) index = index * CHUNK + Number(k);
      const owners = slice.owners[p.address];
      const leaf = Array.isArray(owners) ? owners[index] : owners;
      for (const ran of shared.get(event.rule.id) ?? [event.rule.id]) {
        const id = PIECE_OF.get(ran) ?? ran;
        const part = parts.get(id);
        const rule = part?.rule ?? id;
        const detection: Detection = {
          rule,
          category: RULES.get(rule)?.category ?? (event.rule.tags.type as Category),
          location: leaf === undefined ? '' : toPointer(leaf.location),
          segments: leaf?.location ?? [],
        };
        // Two pieces of a SPLIT rule may match the same value: it is one detection.
        const again =
          id !== ran && run.detections.some((d) => d.rule === rule && d.location === detection.location);
        if (again) continue;
        if (part === undefined) run.detections.push(detection);
        else {
          const hits = run.partHits.get(part.rule) ?? {
            of: part.of,
            matched: new Set<number>(),
            found: [],
          };
          hits.matched.add(part.index);
          hits.found.push(detection);
          run.partHits.set(part.rule, hits);
        }
      }
    }
  }
}

/** The payload with its longer lists chunked (`chunked`): itself when none is longer than CHUNK, as nearly always. */
function chunkedPayload(payload: Record<string, string | string[]>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in payload) {
    const items = payload[k] as string | string[];
    if (typeof items === 'string' || items.length <= CHUNK) continue;
    out ??= { ...payload };
    out[k] = chunked(items);
  }
  return out ?? payload;
}
