/**
 * URL-valued inputs (x-portcullis-url, OWASP API7:2023 server-side request
 * forgery): the rule on its own against every known spelling of an internal
 * address, then from outside, through a real gateway loaded from an API
 * document, in front of a recording upstream: a refused URL is a 400
 * input.invalid naming the location and the rule, never the value, and
 * never reaches the upstream; a public https URL goes through.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { createAjv } from './ajv.js';
import { ApiDocumentError, loadApiDocument } from './document.js';
import { compileUrlRule, isPrivateAddress } from './url-rule.js';

/** Each spelling of an address an outside client must not make the API fetch. */
const BYPASSES = [
  'https://127.0.0.1/',
  'https://2130706433/', // decimal
  'https://0177.0.0.1/', // octal
  'https://0x7f.1/', // hex, short
  'https://0x7f000001/',
  'https://127.1/', // short form
  'https://%31%32%37.0.0.1/', // percent-encoded
  'https://１２７.0.0.1/', // full-width digits
  'https://0/',
  'https://0.0.0.0/',
  'https://[::1]/',
  'https://[::]/',
  'https://[::ffff:127.0.0.1]/', // IPv4-mapped
  'https://[::ffff:7f00:1]/',
  'https://[0:0:0:0:0:ffff:169.254.169.254]/',
  'https://[::127.0.0.1]/', // IPv4-compatible
  'https://[64:ff9b::a9fe:a9fe]/', // NAT64 of the metadata address
  'https://[2002:c0a8:101::1]/', // 6to4 of 192.168.1.1
  'https://10.1.2.3/',
  'https://172.16.0.1/',
  'https://172.31.255.255/',
  'https://192.168.1.1/',
  'https://100.64.0.1/', // CGNAT
  'https://100.100.100.200/latest/meta-data', // Alibaba metadata
  'https://169.254.169.254/latest/meta-data/', // AWS, GCP, Azure metadata
  'https://169.254.0.1/', // link-local
  'https://168.63.129.16/', // Azure wire server
  'https://[fd00:ec2::254]/', // AWS IPv6 metadata (unique local)
  'https://[fc00::1]/',
  'https://[fe80::1]/', // link-local
  'https://[ff02::1]/', // multicast
  'https://224.0.0.1/',
  'https://255.255.255.255/',
  'https://metadata.google.internal/computeMetadata/v1/',
  'https://METADATA.google.internal./', // case and trailing dot
  'https://localhost/',
  'https://api.localhost/',
  'https://db.corp.internal/',
  'https://intranet/', // no dot: completed by the resolver's search domains
  'https://allowed.com@evil/', // userinfo: the host is "evil"
  'https://user:pass@example.com/', // credentials in the URL
];

