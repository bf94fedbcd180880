/**
 * Compiles the request-side rules of the OWASP Core Rule Set (as Debian's
 * `modsecurity-crs` package ships it) into a libddwaf rule file:
 * `src/stages/inspect/crs-rules.json`, with the list of rules left out and
 * why in `src/stages/inspect/crs-skipped.json`.
 *
 *   cd /tmp && apt-get download modsecurity-crs && dpkg-deb -x modsecurity-crs_*.deb crs
 *   npm run crs:compile              # writes the two files (CRS_DIR=/tmp/crs/usr/share/modsecurity-crs)
 *   npm run crs:check                # fails when the committed files differ from what this script makes
 *
 * Written by hand: no library reads ModSecurity's SecRule language into a
 * structure, and the mapping to libddwaf is Portcullis's own. The mapping:
 *
 * - Targets become Portcullis addresses (`crs.args`, `crs.cookies!~__utm`,
 *   `crs.headers:user-agent`, see `engine.ts`), built from the one parsed view
 *   of the request. A target the gateway cannot see (TX, MATCHED_VAR at the
 *   head of a rule, REQUEST_METHOD, counts) leaves the rule out, with why.
 * - Transformations become libddwaf transformers, per input. Those libddwaf
 *   lacks (removeWhitespace, replaceComments) are done by Portcullis: the
 *   chain up to the last of them is named in the address (`|t=lowercase,
 *   removeWhitespace`), computed in JavaScript, and libddwaf does the rest.
 *   utf8toUnicode is dropped: RE2 reads UTF-8 itself.
 * - Operators: @rx → match_regex (RE2; PCRE-only regexes are rewritten when
 *   a rewrite keeps the meaning, else left out), @pm/@pmFromFile →
 *   phrase_match (lower-cased, as ModSecurity's @pm is case-insensitive),
 *   @detectSQLi/@detectXSS → is_sqli/is_xss, @validateByteRange → a regex of
 *   the bytes outside the range.
 * - A chain becomes one rule whose conditions all must hold. A chained part
 *   on MATCHED_VAR(S) is applied to the head's targets (the same inputs, not
 *   necessarily the same one: a small widening, listed).
 * - Paranoia level, severity (anomaly score) and tags go into the rule's
 *   tags; the engine builds one rule set per paranoia level.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import appsec from '@datadog/native-appsec';
import { boundaryClass } from '../src/stages/inspect/boundaries.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);
const err = (line: string): boolean => process.stderr.write(`${line}\n`);

const CRS_DIR = process.env.CRS_DIR ?? '/tmp/crs/usr/share/modsecurity-crs';
const OUT_DIR = new URL('../src/stages/inspect/', import.meta.url);
const RULES_OUT = new URL('crs-rules.json', OUT_DIR);
const SKIPPED_OUT = new URL('crs-skipped.json', OUT_DIR);

/** The rule files compiled, and the Portcullis category of each. */
const FILES: Record<string, string> = {
  '920': 'traversal',
  '930': 'traversal',
  '931': 'traversal',
  '932': 'cmdi',
  '933': 'cmdi',
  '934': 'cmdi',
  '941': 'xss',
  '942': 'sqli',
  '943': 'xss',
  '944': 'ssti',
};

const SCORES: Record<string, number> = { CRITICAL: 5, ERROR: 4, WARNING: 3, NOTICE: 2 };

/** ModSecurity transformations libddwaf has. */
const TRANSFORMERS: Record<string, string> = {
  urlDecodeUni: 'url_decode_iis',
  urlDecode: 'url_decode',
  htmlEntityDecode: 'html_entity_decode',
  jsDecode: 'js_decode',
  cssDecode: 'css_decode',
  lowercase: 'lowercase',
  removeNulls: 'remove_nulls',
  compressWhitespace: 'compress_whitespace',
  normalizePath: 'normalize_path',
  normalisePath: 'normalize_path',
  normalizePathWin: 'normalize_path_win',
  normalisePathWin: 'normalize_path_win',
  cmdLine: 'shell_unescape',
  base64Decode: 'base64_decode',
  base64decode: 'base64_decode',
};
/** Transformations libddwaf lacks, done by Portcullis (`engine.ts`), and those it can do first. */
const PORTCULLIS_ONLY = new Set([
  'removeWhitespace',
  'replaceComments',
  'removeXmlDeclarations',
  'sqlSigned',
]);
const PORTCULLIS_CAN = new Set([
  'removeXmlDeclarations',
  'sqlSigned',
  'urlDecodeUni',
  'urlDecode',
  'lowercase',
  'removeWhitespace',
  'replaceComments',
]);
/** Dropped: RE2 matches UTF-8 text directly, so %u-encoding non-ASCII characters first changes nothing a rule looks for. */
const DROPPED = new Set(['none', 'utf8toUnicode', '']);

/** Request targets and their Portcullis address. */
const TARGETS: Record<string, string> = {
  ARGS: 'args',
  ARGS_GET: 'args',
  ARGS_POST: 'args',
  'XML:/*': 'args',
  'XML://@*': 'args',
  ARGS_NAMES: 'args_names',
  ARGS_GET_NAMES: 'args_names',
  ARGS_POST_NAMES: 'args_names',
  FILES_NAMES: 'args_names',
  REQUEST_COOKIES: 'cookies',
  REQUEST_COOKIES_NAMES: 'cookies_names',
  REQUEST_HEADERS: 'headers',
  REQUEST_HEADERS_NAMES: 'headers_names',
  REQUEST_FILENAME: 'filename',
  REQUEST_BASENAME: 'basename',
  REQUEST_URI: 'uri',
  REQUEST_URI_RAW: 'uri',
  QUERY_STRING: 'query_string',
  REQUEST_BODY: 'body',
  FILES: 'files',
};

