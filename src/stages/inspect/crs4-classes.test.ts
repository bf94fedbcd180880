/**
 * The classes of CRS 4 regression-test misses fixed for issue 12, each
 * through a real gateway: an attack of the class is refused with 403, and a
 * legitimate value that looks like it gets through. The attacks are written
 * for these tests (not copied from the CRS tests); each names the CRS rule
 * family it stands for.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../../test-support/gateway.js';
import { send } from '../../test-support/http.js';
import { preTransform } from './transforms.js';

const q = encodeURIComponent;

interface Case {
  /** The class of misses, as a sentence fragment. */
  readonly what: string;
  readonly attack: Request;
  readonly legitimate: Request;
}

interface Request {
  readonly target: string;
  readonly method?: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

const json = (value: unknown): Pick<Request, 'method' | 'body' | 'headers'> => ({
  method: 'POST',
  body: JSON.stringify(value),
  headers: { 'content-type': 'application/json' },
});

const CASES: Case[] = [
  {
    what: 'a SQL function call (CRS 4 942151)',
    attack: { target: `/search?q=${q('x=concat(0x3a,version())')}` },
    legitimate: { target: `/search?q=${q('Use text.decode(utf8), then s.insert(0, x) and Math.pow(2, 8)')}` },
  },
  {
    what: 'a JSON literal compared with a PostgreSQL JSON operator, in the path too (CRS 4 942550)',
    attack: { target: `/items/${q(`1 OR '{"x":1}'::jsonb @> '{"x":1}'`)}` },
    legitimate: { target: '/items', ...json({ note: 'The payload {"x":1} is valid JSON' }) },
  },
  {
    what: 'a quote closed into a new statement (CRS 4 942540)',
    attack: { target: '/login', ...json({ email: "root@example.com';" }) },
    legitimate: { target: '/login', ...json({ note: 'He said "stop"; then he left' }) },
  },
  {
    what: 'a command hidden by shell quoting and empty expansions (CRS 4 932230, 932235)',
    attack: { target: `/run?cmd=${q("x; w'h'o$@am\\i")}` },
    legitimate: { target: `/run?cmd=${q('Tom & Jerry; rock n roll')}` },
  },
  {
    what: 'an administration command at the start of a value, with arguments (CRS 4 932260)',
    attack: { target: '/run', ...json({ cmd: 'ansible-playbook -i hosts site.yml' }) },
    legitimate: { target: '/run', ...json({ cmd: 'wget' }) },
  },
  {
    what: 'an administration command hidden by quotes that unshell turns into a plain value (CRS 4 932260)',
    attack: { target: `/run?cmd=${q("n'e't's't'a't -an")}` },
    legitimate: { target: `/run?cmd=${q("the 'netstat' page")}` },
  },
  {
    what: 'a shell expansion: a path glob or an arithmetic expansion (CRS 4 932130)',
    attack: { target: `/files?path=${q('/e[t]c/pa[s]swd')}` },
    legitimate: { target: `/files?path=${q('Hi ${name}, the pattern \\d{1,3} matches')}` },
  },
  {
    what: 'a JavaScript sink called after a string breakout (CRS 4 941390)',
    attack: { target: `/search?q=${q('x";setInterval(code,9)//')}` },
    legitimate: { target: '/notes', ...json({ text: 'I called fetch() and console.log(total) printed 3' }) },
  },
  {
    what: 'an active element whose name is spaced out (CRS 941160, narrowed)',
    attack: { target: `/search?q=${q('<i f r a m e src=//example.org>')}` },
    legitimate: {
      target: '/notes',
      ...json({ html: '<img src="https://cdn.example.com/a.png" alt="logo">' }),
    },
  },
  {
    what: 'a UTF-7 encoded tag (CRS 941350)',
    attack: { target: `/search?q=${q('+ADw-img src=x+AD4-')}` },
    legitimate: { target: `/search?q=${q('rated A+ by 2 reviewers')}` },
  },
  {
    what: 'a cookie without a value, which is read as a cookie name (CRS 941190 on REQUEST_COOKIES_NAMES)',
    attack: { target: '/', headers: { cookie: '<svg/onload=alert(1)>' } },
    legitimate: { target: '/', headers: { cookie: 'session=abc123; theme' } },
  },
  {
    what: 'a hidden or restricted file in the path (CRS 4 930130, 930140)',
    attack: { target: '/static/.codeium/config.json' },
    legitimate: { target: '/.well-known/openid-configuration' },
  },
  {
    what: 'an operating-system file named in an argument (CRS 930120, narrowed)',
    attack: { target: `/files?path=${q('/sys/kernel/debug')}` },
    legitimate: { target: `/files?path=${q('cat package.json shows version 2.1.0')}` },
  },
  {
    what: 'an event handler attribute (CRS 941120, narrowed)',
    attack: { target: `/search?q=${q('"onpointerenter=x')}` },
    legitimate: { target: '/', headers: { cookie: 'sid=Rk4onvKdQw==' } },
  },
  {
    what: 'an XML namespace or a data: HTML URL (CRS 941130, narrowed)',
    attack: { target: `/search?q=${q('<p xmlns:h="urn:x">')}` },
    legitimate: { target: `/search?q=${q('part 9XMLNS-2')}` },
  },
  {
    what: 'a DOM property read (CRS 941180, narrowed)',
    attack: { target: `/search?q=${q('x=document.domain')}` },
    legitimate: { target: `/search?q=${q('step 2 --> step 3')}` },
  },
  {
    what: 'a PHP variable function call (CRS 933180, narrowed)',
    attack: { target: `/search?q=${q('$fn /*x*/ ("uname")')}` },
    legitimate: { target: `/search?q=${q('$total # sum() of the items')}` },
  },
  // The false-positive classes of the CRS 4 negative tests fixed for issue 12 (tuned split): each
  // narrowing keeps the attack its rule was written for.
  {
    what: 'markup after an XML declaration (CRS 941100: libinjection, after removeXmlDeclarations)',
    attack: { target: `/search?q=${q('<?xml version="1.0"?><svg onload=alert(7)>')}` },
    legitimate: { target: `/import?doc=${q('<?xml version="1.1" encoding="ISO-8859-1"?>')}` },
  },
  {
    what: 'an XML namespace named by a URL (CRS 941130, narrowed to declarations)',
    attack: { target: `/search?q=${q('<y:a xmlns:y="http://www.w3.org/1999/xhtml" href="x">')}` },
    legitimate: {
      target: `/notes?text=${q('The xmlns attribute sets the default namespace; see ns:core/')}`,
    },
  },
  {
    what: 'a DOM property outside a path segment (CRS 941180, narrowed)',
    attack: { target: `/echo/${q('"+document.write(1)+"')}` },
    legitimate: { target: '/docs/web-api/document.write' },
  },
  {
    what: 'a cmd.exe IF comparison with a right operand (CRS 932140, narrowed)',
    attack: { target: `/run?cmd=${q('if %USERNAME%==admin net user')}` },
    legitimate: { target: '/login', ...json({ token: 'k7Qx+if+Rz0wYmFy==' }) },
  },
  {
    what: 'a high-risk PHP function call (CRS 933160, narrowed)',
    attack: { target: `/search?q=${q('passthru ("uname -a")')}` },
    legitimate: { target: `/search?q=${q('the cache key uses filectime($path) and md5_file($path)')}` },
  },
];

describe('the CRS 4 classes of misses, through a gateway at paranoia level 1', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    gw = await startTestGateway({
      log: { level: 'error' },
      upstreams: { api: { url: upstream.url } },
      routes: [
        {
          name: 'all',
          path: '/*',
          methods: ['GET', 'POST'],
          upstream: 'api',
          auth: 'none',
          body_limit: '1mb',
          inspection: { paranoia_level: 1 },
        },
        { name: 'root', path: '/', methods: ['GET'], upstream: 'api', auth: 'none', inspection: {} },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const sent = (r: Request) =>
    send(gw.url, r.target, {
      method: r.method ?? 'GET',
      ...(r.body === undefined ? {} : { body: r.body }),
      ...(r.headers === undefined ? {} : { headers: r.headers }),
    });

  for (const c of CASES) {
    it(`refuses ${c.what} with 403`, async () => {
      const reply = await sent(c.attack);
      assert.equal(reply.status, 403, `${c.attack.target} ${c.attack.body ?? ''}: ${reply.body}`);
      assert.equal(reply.json().code, 'input.rejected');
    });
    it(`lets through the legitimate value next to ${c.what}`, async () => {
      const reply = await sent(c.legitimate);
      assert.equal(reply.status, 200, `${c.legitimate.target} ${c.legitimate.body ?? ''}: ${reply.body}`);
    });
  }
});

describe('unshell, the shell-quoting transformation', () => {
  const unshell = preTransform('unshell');

  it('removes the quotes, escapes and carets a shell drops', () => {
    assert.equal(unshell(`w'h'o\\am"i" ^c^m^d`), 'whoami cmd');
  });

  it('removes expansions glued inside a word and single-character globs', () => {
    assert.equal(unshell('c${KK}url sh$XX wh$@oami /bi[n]/sh'), 'curl sh whoami /bin/sh');
  });

  it('keeps separators and expansions that stand alone', () => {
    assert.equal(unshell('a; $HOME && ${x} | b'), 'a; $HOME && ${x} | b');
  });

  it('leaves a value without quotes, escapes or expansions as it is', () => {
    const text = 'red running shoes, size 42';
    assert.equal(unshell(text), text);
  });
});
