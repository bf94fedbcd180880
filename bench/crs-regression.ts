/**
 * Runs the OWASP CRS regression tests (go-ftw YAML, 3.3.x or 4.x format)
 * through a real Portcullis gateway and reports, per rule file, how many
 * positive tests were blocked and how many negative tests passed.
 *
 *   node --import tsx bench/crs-regression.ts <tests dir> [--rules <CRS rules dir>] [--pl 1]
 *     [--split tuned|heldout|all] [--json <file>] [--verbose]
 *
 * `<tests dir>` holds `REQUEST-9xx-*` folders of YAML files (the CRS
 * repository's `tests/regression/tests`). `--rules` is the `rules/` folder of
 * the same CRS version: it gives each rule's paranoia level, so tests of
 * rules above the gateway's level are counted apart (as the CRS does: a PL2
 * rule is not expected to fire at PL1). The test files are not part of the
 * repository: fetch them (`git archive v4.x tests/regression/tests rules`).
 *
 * Each test's request is sent as written (method, target, headers, body;
 * `encoded_request` as its bytes) on its own connection to a gateway whose
 * one route, `/*` with every method and no authentication, runs the inspect
 * stage at the given paranoia level in front of an upstream that answers
 * 200. Blocked: the gateway answered anything but the upstream's 200 (a 403
 * from inspection, or an earlier refusal of the framing or encoding, which
 * the issue counts as detected). A positive test is one expecting its rule
 * to fire; a negative one expecting it not to.
 *
 * Held-out tests. One test in four is held out of tuning, chosen by a hash
 * of its title (`heldOut`: SHA-256 of `942100-7`, first byte mod 4 = 0), so
 * the split is the same on every run and for every CRS checkout, and a test
 * added upstream falls on one side without moving the others. Rules are
 * tuned looking at `--split tuned` only; `--split heldout` measures how
 * that tuning generalises. `--split all` (the default) runs both. Once, for
 * issue 12, the held-out negatives inspection blocked were read (see
 * HELD_OUT_READ) and the classes of six of them were fixed (942151-12,
 * 941120-9, 941310-5, 941310-8, 942190-43, 942340-10; later 933100-35, a
 * regex typed as a value): since then the held-out negatives are not
 * untouched. Each held-out corpus of ordinary values was measured first and
 * tuned on after (`crs.test.ts` says when), so the figure that generalises
 * is each one's first measurement.
 * `--json <file>` writes every outcome (with the request as sent) for
 * analysis.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import crsRules from '../src/stages/inspect/crs-rules.json' with { type: 'json' };
import { startTestGateway, startUpstream } from '../src/test-support/gateway.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);
const err = (line: string): boolean => process.stderr.write(`${line}\n`);

interface Stage {
  input?: {
    method?: string;
    uri?: string;
    version?: string;
    headers?: Record<string, string> | { name: string; value: string }[];
    data?: string | string[];
    encoded_request?: string;
    raw_request?: string;
    autocomplete_headers?: boolean;
  };
  output?: {
    log?: { expect_ids?: number[]; no_expect_ids?: number[] };
    log_contains?: string;
    no_log_contains?: string;
    status?: number | number[];
    expect_error?: boolean;
  };
  // 3.3.x nests input and output under `stage`.
  stage?: Stage;
}

interface TestCase {
  test_title?: string;
  test_id?: number;
  desc?: string;
  stages: Stage[];
}

interface Outcome {
  file: string;
  rule: string;
  title: string;
  kind: 'positive' | 'negative' | 'unclear';
  pl: number;
  blocked: boolean;
  status: number;
  /** The rules that fired, from the gateway's log. */
  rules: string[];
  /** What inspection found, as logged: `<location> <category> <rule>` each. */
  detections: string[];
  /** Held out of tuning (see the header). */
  heldOut: boolean;
  /** The request bytes of the last stage, as latin1 (for `--json`). */
  request: string;
}

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rules: { type: 'string' },
    pl: { type: 'string', default: '1' },
    split: { type: 'string', default: 'all' },
    json: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});