interface SecRule {
  variables: string;
  operator: string;
  actions: Map<string, string[]>;
  line: number;
  file: string;
}

/** Joins continuation lines and drops comments; yields each directive with its first line number. */
function directives(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  const lines = text.split('\n');
  let current = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    if (current === '' && /^\s*(#|$)/.test(raw)) continue;
    if (current === '') start = i + 1;
    if (raw.endsWith('\\')) {
      current += `${raw.slice(0, -1)}`;
      continue;
    }
    current += raw;
    out.push({ text: current.trim(), line: start });
    current = '';
  }
  return out;
}

/** Splits a directive into its words; double-quoted words may hold `\"`. */
function words(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === '\t') i++;
    if (i >= text.length) break;
    if (text[i] === '"') {
      let w = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && text[i + 1] === '"') {
          w += '"';
          i += 2;
          continue;
        }
        w += text[i];
        i++;
      }
      i++;
      out.push(w);
    } else {
      let w = '';
      while (i < text.length && text[i] !== ' ' && text[i] !== '\t') w += text[i++];
      out.push(w);
    }
  }
  return out;
}

/** `id:1,t:none,msg:'a, b'` → map of action → values. */
function parseActions(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === ',') i++;
    let name = '';
    while (i < text.length && text[i] !== ':' && text[i] !== ',') name += text[i++];
    let value = '';
    if (text[i] === ':') {
      i++;
      while (text[i] === ' ') i++;
      if (text[i] === "'") {
        i++;
        while (i < text.length && !(text[i] === "'" && text[i - 1] !== '\\')) value += text[i++];
        i++;
      } else {
        while (i < text.length && text[i] !== ',') value += text[i++];
      }
    }
    name = name.trim();
    if (name === '') continue;
    const list = out.get(name) ?? [];
    list.push(value.trim());
    out.set(name, list);
  }
  return out;
}

function readRules(file: string): (SecRule | { marker: string })[] {
  const out: (SecRule | { marker: string })[] = [];
  for (const d of directives(readFileSync(join(CRS_DIR, 'rules', file), 'utf8'))) {
    const w = words(d.text);
    if (w[0] === 'SecMarker') out.push({ marker: w[1] ?? '' });
    if (w[0] !== 'SecRule') continue;
    out.push({
      variables: w[1] ?? '',
      operator: w[2] ?? '',
      actions: parseActions(w[3] ?? ''),
      line: d.line,
      file,
    });
  }
  return out;
}

/** The default value of a `tx.` variable as REQUEST-901 sets it. */
function txDefault(name: string): string {
  const text = readFileSync(join(CRS_DIR, 'rules', 'REQUEST-901-INITIALIZATION.conf'), 'utf8');
  const m = new RegExp(`setvar:'tx\\.${name}=([^']*)'`).exec(text);
  if (!m?.[1]) throw new Error(`no default for tx.${name}`);
  return m[1];
}

interface Input {
  address: string;
  transformers: string[];
}
interface Condition {
  operator: string;
  parameters: Record<string, unknown>;
}
interface Rule {
  id: string;
  name: string;
  tags: Record<string, string>;
  conditions: Condition[];
}
interface Skipped {
  id: string;
  file: string;
  reason: string;
}

class Skip extends Error {}

/** Targets of the rule being compiled that were left out while others remain. */
let partial: string[] = [];

function regexEscape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, (c) => `\\${c}`);
}

/** The addresses of a rule's variable list, with the exclusions (`!X:key`) folded in. */
function addresses(variables: string): { base: string[]; excluded: Map<string, string[]>; unseen: string[] } {
  const base: string[] = [];
  const unseen: string[] = [];
  const excluded = new Map<string, string[]>();
  for (const v of variables.split('|')) {
    if (v.startsWith('!')) {
      const [target, ...key] = v.slice(1).split(':');
      const address = TARGETS[target ?? ''];
      if (address === undefined) throw new Skip(`exclusion of ${v} not understood`);
      const list = excluded.get(address) ?? [];
      list.push(keySpec(key.join(':')));
      excluded.set(address, list);
      continue;
    }
    if (v.startsWith('&TX:'))
      throw new Skip(
        `a size limit of the CRS setup (${v}): the route's body_limit and json_limits apply instead`,
      );
    if (v.startsWith('&')) {
      unseen.push(v);
      continue;
    }
    if (TARGETS[v] !== undefined) {
      base.push(TARGETS[v]);
      continue;
    }
    const colon = v.indexOf(':');
    const target = colon < 0 ? v : v.slice(0, colon);
    if (colon > 0 && TARGETS[target] !== undefined) {
      base.push(`${TARGETS[target]}:${keySpec(v.slice(colon + 1))}`);
      continue;
    }
    unseen.push(v);
  }
  if (base.length === 0)
    throw new Skip(
      `target ${unseen.join('|')} is not visible to inspection (a count, a value captured by another rule, or the request line, which the gateway's HTTP parser has already refused or normalised)`,
    );
  if (unseen.length > 0) partial.push(`${unseen.join('|')}`);
  return { base: [...new Set(base)], excluded, unseen };
}

/** `/__utm/` → `~__utm` (a name regex); `User-Agent` → `user-agent`. */
function keySpec(key: string): string {
  if (key.startsWith('/') && key.endsWith('/')) return `~${key.slice(1, -1)}`;
  return key.toLowerCase();
}