describe('the x-portcullis-url rule', () => {
  const rule = compileUrlRule({ schemes: ['https'], deny_private: true });

  for (const url of BYPASSES) {
    it(`refuses ${url}`, () => {
      assert.notEqual(rule(url), undefined, url);
    });
  }

  it('accepts public https URLs', () => {
    for (const url of [
      'https://hooks.example.com/callback?x=1',
      'https://93.184.215.14/',
      'https://[2606:4700::1111]/',
      'https://example.com:8443/a',
    ]) {
      assert.equal(rule(url), undefined, url);
    }
  });

  it('refuses schemes not listed, and text that is no URL', () => {
    assert.equal(rule('http://example.com/'), 'scheme not allowed');
    assert.equal(rule('file:///etc/passwd'), 'scheme not allowed');
    assert.equal(rule('gopher://example.com:25/'), 'scheme not allowed');
    assert.equal(rule('/relative/path'), 'not an absolute URL');
    assert.equal(rule('https://'), 'not an absolute URL');
  });

  it('defaults to https only, private addresses refused', () => {
    const dflt = compileUrlRule({});
    assert.equal(dflt('http://example.com/'), 'scheme not allowed');
    assert.equal(dflt('https://127.1/'), 'private address');
    assert.equal(dflt('https://example.com/'), undefined);
  });

  it('with allow_hosts, lets only the listed hosts through, wildcards one label deep', () => {
    const hosts = compileUrlRule({ allow_hosts: ['hooks.example.com', '*.cdn.example.com'] });
    assert.equal(hosts('https://hooks.example.com/x'), undefined);
    assert.equal(hosts('https://HOOKS.example.com./x'), undefined);
    assert.equal(hosts('https://img.cdn.example.com/x'), undefined);
    assert.equal(hosts('https://a.b.cdn.example.com/x'), 'host not allowed');
    assert.equal(hosts('https://cdn.example.com/x'), 'host not allowed');
    assert.equal(hosts('https://hooks.example.com.evil.net/x'), 'host not allowed');
    assert.equal(hosts('https://hooks.example.com@evil.net/x'), 'user information in the URL');
    assert.equal(hosts('https://evil.net/?hooks.example.com'), 'host not allowed');
  });

  it('refuses text that parsers read differently: whitespace, control characters, backslashes', () => {
    for (const url of [
      'https://example.com\\@127.0.0.1/',
      'https://exa\tmple.com/',
      ' https://example.com/',
      'https://example.com/\n',
      'https://example.com/a b',
    ]) {
      assert.equal(rule(url), 'whitespace, control characters or backslashes', JSON.stringify(url));
    }
  });

  it('reads the host of other schemes as http would, so their IPv4 spellings are caught too', () => {
    const git = compileUrlRule({ schemes: ['git', 'ssh'] });
    assert.equal(git('git://0x7f.1/repo'), 'private address');
    assert.equal(git('ssh://2130706433/'), 'private address');
    assert.equal(git('git://[::ffff:a9fe:a9fe]/'), 'private address');
    assert.equal(git('git://git.example.com/repo'), undefined);
  });

  it('with deny_private: false, private addresses pass (an internal tool)', () => {
    const internal = compileUrlRule({ schemes: ['http', 'https'], deny_private: false });
    assert.equal(internal('http://10.0.0.5/'), undefined);
    assert.equal(internal('http://user@10.0.0.5/'), 'user information in the URL');
  });

  it('classifies addresses with node:net BlockList, embedded IPv4 included', () => {
    assert.equal(isPrivateAddress('::ffff:a9fe:a9fe'), true);
    assert.equal(isPrivateAddress('64:ff9b::808:808'), false);
    assert.equal(isPrivateAddress('8.8.8.8'), false);
    assert.equal(isPrivateAddress('2001:4860:4860::8888'), false);
  });

  it('throws on a malformed rule', () => {
    assert.throws(() => compileUrlRule({ schemes: 'https' }), /schemes: expected a non-empty list/);
    assert.throws(() => compileUrlRule({ deny: true }), /unknown key "deny"/);
  });

  it('is enforced by the request-side ajv only', () => {
    const schema = { type: 'string', format: 'uri', 'x-portcullis-url': { schemes: ['https'] } };
    const request = createAjv('2020-12', 'request').compile(schema);
    const response = createAjv('2020-12', 'response').compile(schema);
    assert.equal(request('https://127.0.0.1/'), false);
    assert.equal(request('https://example.com/'), true);
    assert.equal(response('https://127.0.0.1/'), true, 'a response keeps the annotation only');
  });
});

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const CALLBACK = {
  type: 'string',
  format: 'uri',
  'x-portcullis-url': { schemes: ['https'], deny_private: true },
};
const DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'url rules', version: '1' },
  components: {
    schemas: {
      Webhook: {
        type: 'object',
        additionalProperties: false,
        required: ['callback'],
        properties: {
          callback: CALLBACK,
          mirrors: { type: 'array', items: CALLBACK },
          avatar: {
            type: 'string',
            format: 'uri',
            'x-portcullis-url': { allow_hosts: ['img.example.com'] },
          },
        },
      },
    },
  },
  paths: {
    '/webhooks': {
      post: {
        operationId: 'createWebhook',
        security: [],
        parameters: [{ name: 'probe', in: 'query', schema: CALLBACK }],
        requestBody: { required: true, ...json({ $ref: '#/components/schemas/Webhook' }) },
        responses: { '201': { description: 'created' } },
      },
    },
  },
};