const dir = positionals[0];
const rulesDir = opts.rules;
const pl = Number(opts.pl);
const split = opts.split ?? 'all';
const jsonOut = opts.json;
const verbose = opts.verbose === true;
if (dir === undefined || !['tuned', 'heldout', 'all'].includes(split)) {
  err(
    'usage: crs-regression.ts <tests dir> [--rules <CRS rules dir>] [--pl 1] [--split tuned|heldout|all] [--json <file>] [--verbose]',
  );
  process.exit(2);
}

/**
 * Negative tests of the tuned split that carry an attack another rule is
 * meant to catch. A CRS negative test only says that its own rule must not
 * fire (the 932230 negatives are command injections "from old modsec
 * regressions"); Portcullis counts a test as passed only when nothing at
 * all blocks it. Each was read by hand and is listed with why; blocking
 * one is not counted as a false positive (reported apart). Only tuned
 * tests are listed: a held-out negative blocked by inspection counts as a
 * false positive, whatever it carries.
 */
const CARRIES_ATTACK: Record<string, string> = {
  '920451-2': 'Content-Range in a request: the test says its sibling rule (920450) blocks it',
  '920660-23': 'Content-Range in a request, refused by 920450 as in 920451-2',
  '920640-2': 'select(sleep(10)); in JSON (942160)',
  '932207-4': ';ls -al in Referer',
  '932230-1': "system('echo cd /tmp;wget ...;perl p.txt') (from old modsec regressions)",
  '932230-7': ';top at the start of a value (the test says it is blocked)',
  '932230-9': "system('dig cd /tmp;ftp ...')",
  '932230-10': "system('echo cd /tmp;wget ...') with HTML entities",
  '932230-11': "system('echo cd /tmp;wget ...') with HTML entities",
  '932230-12': "system('echo cd /tmp;wget ...') with HTML entities",
  '932230-14': '<!--#exec cmd="/bin/cat /etc/shadow"--> (payloadbox list)',
  '932230-15': '\ncat /etc/passwd; (payloadbox list)',
  '932230-18': '<!--#exec cmd="/bin/cat /etc/shadow"-->',
  '932230-19': '<!--#exec cmd="/bin/cat /etc/shadow"-->',
  '932230-20': '\ncat /etc/passwd;',
  '932230-21': '\ncat /etc/passwd;',
  '932230-23': 'shellshock: () { :;}; /bin/bash -c "ftp ..."',
  '932230-27': '`cut crs312``dig 34test` (the test calls it a Unix command injection)',
  '932230-46': ';cat /path/file.gz',
  '932250-19': 'C:\\Windows\\System32\\ls: CRS 4 930120 (lfi-os-files, windows/system32)',
  '932260-1': 'bash -c "echo test"',
  '932260-2': 'exec 5<>/dev/tcp/8.8.8.8/80 (a reverse shell)',
  '932260-14': 'time curl coreruleset.org (the test calls it a command injection)',
  '932260-15': "ti''me curl coreruleset.org (the same, with an evasion)",
  '932271-6': '~- : the same request is 932270-2, a positive test',
  '932390-15': 'myfunction(){ echo hello }: CRS 4 934100 (function(){)',
  '933100-81': "system('id') (CRS 4 933160)",
  '933131-1': "$_SERVER['test'] (933130)",
  '933131-2': '$_COOKIE as a name (933130)',
  '933150-34': 'printf(foo): CRS 4 933160',
  '933160-31': 'eval( in the path: CRS 4 934100',
  '934170-2': 'data://text/plain;base64,... (CRS 4 941130, ;base64)',
  '941100-5': '<script>...createElement("script")...</script> in Referer',
  '941140-12':
    'style=background:url(http://...): an inline style attribute, injected into a tag, loads an outside URL (CSS injection); libinjection flags it (CRS 4 941100)',
  '942101-10': "9'union all in the path",
  '942101-11': 'union all select 1,2,3 from aa in the path',
  '942160-12': 'BENChmARk(2999/**/999,Md5( (blind SQL injection)',
  '942310-1': '"\' and = bar: a quote breakout with and (borderline)',
  '942350-9': "';INSERT INTO category(id) VALUES (3)-- (the test: see 942500)",
  '942360-29': "||(SELECT(DBMS_LDAP.INIT('169.1.1.1',19))FROM(DUAL)) (out-of-band SQLi)",
  '942360-30': "'||(select(pg_sleep(15))where(true))||' (blind SQLi)",
  '942521-16': "an article quoting ' OR '1'='1' -- verbatim (libinjection, CRS 4 942100)",
  '942522-5': "'or'1 (the test: does not block normal SQLi)",
  '942522-8': "an article quoting ' OR '1'='1' -- verbatim (libinjection, CRS 4 942100)",
};