/** The libddwaf inputs of a list of variables under a transformation chain. */
function inputsOf(variables: string, transforms: string[]): Input[] {
  const { base, excluded } = addresses(variables);
  // The part of the chain Portcullis does: up to the last transformation libddwaf lacks.
  let cut = -1;
  transforms.forEach((t, i) => {
    if (PORTCULLIS_ONLY.has(t)) cut = i;
  });
  const pre = transforms.slice(0, cut + 1).filter((t) => !DROPPED.has(t));
  for (const t of pre) {
    if (!PORTCULLIS_CAN.has(t))
      throw new Skip(`transformation chain ${transforms.join(',')} cannot be split`);
  }
  const post: string[] = [];
  for (const t of transforms.slice(cut + 1)) {
    if (DROPPED.has(t)) continue;
    const mapped = TRANSFORMERS[t];
    if (mapped === undefined) throw new Skip(`transformation t:${t} has no equivalent`);
    post.push(mapped);
  }
  return base.map((b) => {
    const target = b.split(':')[0] ?? b;
    const excl = excluded.get(target) ?? [];
    const address = `crs.${b}${excl.map((e) => `!${e}`).join('')}${pre.length > 0 ? `|t=${pre.join(',')}` : ''}`;
    return { address, transformers: post };
  });
}

function transformsOf(actions: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const t of actions.get('t') ?? []) {
    if (t === 'none') out.length = 0;
    else out.push(t);
  }
  return out;
}

/** Byte values of a `@validateByteRange` list, as the regex of the characters outside it. */
function byteRangeRegex(spec: string): string {
  const allowed = new Set<number>();
  for (const part of spec.split(',')) {
    const [a, b] = part.trim().split('-').map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let c = a; c <= (b ?? a); c++) allowed.add(c);
  }
  const hex = (n: number) => `\\x{${n.toString(16).padStart(2, '0')}}`;
  let cls = '';
  for (let c = 0; c <= 255; c++) {
    if (allowed.has(c)) continue;
    let end = c;
    while (end + 1 <= 255 && !allowed.has(end + 1)) end++;
    cls += c === end ? hex(c) : `${hex(c)}-${hex(end)}`;
    c = end;
  }
  // Above 255: the text is UTF-8, and the CRS (on bytes) would see its bytes 128-255.
  if (!allowed.has(128) || !allowed.has(255)) cls += '\\x{100}-\\x{10ffff}';
  return `[${cls}]`;
}

/** PCRE constructs RE2 does not take, and rewrites that keep the meaning where one exists. */
function toRe2(pattern: string): string {
  // ModSecurity compiles with PCRE_DOTALL: `.` matches a newline.
  let p = pattern;
  // Possessive quantifiers and atomic groups only stop backtracking, which RE2 never does.
  p = p.replace(/(\*|\+|\?|\})\+/g, '$1').replace(/\(\?>/g, '(?:');
  // `\Z` (end, or before a final newline) and `\z`.
  p = p.replace(/\\Z/g, '(?:\\n?\\z)');
  return `(?s)${p}`;
}

function condition(op: string, inputs: Input[], id: string): Condition {
  const negated = op.startsWith('!');
  if (negated) throw new Skip(`negated operator ${op.split(' ')[0]}`);
  const m = /^@(\w+)\s*([\s\S]*)$/.exec(op);
  const name = m ? (m[1] ?? '') : 'rx';
  const arg = m ? (m[2] ?? '') : op;
  switch (name) {
    case 'rx':
      return {
        operator: 'match_regex',
        parameters: { inputs, regex: toRe2(arg), options: { case_sensitive: true } },
      };
    case 'pm':
    case 'pmf':
    case 'pmFromFile': {
      const list =
        name === 'pm'
          ? arg.split(/\s+/)
          : arg
              .split(/\s+/)
              .flatMap((f) => readFileSync(join(CRS_DIR, 'rules', f), 'utf8').split('\n'))
              .map((l) => l.trim())
              .filter((l) => l !== '' && !l.startsWith('#'));
      const lower = [...new Set(list.filter((s) => s !== '').map((s) => s.toLowerCase()))].sort();
      return {
        operator: 'phrase_match',
        parameters: {
          inputs: inputs.map((i) => ({
            ...i,
            transformers: [...i.transformers.filter((t) => t !== 'lowercase'), 'lowercase'],
          })),
          list: lower,
        },
      };
    }
    case 'detectSQLi':
      return { operator: 'is_sqli', parameters: { inputs } };
    case 'detectXSS':
      return { operator: 'is_xss', parameters: { inputs } };
    case 'validateByteRange':
      return {
        operator: 'match_regex',
        parameters: { inputs, regex: byteRangeRegex(arg), options: { case_sensitive: true } },
      };
    case 'endsWith':
      return {
        operator: 'match_regex',
        parameters: { inputs, regex: `${regexEscape(arg)}$`, options: { case_sensitive: true } },
      };
    default:
      throw new Skip(`operator @${name} has no equivalent (${id})`);
  }
}

/** Rules whose chain resolves a `tx.` policy list: compiled from REQUEST-901's default. */
function special(id: string, head: SecRule): Condition[] | undefined {
  if (id === '920440') {
    const exts = txDefault('restricted_extensions')
      .split(/\s+/)
      .map((e) => e.replace(/^\./, '').replace(/\/$/, ''))
      .filter((e) => e !== '');
    return [
      {
        operator: 'match_regex',
        parameters: {
          inputs: inputsOf('REQUEST_BASENAME', ['lowercase']),
          regex: `\\.(?:${exts.map(regexEscape).join('|')})$`,
          options: { case_sensitive: true },
        },
      },
    ];
  }
  if (id === '920450') {
    // content-encoding is left out: the gateway decodes bodies (gzip, deflate, br) and inspects the result.
    const names = txDefault('restricted_headers')
      .split(/\s+/)
      .map((h) => h.replace(/^\/|\/$/g, ''))
      .filter((h) => h !== '' && h !== 'content-encoding');
    return [
      {
        operator: 'match_regex',
        parameters: {
          inputs: inputsOf(head.variables, ['lowercase']),
          regex: `^(?:${names.map(regexEscape).join('|')})$`,
          options: { case_sensitive: true },
        },
      },
    ];
  }
  return undefined;
}