describe('URL rules through a real gateway', () => {
  let dir: string;
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'url-rule-'));
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(DOCUMENT));
    upstream = await startUpstream((_req, res) => {
      res.writeHead(201).end();
      return true;
    });
    gw = await startTestGateway({
      api: { document: file, upstream: 'api' },
      upstreams: { api: { url: upstream.url } },
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (body: unknown, query = '') => {
    const before = upstream.requests.length;
    const r = await send(gw.url, `/webhooks${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { ...r, reached: upstream.requests.length > before };
  };

  const assertRefused = async (body: unknown, location: string, secret: string, query = '') => {
    const r = await post(body, query);
    assert.equal(r.status, 400, r.body);
    assert.match(String(r.headers['content-type']), /application\/problem\+json/);
    const problem = r.json<{ code: string; errors: { location: string; rule: string }[] }>();
    assert.equal(problem.code, 'input.invalid');
    assert.deepEqual(
      problem.errors.filter((e) => e.rule === 'x-portcullis-url').map((e) => e.location),
      [location],
    );
    assert.ok(!r.body.includes(secret), 'the refused value is echoed');
    assert.equal(r.reached, false, 'the refused request reached the upstream');
  };

  it('refuses the metadata address in a body field, naming the field and the rule', async () => {
    await assertRefused(
      { callback: 'https://169.254.169.254/latest/meta-data/' },
      '/body/callback',
      '169.254',
    );
  });

  it('refuses each bypass spelling in a body field', async () => {
    for (const url of BYPASSES) {
      const r = await post({ callback: url });
      assert.equal(r.status, 400, `${url}: ${r.body}`);
      assert.equal(r.reached, false, url);
    }
  });

  it('refuses a private address in any item of an array', async () => {
    await assertRefused(
      { callback: 'https://example.com/', mirrors: ['https://example.org/', 'https://0x7f.1/'] },
      '/body/mirrors/1',
      '0x7f',
    );
  });

  it('refuses a host outside allow_hosts and the userinfo trick', async () => {
    await assertRefused(
      { callback: 'https://example.com/', avatar: 'https://evil.example/' },
      '/body/avatar',
      'evil',
    );
    await assertRefused(
      { callback: 'https://example.com/', avatar: 'https://img.example.com@evil.example/' },
      '/body/avatar',
      'evil',
    );
  });

  it('refuses a private address in a query parameter', async () => {
    await assertRefused(
      { callback: 'https://example.com/' },
      '/query/probe',
      '2130706433',
      `?probe=${encodeURIComponent('https://2130706433/')}`,
    );
  });

  it('lets legitimate public https URLs through to the upstream', async () => {
    const body = {
      callback: 'https://hooks.example.com/cb?id=1',
      mirrors: ['https://example.org/'],
      avatar: 'https://img.example.com/a.png',
    };
    const r = await post(body, `?probe=${encodeURIComponent('https://example.com/')}`);
    assert.equal(r.status, 201, r.body);
    assert.equal(r.reached, true);
    assert.deepEqual(JSON.parse(upstream.requests.at(-1)!.body.toString()), body);
  });
});

describe('URL rules in the API document are checked when it loads', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'url-rule-doc-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const load = async (schema: Record<string, unknown>) => {
    const doc = structuredClone(DOCUMENT);
    (doc.components.schemas.Webhook.properties as Record<string, unknown>).avatar = schema;
    const file = join(dir, `doc-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(doc));
    try {
      await loadApiDocument(file);
    } catch (err) {
      assert.ok(err instanceof ApiDocumentError, String(err));
      return err.issues;
    }
    return [];
  };
  const at = '/components/schemas/Webhook/properties/avatar/x-portcullis-url';

  for (const [what, value, message] of [
    ['a list', ['https'], /expected a mapping/],
    ['a misspelt key', { deny_privat: true }, /unknown key "deny_privat"/],
    ['a scheme string', { schemes: 'https' }, /schemes: expected a non-empty list/],
    ['an upper-case scheme', { schemes: ['HTTPS'] }, /schemes: expected/],
    ['an empty scheme list', { schemes: [] }, /schemes: expected/],
    ['deny_private as text', { deny_private: 'yes' }, /deny_private: expected true or false/],
    ['a host with a scheme', { allow_hosts: ['https://example.com'] }, /allow_hosts: expected/],
    ['a host with a port', { allow_hosts: ['example.com:443'] }, /allow_hosts: expected/],
  ] as const) {
    it(`refuses ${what}, naming the JSON pointer`, async () => {
      const issues = await load({ type: 'string', format: 'uri', 'x-portcullis-url': value });
      assert.equal(issues.length, 1, JSON.stringify(issues));
      assert.equal(issues[0]!.pointer, at);
      assert.match(issues[0]!.message, message);
    });
  }

  it('refuses the rule on a schema that is not a string', async () => {
    const issues = await load({ type: 'object', 'x-portcullis-url': {} });
    assert.match(issues[0]!.message, /applies to strings/);
  });

  it('refuses a misspelt extension name', async () => {
    const issues = await load({ type: 'string', 'x-portcullis-uri': {} });
    assert.match(issues[0]!.message, /unknown extension: x-portcullis-uri/);
  });

  it('loads well-formed rules', async () => {
    assert.deepEqual(
      await load({
        type: 'string',
        format: 'uri',
        'x-portcullis-url': {
          schemes: ['https', 'http'],
          deny_private: false,
          allow_hosts: ['*.example.com'],
        },
      }),
      [],
    );
  });
});

describe('URL rules in a route’s inline request schema', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  const inline = (rule: unknown) => ({
    path: '/hooks',
    methods: ['POST'],
    upstream: 'api',
    auth: 'none',
    validation: {
      request_schema: {
        body: {
          type: 'object',
          properties: { url: { type: 'string', format: 'uri', 'x-portcullis-url': rule } },
        },
      },
    },
  });

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(204).end();
      return true;
    });
    gw = await startTestGateway({
      upstreams: { api: { url: upstream.url } },
      routes: [inline({ schemes: ['https'], deny_private: true })],
    });
  });

  after(async () => {
    await gw.close();
    await upstream.close();
  });

  const post = (url: string) =>
    send(gw.url, '/hooks', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url }),
    });

  it('refuses the metadata address and lets a public URL through', async () => {
    const refused = await post('https://[::ffff:169.254.169.254]/');
    assert.equal(refused.status, 400, refused.body);
    assert.deepEqual(refused.json<{ errors: unknown[] }>().errors, [
      { location: '/body/url', rule: 'x-portcullis-url' },
    ]);
    assert.equal((await post('https://hooks.example.com/x')).status, 204);
  });

  it('refuses a malformed rule when the config loads', async () => {
    await assert.rejects(
      startTestGateway({
        upstreams: { api: { url: upstream.url } },
        routes: [inline({ schemes: 'https' })],
      }),
      /x-portcullis-url: schemes: expected a non-empty list/,
    );
  });
});