/**
 * The held-out negative tests inspection blocked, read once after the fact
 * (issue 12), as CARRIES_ATTACK was written for the tuned ones: those that
 * carry an attack another rule is meant to catch. Reported apart from the
 * strict count, which stays as it is.
 */
const HELD_OUT_READ: Record<string, string> = {
  '932230-2': 'lwp-download/wget/curl/perl of a remote file, then rm -rf (from old modsec regressions)',
  '932230-8': ';top after prose (the test says it is blocked, as 932230-7)',
  '932230-16': 'shellshock: () { :;}; /bin/bash -c "curl ..."',
  '932230-26': '` /bin/cat /etc/passwd` in backticks',
  '932271-5': '~+ : the same request is 932270-1, a positive test (as 932271-6 is 932270-2)',
  '932340-17': 'C:\\Windows\\System32\\ls: CRS 4 930120 (windows/system32), as 932250-19',
  '934110-7': 'http://169.254.169.254/latest: the cloud metadata address (CRS 4 931100, an IP URL)',
  '941140-14': 'url(javascript:alert(1)) (CRS 4 941170)',
  '942360-31': 'UNION ALL SELECT NULL,NULL,CONCAT(...)-- (sqlmap; CRS 4 942100)',
  '942521-15': "\\'lol' or '1 (CRS 4 942100)",
};

/** The ids of the CRS rules Portcullis compiles (3.3.4's, some narrowed): the rules a CRS negative test can name. */
const COMPILED = new Set(crsRules.rules.map((r) => r.id));

/** Whether a test is held out of tuning: one in four, by a hash of its title (see the header). */
function heldOut(title: string): boolean {
  return (createHash('sha256').update(title).digest()[0] ?? 0) % 4 === 0;
}

/** Paranoia level of each rule id, from the CRS rule files. */
function paranoiaLevels(rules: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (rules === undefined) return out;
  for (const f of readdirSync(rules)) {
    if (!f.endsWith('.conf')) continue;
    const text = readFileSync(join(rules, f), 'utf8');
    for (const m of text.matchAll(/id:(\d{6})[\s\S]*?(?=id:\d{6}|$)/g)) {
      const level = /paranoia-level\/(\d)/.exec(m[0])?.[1];
      if (m[1] !== undefined && level !== undefined && !out.has(m[1])) out.set(m[1], Number(level));
    }
  }
  return out;
}

function ruleIn(text: string | undefined): string | undefined {
  return text === undefined ? undefined : /id\s*"?(\d{6})/.exec(text)?.[1];
}

function kindOf(stage: Stage, rule: string): Outcome['kind'] {
  const o = stage.output ?? {};
  if (o.log?.expect_ids?.map(String).includes(rule) || ruleIn(o.log_contains) === rule) return 'positive';
  if (o.log?.no_expect_ids?.map(String).includes(rule) || ruleIn(o.no_log_contains) === rule)
    return 'negative';
  if (o.log?.expect_ids !== undefined || o.log_contains !== undefined) return 'positive';
  if (o.log?.no_expect_ids !== undefined || o.no_log_contains !== undefined) return 'negative';
  return 'unclear';
}

/** Go's `url.QueryEscape`: unreserved characters kept, a space as `+`, every other UTF-8 byte as `%XX`. */
function queryEscape(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The request's bytes as go-ftw (the CRS's test runner) sends them. With
 * `autocomplete_headers` (the default) and a body, go-ftw adds
 * `Content-Type: application/x-www-form-urlencoded` when the test gives
 * none, and then, when the body has nothing percent-decoding would change
 * (no `%`, no `+`), escapes each key and value of its `k=v&...` pairs as
 * Go's `url.QueryEscape` does (the tests write payloads unescaped). A
 * multipart body has its line feeds sent as CRLF. It adds `Connection:
 * close` and a `Content-Length` (also 0 for POST, PUT, PATCH and DELETE).
 * (go-ftw `ftwhttp/request.go`, `BuildRequest`.)
 */