/**
 * The words a word-list regex of the CRS matches, spelled out: 3.3.4 writes
 * its lists of names (933160's PHP functions) as one optimised alternation,
 * `s(?:ystem|how_source)|...`. Only what such lists use is understood
 * (literals, `(?:a|b)`, `[abc]`, `?`); anything else throws, so a list is
 * never narrowed by a guess.
 */
function expandWords(src: string): string[] {
  let i = 0;
  const seq = (): string[] => {
    let acc = [''];
    while (i < src.length && src[i] !== '|' && src[i] !== ')') {
      let items: string[];
      if (src.startsWith('(?:', i)) {
        i += 3;
        items = alt();
        if (src[i] !== ')') throw new Error(`expected ) at ${i}`);
        i++;
      } else if (src[i] === '[') {
        const end = src.indexOf(']', i);
        const body = src.slice(i + 1, end);
        if (/[\\^-]/.test(body)) throw new Error(`class ${body}`);
        items = [...body];
        i = end + 1;
      } else if (/[\w]/.test(src[i] ?? '')) {
        items = [src[i] as string];
        i++;
      } else throw new Error(`unexpected ${src[i]} at ${i}`);
      if (src[i] === '?') {
        items = ['', ...items];
        i++;
      }
      acc = acc.flatMap((a) => items.map((b) => a + b));
    }
    return acc;
  };
  const alt = (): string[] => {
    const out = seq();
    while (src[i] === '|') {
      i++;
      out.push(...seq());
    }
    return out;
  };
  const words = alt();
  if (i !== src.length) throw new Error(`stopped at ${i}`);
  return words;
}

/**
 * `@rx (?i)\b(?:<word list>)<rest>` with the given names left out of the
 * list (each must be in it) and the rest of 3.3.4's pattern kept.
 */
function withoutWords(operator: string, drop: string[]): string {
  const head = '@rx (?i)\\b(?:';
  if (!operator.startsWith(head)) throw new Error(`not a word-list regex: ${operator.slice(0, 40)}`);
  // The list ends at the parenthesis that closes the one opened by the head.
  let depth = 1;
  let end = head.length;
  for (; end < operator.length && depth > 0; end++) {
    if (operator[end] === '\\') end++;
    else if (operator[end] === '(') depth++;
    else if (operator[end] === ')') depth--;
  }
  const words = expandWords(operator.slice(head.length, end - 1));
  for (const d of drop) if (!words.includes(d)) throw new Error(`${d} is not in the word list`);
  const kept = words.filter((w) => !drop.includes(w)).sort();
  return `${head}${kept.join('|')})${operator.slice(end)}`;
}

function compileChain(chain: SecRule[], category: string): Rule {
  const head = chain[0] as SecRule;
  const id = head.actions.get('id')?.[0] ?? '';
  const tags = head.actions.get('tag') ?? [];
  const adjusted = ADJUSTED[id];
  const pl = adjusted?.pl ?? tags.find((t) => t.startsWith('paranoia-level/'))?.split('/')[1] ?? '1';
  const severity = (head.actions.get('severity')?.[0] ?? 'CRITICAL').toUpperCase();
  const score = adjusted?.score ?? SCORES[severity];
  if (score === undefined) throw new Skip(`severity ${severity}`);
  let conditions = special(id, head);
  if (conditions === undefined) {
    conditions = [];
    let headInputs: Input[] = [];
    for (const [i, part] of chain.entries()) {
      const transforms = transformsOf(part.actions);
      let variables = part.variables;
      if (i > 0 && variables === 'MATCHED_VAR')
        throw new Skip('chained conditions on the one matched value: libddwaf conditions cannot refer to it');
      // MATCHED_VARS (any value an earlier condition matched): applied to the head's targets.
      if (i > 0 && variables === 'MATCHED_VARS') variables = head.variables;
      else if (i > 0 && /^(TX|MATCHED_VAR)/.test(variables))
        throw new Skip(`chained condition on ${variables} (a value captured by an earlier condition)`);
      let inputs = inputsOf(variables, i > 0 && part.actions.get('t') === undefined ? [] : transforms);
      const pre = i === 0 ? adjusted?.pre : undefined;
      if (pre !== undefined) {
        // Same targets in the same order: the argument values read through the pre-transformations.
        const withPre = inputsOf(variables, [...pre, ...transforms]);
        inputs = inputs.map(
          (input, k) =>
            (adjusted?.preEverywhere === true || /^crs\.args[:!|]|^crs\.args$/.test(input.address)
              ? withPre[k]
              : input) as Input,
        );
      }
      if (i === 0) headInputs = inputs;
      let operator = i === 0 && adjusted?.operator !== undefined ? adjusted.operator : part.operator;
      if (i === 0 && adjusted?.dropWords !== undefined) operator = withoutWords(operator, adjusted.dropWords);
      conditions.push(condition(operator, inputs.length > 0 ? inputs : headInputs, id));
    }
  }
  const msg = head.actions.get('msg')?.[0] ?? id;
  return {
    id,
    name: msg,
    tags: {
      type: category,
      category: 'attack_attempt',
      module: 'crs',
      paranoia_level: pl,
      severity: severity.toLowerCase(),
      score: String(score),
      ...(adjusted === undefined ? {} : { adjusted: adjusted.reason }),
      crs: tags.filter((t) => !t.startsWith('paranoia-level/') && t !== 'OWASP_CRS').join(' '),
    },
    conditions,
  };
}

/**
 * Portcullis's adjustments, from false positives measured on the benign
 * corpus and the CRS 4 negative tests: a rule that flags ordinary text
 * alone is lowered to warning (3: it rejects only with another match at
 * threshold 5) or moved up a paranoia level, as CRS 4 itself did with most
 * of them. Each is listed in the note. Where the attacks such a rule was
 * written for can be told from the ordinary text that tripped it, a narrower
 * rule of Portcullis's own (`rules.json`, named in the reason) detects them
 * at critical, paranoia level 1. Where the false positive comes from a
 * part of the rule's own pattern, `operator` replaces it with 3.3.4's
 * pattern narrowed here (targets and transformations stay 3.3.4's); the
 * comment beside each says what was changed.
 */
interface Adjustment {
  score?: number;
  pl?: string;
  /** 3.3.4's operator replaced, with 3.3.4's pattern narrowed here. */
  operator?: string;
  /** Names taken out of 3.3.4's word-list regex (`withoutWords`): the rest of its pattern stays. */
  dropWords?: string[];
  /**
   * Portcullis transformations run before the rule's own (`transforms.ts`), on argument values
   * only (each such address is a group the engine transforms and hands over apart: the other
   * targets, where what the transformation is for does not occur, are left as they were).
   */
  pre?: string[];
  /** `pre` on every target of the rule, not on argument values only. */
  preEverywhere?: boolean;
  reason: string;
}

/**
 * What may follow the "(" of a SQL function call in the narrowed rules (942140, 942190, and
 * pc-sqli-122 in rules.json, which ends with the same text): anything but a named argument,
 * `name:` then neither ":" nor "=" (GraphQL's `user(id: 1)` and `database(name: "main")`, a
 * named argument in C#, Swift or Kotlin), which no SQL dialect has inside a call. A PostgreSQL
 * cast (`user(a::text)`) and MySQL's assignment (`user(@a:=1)`) still match.
 */
const CALL_ARGUMENTS = String.raw`(?:\s*(?:[^\s\w$]|$)|\s*\$?\w+\s*(?:[^\s\w:]|$|::|:=)|\s*\$?\w+\s+\w)`;