function requestBytes(stage: Stage, host: string): Buffer {
  const input = stage.input ?? {};
  if (input.encoded_request !== undefined) return Buffer.from(input.encoded_request, 'base64');
  if (input.raw_request !== undefined) return Buffer.from(input.raw_request.replace(/\r?\n/g, '\r\n'));
  const headers: [string, string][] = Array.isArray(input.headers)
    ? input.headers.map((h) => [h.name, h.value])
    : Object.entries(input.headers ?? {}).map(([k, v]) => [k, String(v)]);
  let data = Array.isArray(input.data) ? input.data.join('\r\n') : (input.data ?? '');
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  const headerValue = (n: string) => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  const auto = input.autocomplete_headers !== false;
  const out: [string, string][] = headers.map(([k, v]) => (k.toLowerCase() === 'host' ? [k, host] : [k, v]));
  if (!has('host') && auto) out.unshift(['Host', host]);
  if (data !== '' && auto) {
    if (!has('content-type')) {
      headers.push(['Content-Type', 'application/x-www-form-urlencoded']);
      out.push(['Content-Type', 'application/x-www-form-urlencoded']);
    }
    if (headerValue('content-type') === 'application/x-www-form-urlencoded' && !/[%+]/.test(data)) {
      data = data
        .split('&')
        .map((pair) => {
          const eq = pair.indexOf('=');
          return eq < 0
            ? queryEscape(pair)
            : `${queryEscape(pair.slice(0, eq))}=${queryEscape(pair.slice(eq + 1))}`;
        })
        .join('&');
    }
  }
  if ((headerValue('content-type') ?? '').includes('multipart/form-data;'))
    data = data.replace(/\n/g, '\r\n');
  const body = Buffer.from(data, 'utf8');
  const method = input.method ?? 'GET';
  if (auto && !has('connection')) out.push(['Connection', 'close']);
  if (auto && !has('content-length') && (body.length > 0 || /^POST|PUT|PATCH|DELETE$/.test(method)))
    out.push(['Content-Length', String(body.length)]);
  const head = `${method} ${input.uri ?? '/'} ${input.version ?? 'HTTP/1.1'}\r\n${out
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Sends raw bytes and returns the status code of the answer (0: no answer). */
function send(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = () => {
      socket.destroy();
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0));
    };
    socket.setTimeout(5000, done);
    socket.on('data', (c) => {
      answer += c.toString('latin1');
      if (/^HTTP\/1\.[01] \d{3}/.test(answer)) done();
    });
    socket.on('error', done);
    socket.on('end', done);
    socket.write(bytes);
  });
}

function yamlFiles(root: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root).sort()) {
    const p = join(root, entry);
    if (statSync(p).isDirectory()) {
      if (/^REQUEST-9(2|3|4)\d-/.test(entry)) out.push(...yamlFiles(p));
      else if (!/^(REQUEST|RESPONSE)-/.test(entry)) out.push(...yamlFiles(p));
    } else if (entry.endsWith('.yaml')) out.push(p);
  }
  return out;
}

async function main(): Promise<void> {
  const levels = paranoiaLevels(rulesDir);
  const upstream = await startUpstream();
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const inspection = { paranoia_level: pl, timeout: '100ms' };
  const gw = await startTestGateway({
    log: { level: 'warn' },
    upstreams: { api: { url: upstream.url } },
    routes: [
      { name: 'root', path: '/', methods, upstream: 'api', auth: 'none', body_limit: '1mb', inspection },
      { name: 'all', path: '/*', methods, upstream: 'api', auth: 'none', body_limit: '1mb', inspection },
    ],
  });
  const outcomes: Outcome[] = [];
  try {
    for (const path of yamlFiles(dir as string)) {
      const doc = (parse(readFileSync(path, 'utf8')) ?? {}) as { rule_id?: number; tests?: TestCase[] };
      const folder = path.split('/').at(-2) ?? '';
      const rule = String(doc.rule_id ?? /(\d{6})/.exec(path)?.[1] ?? '');
      for (const t of doc.tests ?? []) {
        const stages = t.stages.map((s) => s.stage ?? s);
        const title = t.test_title ?? `${rule}-${t.test_id}`;
        const held = heldOut(title);
        if ((split === 'tuned' && held) || (split === 'heldout' && !held)) continue;
        let request = '';
        let blocked = false;
        let status = 0;
        let kind: Outcome['kind'] = 'unclear';
        const logsBefore = gw.logs.length;
        for (const stage of stages) {
          const k = kindOf(stage, rule);
          if (k !== 'unclear') kind = k;
          const bytes = requestBytes(stage, `127.0.0.1:${gw.port}`);
          request = bytes.toString('latin1');
          status = await send(gw.port, bytes);
          if (status !== 200) blocked = true;
        }
        // `<location> <category> <rule>; ...`: a location may itself hold `; ` (a form key), a rule id never.
        const detections = gw.logs
          .slice(logsBefore)
          .flatMap((l) => String(l.detections ?? '').match(/.*? \w+ (?:pc-[a-z]+-\d+|\d{6})(?=; |$)/g) ?? [])
          .map((d) => d.replace(/^; /, ''));
        const rules = detections.map((d) => d.slice(d.lastIndexOf(' ') + 1));
        outcomes.push({
          file: folder,
          rule,
          title,
          kind,
          pl: levels.get(rule) ?? 1,
          blocked,
          status,
          rules,
          detections,
          heldOut: held,
          request,
        });
      }
    }
  } finally {
    await gw.close();
    await upstream.close();
  }
  if (jsonOut !== undefined) writeFileSync(jsonOut, `${JSON.stringify(outcomes, null, 1)}\n`);
  report(outcomes);
}

function pct(a: number, b: number): string {
  return b === 0 ? '-' : `${((100 * a) / b).toFixed(1)} %`;
}

function report(outcomes: Outcome[]): void {
  const files = [...new Set(outcomes.map((o) => o.file))].sort();
  const which = { all: 'all tests', tuned: 'tuned tests (3 in 4)', heldout: 'held-out tests (1 in 4)' }[
    split
  ];
  out(
    `\nParanoia level ${pl}, ${which}: positive tests of rules at PL ≤ ${pl}; negative tests of every level.\n`,
  );
  out('| rule file | positive blocked | % | negative passed | % | positive tests of higher PL blocked |');
  out('| --- | --- | --- | --- | --- | --- |');
  let tp = 0;
  let tpn = 0;
  let tn = 0;
  let tnn = 0;
  for (const f of files) {
    const mine = outcomes.filter((o) => o.file === f);
    const pos = mine.filter((o) => o.kind === 'positive' && o.pl <= pl);
    const neg = mine.filter((o) => o.kind === 'negative');
    const high = mine.filter((o) => o.kind === 'positive' && o.pl > pl);
    const pb = pos.filter((o) => o.blocked).length;
    const np = neg.filter((o) => !o.blocked).length;
    tp += pb;
    tpn += pos.length;
    tn += np;
    tnn += neg.length;
    out(
      `| ${f} | ${pb}/${pos.length} | ${pct(pb, pos.length)} | ${np}/${neg.length} | ${pct(np, neg.length)} | ${high.filter((o) => o.blocked).length}/${high.length} |`,
    );
  }
  out(`| **all** | ${tp}/${tpn} | ${pct(tp, tpn)} | ${tn}/${tnn} | ${pct(tn, tnn)} | |`);
  // The four families the issue's targets name, and the false-positive rate over every negative. A
  // negative refused with a status other than 403 was refused by the HTTP layer before inspection (a
  // request line, framing or encoding the gateway does not take): counted as blocked, shown apart.
  out(
    '\n| family | tuned: positive blocked | held out: positive blocked | tuned: negative blocked (by inspection) | held out: negative blocked (by inspection) |',
  );
  out('| --- | --- | --- | --- | --- |');
  const families: [string, string][] = [
    ['SQLi (942)', '942'],
    ['XSS (941)', '941'],
    ['RCE (932)', '932'],
    ['LFI (930)', '930'],
    ['all files', ''],
  ];
  for (const [name, prefix] of families) {
    const cells = [false, true].flatMap((held) => {
      const mine = outcomes.filter((o) => o.heldOut === held && o.file.startsWith(`REQUEST-${prefix}`));
      const pos = mine.filter((o) => o.kind === 'positive' && o.pl <= pl);
      const neg = mine.filter((o) => o.kind === 'negative');
      const pb = pos.filter((o) => o.blocked).length;
      const nb = neg.filter((o) => o.blocked).length;
      const ni = neg.filter((o) => o.status === 403).length;
      return [
        `${pb}/${pos.length} (${pct(pb, pos.length)})`,
        `${nb}/${neg.length} (${pct(nb, neg.length)}) (${ni}: ${pct(ni, neg.length)})`,
      ];
    });
    out(`| ${name} | ${cells[0]} | ${cells[2]} | ${cells[1]} | ${cells[3]} |`);
  }
  // The regression suite's own semantics: a negative test says that its own rule must not fire, and
  // other rules may. Counted over the negatives of rules Portcullis compiles under the same id (3.3.4's
  // ids, `crs-rules.json`): a test of a rule CRS 4 added, or one left out, has no rule of its id to fire.
  out("\n| family (CRS semantics: the negative test's own rule fired) | tuned | held out |");
  out('| --- | --- | --- |');
  const ownFired: Outcome[] = [];
  for (const [name, prefix] of families) {
    const cells = [false, true].map((held) => {
      const neg = outcomes.filter(
        (o) =>
          o.kind === 'negative' &&
          o.heldOut === held &&
          o.file.startsWith(`REQUEST-${prefix}`) &&
          COMPILED.has(o.rule),
      );
      const fired = neg.filter((o) => o.rules.includes(o.rule));
      if (prefix === '') ownFired.push(...fired);
      return `${fired.length}/${neg.length} (${pct(fired.length, neg.length)})`;
    });
    out(`| ${name} | ${cells[0]} | ${cells[1]} |`);
  }
  for (const held of [false, true]) {
    const mine = ownFired.filter((o) => o.heldOut === held);
    if (mine.length > 0)
      out(
        `\n${held ? 'Held out' : 'Tuned'}, negative tests whose own rule fired: ${mine.map((o) => `${o.title}${o.blocked ? '' : ' (not blocked: score below the threshold)'}`).join(', ')}`,
      );
  }
  const unclear = outcomes.filter((o) => o.kind === 'unclear');
  if (unclear.length > 0)
    out(`\nNot applicable (no log expectation to check): ${unclear.map((o) => o.title).join(', ')}`);
  const byInspection = outcomes.filter((o) => o.kind === 'negative' && o.status === 403);
  for (const held of [false, true]) {
    const mine = byInspection.filter((o) => o.heldOut === held);
    const negatives = outcomes.filter((o) => o.kind === 'negative' && o.heldOut === held).length;
    if (negatives === 0) continue;
    const attacks = mine.filter((o) => CARRIES_ATTACK[o.title] !== undefined);
    const fps = mine.filter((o) => CARRIES_ATTACK[o.title] === undefined);
    out(
      `\n${held ? 'Held out' : 'Tuned'}: ${mine.length} of ${negatives} negative tests blocked by inspection; ${attacks.length} carry an attack another rule is meant to catch (CARRIES_ATTACK), ${fps.length} (${pct(fps.length, negatives)}) are false positives: ${fps.map((o) => `${o.title} [${[...new Set(o.rules)].join(' ')}]`).join(', ')}`,
    );
    if (held) {
      const read = fps.filter((o) => HELD_OUT_READ[o.title] !== undefined);
      const rest = fps.filter((o) => HELD_OUT_READ[o.title] === undefined);
      out(
        `Held out, read after the fact (HELD_OUT_READ): ${read.length} of those carry an attack another rule is meant to catch; ${rest.length} (${pct(rest.length, negatives)}) are false positives then: ${rest.map((o) => o.title).join(', ')}`,
      );
    }
  }
  const refused = outcomes.filter((o) => o.kind === 'negative' && o.blocked && o.status !== 403);
  if (refused.length > 0)
    out(
      `\nNegative tests refused before inspection (HTTP status, not 403): ${refused.map((o) => `${o.title} ${o.status}`).join(', ')}`,
    );
  if (verbose) {
    out('\nMissed positives:');
    for (const o of outcomes.filter((x) => x.kind === 'positive' && x.pl <= pl && !x.blocked))
      out(`  ${o.title}`);
    out('\nBlocked negatives:');
    for (const o of outcomes.filter((x) => x.kind === 'negative' && x.blocked))
      out(`  ${o.title} ${o.status} ${[...new Set(o.rules)].join(' ')}`);
  }
}

await main();