const ADJUSTED: Record<string, Adjustment> = {
  '941120': {
    // 3.3.4's regex, narrowed here: a handler name of 3 to 50 letters, and "=" not followed by "=".
    // "=" may end the value (`<x onend=`) after a space, quote or sign, not after "/" or a digit: a
    // base64 token ends so ("...Q/oNYdQVuuVYsLiCcdWsFbXc=": 4 of 20,000 random tokens were refused).
    operator:
      String.raw`@rx (?i)[\s\"'` +
      '`' +
      String.raw`;\/0-9=\x0B\x09\x0C\x3B\x2C\x28\x3B]on[a-zA-Z]{3,50}[\s\x0B\x09\x0C\x3B\x2C\x28\x3B]*?=[^=]|[\s\"'` +
      '`' +
      String.raw`;=\x0B\x09\x0C\x2C\x28]on[a-zA-Z]{3,50}[\s\x0B\x09\x0C\x3B\x2C\x28\x3B]*?=$`,
    reason:
      'narrowed: an event handler name of 3 to 50 letters and "=", not "==" (Google\'s FCNEC cookie, "  onab= "); "=" may end the value (a handler cut off at the end of a value) after a space, quote or sign, not after "/" or a digit (the end of a base64 token)',
  },
  '941310': {
    // CRS 4's 941310: its chained pattern, which implies the first, wants an end tag.
    operator: String.raw`@rx \xbc[\s\x0b]*/[\s\x0b]*[^>\xbe]*[>\xbe]|<[\s\x0b]*/[\s\x0b]*[^\xbe]*\xbe`,
    reason:
      'narrowed as CRS 4 narrowed it: the US-ASCII evasion (¼script¾ for <script>) only with an end tag (¼/script¾), not "¼" and ">" anywhere in a value ("sitzbezÃ¼ge > fuÃmatten": UTF-8 read as Latin-1)',
  },
  '941100': {
    pre: ['removeXmlDeclarations'],
    reason:
      'narrowed: in argument values, an XML declaration or xml-stylesheet instruction (<?xml version="1.0"?>) is removed before libinjection, which flags every "<?xml" for IE\'s XML data islands; the rest of the value is still checked',
  },
  '942100': {
    pre: ['sqlSigned'],
    preEverywhere: true,
    reason:
      'narrowed: libinjection reads only values that show a sign of SQL (a quote, comment, operator or statement end, or a word such as "or", "union", "order"), not prose whose parentheses make a fingerprint ("while (foo) is bar.", "Left (WA, RR)")',
  },
  '942101': {
    pre: ['sqlSigned'],
    preEverywhere: true,
    reason: 'narrowed: as 942100, libinjection reads only path names that show a sign of SQL',
  },
  '941130': {
    // 3.3.4's regex with a word boundary before "xlink", "xhtml"; "xhtml" ending a namespace name (the end,
    // a quote, ">", "/", "\\", ";" or a word after spaces), not the media type application/xhtml+xml, in every
    // browser's Accept header (its "+" is a space once URL-decoded); "xmlns" only as a declaration whose value is a URL or a URN.
    // "[\s\S]\bx" is a character that is no word character, then "x"; a letter beyond ASCII is a word character
    // here (`boundaryClass`, as every opening boundary is made), so "Haßxhtml" holds no "xhtml".
    operator: String.raw`@rx (?i)(?:[\s\S](?:!ENTITY\s+(?:\S+|%\s+\S+)\s+(?:PUBLIC|SYSTEM)|data:text\/html|pattern\b.*?=|formaction|\@import|;base64)\b|${boundaryClass()}xlink:href\b|${boundaryClass()}xhtml(?:$|["'>/\\;]|\s+[^x\s])|${boundaryClass()}xmlns(?::[\w.-]+)?\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*://|urn:)\b)`,
    reason:
      'narrowed: "xmlns" and its kin as whole words ("q=7XMLNS"); "xmlns" only where it declares a namespace named by a URL or a URN, as the XHTML, XInclude and schema-instance namespaces of the attacks are ("the xmlns attribute", an XMP packet\'s xmlns:x="adobe:ns:meta/"); "xhtml" not as the media type application/xhtml+xml (an Accept header stored as a value)',
  },
  '941180': {
    // 3.3.4's list without "-->", as a regex: a name preceded by "/" and ending the value or followed by "/" is a path segment.
    operator: String.raw`@rx (?i)(?:^|[^/])(?:document\.cookie|document\.write|\.parentnode|\.innerhtml|window\.location|-moz-binding|<!--|<!\[cdata\[)|(?:document\.cookie|document\.write|\.parentnode|\.innerhtml|window\.location|-moz-binding|<!--|<!\[cdata\[)[^/]`,
    reason:
      'narrowed: "-->" alone is an arrow in ordinary text; a DOM name that is a whole segment of a path ("/docs/javascript/document.cookie", a path parameter) names a page, not a script',
  },
  '932140': {
    // 3.3.4's regex, with "==" needing a right operand.
    operator: String.raw`@rx \b(?:if(?:/i)?(?: not)?(?: exist\b| defined\b| errorlevel\b| cmdextversion\b|(?: |\().*(?:\bgeq\b|\bequ\b|\bneq\b|\bleq\b|\bgtr\b|\blss\b|==\s*[^\s=]))|for(?:/[dflr].*)? %+[^ ]+ in\(.*\)\s?do)`,
    reason:
      'narrowed: an IF comparison has a right operand after "==": base64 padding ends a value with "==", and the rule\'s second URL decoding turns a base64 "+" into a space ("...if+foo==")',
  },
  '933160': {
    dropWords: [
      // A file's times, as templates read them for cache busting ("style.css?v=<?= filemtime(...) ?>"),
      // an image's size or type, a file's hash (a phar:// wrapper, the way to abuse a file function, is
      // 933200's). Those telling whether a file exists, whose it is and what it allows (file_exists,
      // filegroup, is_*) stay.
      ...['fileatime', 'filectime', 'filemtime', 'getlastmod', 'getimagesize', 'exif_imagetype'],
      ...['md5_file', 'sha1_file', 'hash_file', 'hash_hmac_file', 'hash_update_file'],
      // Encoding, decoding and formatting of strings (chr and strrev, which hide a function's name, stay).
      ...['stripslashes', 'stripcslashes', 'hex2bin', 'convert_uuencode', 'base64_encode'],
      ...['json_encode', 'json_decode', 'bson_encode', 'urlencode', 'urldecode', 'rawurlencode'],
      ...[
        'rawurldecode',
        'htmlentities',
        'htmlspecialchars',
        'htmlspecialchars_decode',
        'html_entity_decode',
      ],
      ...['gzcompress', 'gzdeflate', 'gzencode'],
      // Matching without evaluation, introspection of the code, output buffers without a callback. Those
      // that print data (print_r, var_dump) or tell about the host (getcwd, get_current_user) stay.
      ...['preg_match', 'preg_match_all', 'preg_split', 'mb_ereg', 'mb_eregi', 'mb_ereg_match'],
      ...['debug_backtrace', 'error_reporting', 'method_exists', 'function_exists', 'tmpfile'],
      ...['ob_clean', 'ob_end_clean', 'ob_end_flush', 'ob_flush', 'ob_get_clean', 'ob_get_contents'],
      'ob_get_flush',
    ],
    reason:
      'narrowed: 3.3.4\'s list without the PHP functions that only read a file\'s times, image size or hash, encode or format strings, match without evaluating or introspect the code ("filemtime($foo)", "json_encode($data)" in a support ticket); those that run code, take a callback, read or write files, tell whether a file exists, print data, open connections or processes stay',
  },
  '933180': {
    // 3.3.4's regex, with line comments ending at a line break.
    operator: String.raw`@rx \$+(?:[a-zA-Z_\x7f-\xff][a-zA-Z0-9_\x7f-\xff]*|\s*{.+})(?:\s|\[.+\]|{.+}|/\*.*\*/|//[^\n\r]*[\n\r]|#[^\n\r]*[\n\r])*\(.*\)`,
    reason: 'narrowed: a line comment ends at a line break, so "$a#foo()" is not a variable function call',
  },
  '932150': {
    pl: '2',
    reason:
      'a bare command word at the start of a value ("echo chamber", "head of marketing"); CRS 4 replaced it; narrowed at critical by pc-cmdi-321',
  },
  '933210': { pl: '2', reason: 'markdown links and images ("[docs](https://...)")' },
  '932100': { score: 3, reason: 'command lines quoted in support tickets ("ps aux | grep node")' },
  '932105': { score: 3, reason: 'code blocks quoted in support tickets' },
  '932110': { pl: '2', reason: 'commands quoted in prose ("run `git status`"); Windows only' },
  '932115': { pl: '2', reason: 'URLs with ordinary query strings, Python loops in tickets; Windows only' },
  '932130': {
    pl: '2',
    reason:
      'template placeholders ("Hi ${name}", "${HOME}/.config"); Portcullis\'s pc-cmdi-303 covers command substitution at PL1; narrowed at critical by pc-cmdi-323',
  },
  '932160': {
    score: 3,
    reason: 'shell paths in prose ("#!/bin/bash", "$PATH"); narrowed at critical by pc-cmdi-322',
  },
  '933100': { score: 3, reason: '"<?xml" declarations (fixed in CRS 4)' },
  '930100': {
    // 3.3.4's regex, with a plain "/" before the two dots only where no short name precedes it: one
    // of up to 63 letters, digits, "_", "~" or "-" (not one with "%" or "0x", which an encoded dot has).
    operator: String.raw`@rx (?i)(?:(?:\x5c|(?:%(?:c(?:0%(?:[2aq]f|5c|9v)|1%(?:[19p]c|8s|af))|2(?:5(?:c(?:0%25af|1%259c)|2f|5c)|%46|f)|(?:(?:f(?:8%8)?0%8|e)0%80%a|bg%q)f|%3(?:2(?:%(?:%6|4)6|F)|5%%63)|u(?:221[56]|002f|EFC8|F025)|1u|5c)|0x(?:2f|5c)))|(?:^|[^a-z0-9_~-]|[a-z0-9_~-]{64}|(?:%|0x)[^/\x5c]*)\/)(?:%(?:(?:f(?:(?:c%80|8)%8)?0%8|e)0%80%ae|2(?:(?:5(?:c0%25a|2))?e|%45)|u(?:(?:002|ff0)e|2024)|%32(?:%(?:%6|4)5|E)|c0(?:%[256aef]e|\.))|\.(?:%0[01]|\?)?|\?\.?|0x2e){2}(?:\x5c|(?:%(?:c(?:0%(?:[2aq]f|5c|9v)|1%(?:[19p]c|8s|af))|2(?:5(?:c(?:0%25af|1%259c)|2f|5c)|%46|f)|(?:(?:f(?:8%8)?0%8|e)0%80%a|bg%q)f|%3(?:2(?:%(?:%6|4)6|F)|5%%63)|u(?:221[56]|002f|EFC8|F025)|1u|5c)|0x(?:2f|5c)|\/))`,
    reason:
      'narrowed: a plain "/../" right after a name ("https://example.com/a/b/../c", "docs/v2/../v3") steps back over that name and cannot climb out of where the path starts; after "..", "." or "/", an encoded dot, a name of 64 characters or more (path truncation), at the start of a value or with any encoded or backslash separator, it is matched as in 3.3.4',
  },
  '930110': {
    score: 3,
    reason: 'a bare ".." or a relative URL; narrowed at critical by pc-lfi-405, pc-lfi-408',
  },
  '930120': {
    score: 3,
    reason:
      'file names in prose ("package.json", "/etc/nginx/nginx.conf"); narrowed at critical by pc-lfi-406',
  },
  '941160': {
    score: 3,
    reason: 'ordinary HTML (<img src alt>) in rich-text fields; narrowed at critical by pc-xss-221',
  },
  '942140': {
    // 3.3.4's regex, with "]" not among the non-word characters between "schema" or "database" and
    // "(", and no named argument after it (CALL_ARGUMENTS).
    operator: String.raw`@rx (?i:\b(?:(?:m(?:s(?:ys(?:ac(?:cess(?:objects|storage|xml)|es)|(?:relationship|object|querie)s|modules2?)|db)|aster\.\.sysdatabases|ysql\.db)|pg_(?:catalog|toast)|information_schema|northwind|tempdb)\b|s(?:(?:ys(?:\.database_name|aux)|qlite(?:_temp)?_master)\b|chema(?:_name\b|[^\w\]]*\(${CALL_ARGUMENTS}))|d(?:atabas|b_nam)e[^\w\]]*\(${CALL_ARGUMENTS}))`,
    reason:
      'narrowed: a markdown link whose text ends in "schema" or "database" ("see the [Account schema](https://...)") is not a call of schema() or database(), nor a GraphQL field with arguments (`database(name: "main")`); the calls, with any other characters before "(", stay',
  },
  '942160': { score: 3, reason: '"sleep(5)" in prose; narrowed at critical by pc-sqli-121' },
  '942190': {
    score: 3,
    // 3.3.4's regex, with a quote glued to "having", "select" or "union" only where no quote of
    // its kind follows (a quote that opens a phrase, "Select all", is closed; one that closes the
    // string an injection breaks out of is not), and no named argument after the "(" of user(),
    // database(), schema(), connection_id() and current_user() (CALL_ARGUMENTS; 3.3.4's "[^\)]*?"
    // after it matched nothing). "\x60" is its backtick.
    operator: String.raw`@rx (?i:(?:["'\x60](?:(?:\s*?;\s*?|\s+)(?:having|select|union)\b\s*?[^\s]|\s*?!\s*?["'\x60\w])|'(?:having|select|union)\b\s*?[^\s][^']*$|"(?:having|select|union)\b\s*?[^\s][^"]*$|\x60(?:having|select|union)\b\s*?[^\s][^\x60]*$|(?:c(?:onnection_id|urrent_user)|database)\s*?\(${CALL_ARGUMENTS}|u(?:nion(?:[\w(\s]*?select| select @)|ser\s*?\(${CALL_ARGUMENTS})|s(?:chema\s*?\(${CALL_ARGUMENTS}|elect.*?\w?user\()|into[\s+]+(?:dump|out)file\s*?["'\x60]|\s*?exec(?:ute)?.*?\Wxp_cmdshell|from\W+information_schema\W|exec(?:ute)?\s+master\.|\wiif\s*?\())`,
    reason:
      '"union select" in prose; narrowed at critical by pc-sqli-128; narrowed: a quoted phrase that starts with "Select", "Having" or "Union" ("Select all" button) is not a quote closed before a query, and a GraphQL field with arguments (`user(id: 1)`) is not a call of user()',
  },
  '942230': {
    score: 3,
    reason: 'code in support tickets ("if (a < b) {"); narrowed at critical by pc-sqli-129',
  },
  '942360': { pl: '2', reason: '"Select" as a word in quotes; narrowed at critical by pc-sqli-130' },
  '944120': { score: 3, reason: 'Java words in ordinary text (fixed in CRS 4)' },
};

/** Rules left out on purpose. */
const EXCLUDED: Record<string, string> = {
  '920350':
    'Host is a numeric IP: a gateway is addressed by IP by load balancers and health checks; the listener checks Host itself',
};

export function compile(): {
  ruleset: Record<string, unknown>;
  skipped: { skipped: Skipped[]; narrowed: Skipped[] };
} {
  const files = readdirSync(join(CRS_DIR, 'rules'))
    .filter((f) => /^REQUEST-9\d\d-.*\.conf$/.test(f) && FILES[f.slice(8, 11)] !== undefined)
    .sort();
  const rules: Rule[] = [];
  const skipped: Skipped[] = [];
  const narrowed: Skipped[] = [];
  for (const file of files) {
    const category = FILES[file.slice(8, 11)] as string;
    const items = readRules(file);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (item === undefined || 'marker' in item) continue;
      const chain: SecRule[] = [item];
      while (chain.at(-1)?.actions.has('chain')) {
        const next = items[++i];
        if (next === undefined || 'marker' in next) break;
        chain.push(next);
      }
      const id = item.actions.get('id')?.[0] ?? '';
      // The paranoia-level gates and the skip markers are ModSecurity control flow, not detection.
      if (
        item.variables.startsWith('TX:EXECUTING_PARANOIA_LEVEL') ||
        item.variables.startsWith('TX:DETECTION_PARANOIA_LEVEL')
      )
        continue;
      if (!(item.actions.has('block') || item.actions.has('deny'))) continue;
      if (EXCLUDED[id] !== undefined) {
        skipped.push({ id, file, reason: EXCLUDED[id] });
        continue;
      }
      partial = [];
      try {
        rules.push(compileChain(chain, category));
        if (partial.length > 0)
          narrowed.push({ id, file, reason: `targets not visible, left out: ${partial.join(', ')}` });
      } catch (err) {
        if (!(err instanceof Skip)) throw err;
        skipped.push({ id, file, reason: err.message });
      }
    }
  }
  // What libddwaf refuses (regexes RE2 cannot take) is left out, with the engine's reason.
  const probe = new appsec.DDWAF({ version: '2.1', rules }, 'crs-compile');
  const diag = probe.diagnostics.rules as
    | { failed?: string[]; errors?: Record<string, string[]> }
    | undefined;
  probe.dispose();
  const reasons = new Map<string, string>();
  for (const [error, ids] of Object.entries(diag?.errors ?? {})) for (const id of ids) reasons.set(id, error);
  const failed = new Set(diag?.failed ?? []);
  const loaded = rules.filter((r) => !failed.has(r.id));
  for (const r of rules) {
    if (!failed.has(r.id)) continue;
    // (A regex with a backreference or lookaround has no RE2 equivalent.)
    const file = files.find((f) => f.slice(8, 11) === r.id.slice(0, 3)) ?? '';
    skipped.push({ id: r.id, file, reason: `libddwaf refused it: ${reasons.get(r.id) ?? 'unknown'}` });
  }
  skipped.sort((a, b) => a.id.localeCompare(b.id));
  const version = /OWASP_CRS\/([\d.]+)/.exec(
    readFileSync(join(CRS_DIR, 'rules', files[0] as string), 'utf8'),
  )?.[1];
  return {
    ruleset: {
      version: '2.1',
      metadata: { rules_version: `crs-${version ?? 'unknown'}` },
      rules: loaded,
    },
    skipped: { skipped, narrowed },
  };
}

/** JSON as the repository's formatter (Biome) writes it, so `biome check` and `--check` agree. */
function render(value: unknown, file: URL): string {
  const biome = fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url));
  return execFileSync(biome, ['format', `--stdin-file-path=${fileURLToPath(file)}`], {
    input: `${JSON.stringify(value, null, 2)}\n`,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

function main(): void {
  const check = process.argv.includes('--check');
  const { ruleset, skipped } = compile();
  const rulesText = render(ruleset, RULES_OUT);
  const skippedText = render(skipped, SKIPPED_OUT);
  if (check) {
    const same =
      readFileSync(RULES_OUT, 'utf8') === rulesText && readFileSync(SKIPPED_OUT, 'utf8') === skippedText;
    if (!same) {
      err('crs-rules.json or crs-skipped.json differs from what scripts/compile-crs.ts produces');
      process.exit(1);
    }
    out(`crs rules up to date (${(ruleset.rules as unknown[]).length} rules)`);
    return;
  }
  writeFileSync(RULES_OUT, rulesText);
  writeFileSync(SKIPPED_OUT, skippedText);
  out(
    `${(ruleset.rules as unknown[]).length} rules compiled, ${skipped.skipped.length} left out, ${skipped.narrowed.length} narrowed`,
  );
}

main();
