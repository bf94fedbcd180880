/**
 * Field rules by role (x-portcullis-read / x-portcullis-write, OWASP
 * API3:2023), from outside: a real gateway loaded from a small API document,
 * in front of a recording upstream, with HS256 tokens carrying roles and
 * scopes. Properties the caller may not write are refused (400, the
 * location named, never the value) before anything reaches the upstream;
 * properties it may not read never leave the gateway.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import {
  startTestGateway,
  startUpstream,
  type TestGateway,
  type TestUpstream,
} from '../test-support/gateway.js';
import { send } from '../test-support/http.js';
import { ApiDocumentError, loadApiDocument } from './document.js';

const SECRET = 'field-rules-test-secret-of-32-bytes!!';
const JSON_TYPE = { 'content-type': 'application/json' };

const token = (roles: string[], scope = '') =>
  new SignJWT({ scope, roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('urn:field-rules')
    .setAudience('api')
    .setSubject('7')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

const bearer = [{ bearer: [] }];
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });

/** An account with restricted properties at the top, in a $ref'd nested object, and in an array of objects. */
const DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'field rules', version: '1' },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Account: {
        type: 'object',
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          role: { type: 'string', enum: ['user', 'admin'], 'x-portcullis-write': ['admin'] },
          score: { type: 'integer', 'x-portcullis-read': ['admin'] },
          profile: { $ref: '#/components/schemas/Profile' },
          members: { type: 'array', items: { $ref: '#/components/schemas/Member' } },
          plan: { $ref: '#/components/schemas/Plan' },
        },
      },
      Profile: {
        type: 'object',
        additionalProperties: false,
        properties: {
          bio: { type: 'string' },
          // A scope lets through as well as a role: any of the list.
          verified: { type: 'boolean', 'x-portcullis-write': ['admin', 'accounts:verify'] },
          ssn: { type: 'string', 'x-portcullis-read': ['admin'] },
        },
      },
      Member: {
        type: 'object',
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          permissions: { type: 'array', items: { type: 'string' }, 'x-portcullis-write': ['admin'] },
          email: { type: 'string', 'x-portcullis-read': ['admin', 'members:read'] },
        },
      },
      // The rule on the schema a property $refs.
      Plan: { type: 'string', enum: ['free', 'pro'], 'x-portcullis-write': ['billing'] },
      // allOf: the second part adds a property only auditors read.
      AuditedAccount: {
        allOf: [
          { $ref: '#/components/schemas/Account' },
          {
            type: 'object',
            properties: { audit_log: { type: 'string', 'x-portcullis-read': ['auditor'] } },
          },
        ],
      },
    },
  },
  paths: {
    '/accounts': {
      post: {
        operationId: 'createAccount',
        security: bearer,
        requestBody: { required: true, ...json({ $ref: '#/components/schemas/Account' }) },
        responses: { '201': { description: 'created' } },
      },
    },
    '/accounts/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      get: {
        operationId: 'getAccount',
        security: bearer,
        responses: {
          '200': { description: 'one', ...json({ $ref: '#/components/schemas/AuditedAccount' }) },
        },
      },
    },
    '/strict/accounts/{id}': {
      'x-portcullis-responses': { mode: 'block' },
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      get: {
        operationId: 'getAccountStrict',
        security: bearer,
        responses: { '200': { description: 'one', ...json({ $ref: '#/components/schemas/Account' }) } },
      },
    },
    '/public/accounts/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      get: {
        operationId: 'getPublicAccount',
        security: [],
        responses: { '200': { description: 'one', ...json({ $ref: '#/components/schemas/Account' }) } },
      },
    },
    '/public/signup': {
      post: {
        operationId: 'signup',
        security: [],
        requestBody: { required: true, ...json({ $ref: '#/components/schemas/Account' }) },
        responses: { '201': { description: 'created' } },
      },
    },
  },
};

/** What the upstream answers on GET: every restricted property, filled in. */
const STORED = {
  name: 'acme',
  role: 'user',
  score: 42,
  profile: { bio: 'hi', verified: true, ssn: '078-05-1120' },
  members: [
    { name: 'a', permissions: ['read'], email: 'a@example.com' },
    { name: 'b', permissions: [], email: 'b@example.com' },
  ],
  plan: 'pro',
  audit_log: 'created by root',
};

describe('field rules by role through a real gateway', () => {
  let dir: string;
  let upstream: TestUpstream;
  let gw: TestGateway;
  const tokens = new Map<string, string>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'field-rules-'));
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(DOCUMENT));
    process.env.PC_FIELD_RULES_SECRET = SECRET;
    upstream = await startUpstream((req, res) => {
      if (req.method !== 'GET') {
        res.writeHead(201).end();
        return true;
      }
      const { audit_log: _, ...account } = STORED;
      res.writeHead(200, JSON_TYPE).end(JSON.stringify(req.url?.startsWith('/strict/') ? account : STORED));
      return true;
    });
    gw = await startTestGateway({
      auth: {
        jwt: {
          providers: [
            {
              name: 't',
              issuer: 'urn:field-rules',
              audience: ['api'],
              algorithms: ['HS256'],
              hmac_secret: '${env:PC_FIELD_RULES_SECRET}',
              roles_claim: 'roles',
            },
          ],
        },
      },
      api: { document: file, upstream: 'api' },
      upstreams: { api: { url: upstream.url } },
    });
    tokens.set('user', await token(['user']));
    tokens.set('admin', await token(['admin']));
    tokens.set('verifier', await token(['user'], 'accounts:verify members:read'));
    tokens.set('auditor', await token(['auditor']));
  });

  after(async () => {
    await gw.close();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (path: string, who: string | undefined, body: unknown) => {
    const before = upstream.requests.length;
    const r = await send(gw.url, path, {
      method: 'POST',
      headers: { ...JSON_TYPE, ...(who ? { authorization: `Bearer ${tokens.get(who)}` } : {}) },
      body: JSON.stringify(body),
    });
    return { ...r, reached: upstream.requests.length > before };
  };
  const get = async (path: string, who?: string) => {
    const r = await send(gw.url, path, {
      headers: who ? { authorization: `Bearer ${tokens.get(who)}` } : {},
    });
    assert.equal(r.status, 200, r.body);
    return r.json<typeof STORED>();
  };

  /** A 400 input.invalid naming exactly `locations`, without the values sent. */
  const assertRefused = (r: Awaited<ReturnType<typeof post>>, locations: string[], values: string[] = []) => {
    assert.equal(r.status, 400, r.body);
    assert.match(String(r.headers['content-type']), /application\/problem\+json/);
    const problem = r.json<{ code: string; errors: { location: string; rule: string }[] }>();
    assert.equal(problem.code, 'input.invalid');
    const found = problem.errors.filter((e) => e.rule === 'x-portcullis-write').map((e) => e.location);
    assert.deepEqual(found.sort(), [...locations].sort());
    for (const v of values) assert.ok(!r.body.includes(v), `the value ${v} is in the answer`);
    assert.equal(r.reached, false, 'the refused request reached the upstream');
  };

  it('refuses a top-level property the caller may not write, naming it and not its value', async () => {
    assertRefused(
      await post('/accounts', 'user', { name: 'acme', role: 'admin' }),
      ['/body/role'],
      ['admin'],
    );
  });

  it('lets a caller with a listed role write it, and the upstream gets the bytes', async () => {
    const body = { name: 'acme', role: 'admin' };
    const r = await post('/accounts', 'admin', body);
    assert.equal(r.status, 201, r.body);
    assert.equal(r.reached, true);
    assert.deepEqual(JSON.parse(upstream.requests.at(-1)!.body.toString()), body);
  });

  it('lets a request without restricted properties through for anyone', async () => {
    const r = await post('/accounts', 'user', {
      name: 'acme',
      profile: { bio: 'x' },
      members: [{ name: 'a' }],
    });
    assert.equal(r.status, 201, r.body);
  });

  it('refuses a restricted property in a $ref’d nested object; a listed scope may write it', async () => {
    assertRefused(await post('/accounts', 'user', { profile: { verified: true } }), [
      '/body/profile/verified',
    ]);
    const r = await post('/accounts', 'verifier', { profile: { verified: true } });
    assert.equal(r.status, 201, r.body);
  });

  it('refuses a restricted property in any item of an array of objects', async () => {
    assertRefused(
      await post('/accounts', 'user', {
        members: [{ name: 'a' }, { name: 'b', permissions: ['owner'] }, { name: 'c', permissions: [] }],
      }),
      ['/body/members/1/permissions', '/body/members/2/permissions'],
      ['owner'],
    );
    assert.equal((await post('/accounts', 'admin', { members: [{ permissions: ['owner'] }] })).status, 201);
  });

  it('applies a rule on the schema a property $refs', async () => {
    assertRefused(await post('/accounts', 'admin', { plan: 'pro' }), ['/body/plan']);
  });

  it('refuses every restricted property on a public route: no principal, no write', async () => {
    assertRefused(await post('/public/signup', undefined, { name: 'x', role: 'user' }), ['/body/role']);
    assert.equal((await post('/public/signup', undefined, { name: 'x' })).status, 201);
  });

  it('removes what the caller may not read: top level, nested, array items, allOf parts', async () => {
    const seen = await get('/accounts/1', 'user');
    assert.deepEqual(seen, {
      name: 'acme',
      role: 'user',
      profile: { bio: 'hi', verified: true },
      members: [
        { name: 'a', permissions: ['read'] },
        { name: 'b', permissions: [] },
      ],
      plan: 'pro',
    });
  });

  it('keeps what a listed role or scope may read', async () => {
    const admin = await get('/accounts/1', 'admin');
    assert.equal(admin.score, 42);
    assert.equal(admin.profile.ssn, '078-05-1120');
    assert.equal(admin.members[1]!.email, 'b@example.com');
    assert.equal(admin.audit_log, undefined, 'the admin is no auditor');
    const verifier = await get('/accounts/1', 'verifier');
    assert.equal(verifier.members[0]!.email, 'a@example.com');
    assert.equal(verifier.score, undefined);
    assert.equal((await get('/accounts/1', 'auditor')).audit_log, 'created by root');
  });

  it('hides restricted properties in block mode too, without refusing the response', async () => {
    const seen = await get('/strict/accounts/1', 'user');
    assert.equal(seen.score, undefined);
    assert.equal(seen.profile.ssn, undefined);
    assert.equal((await get('/strict/accounts/1', 'admin')).score, 42);
  });

  it('shows no restricted property on a public route', async () => {
    const seen = await get('/public/accounts/1');
    assert.equal(seen.score, undefined);
    assert.equal(seen.profile.ssn, undefined);
    assert.ok(seen.members.every((m) => !('email' in m)));
  });
});

describe('field rules in the API document are checked when it loads', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'field-rules-doc-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const load = async (rule: Record<string, unknown>) => {
    const doc = structuredClone(DOCUMENT) as typeof DOCUMENT;
    Object.assign(doc.components.schemas.Profile.properties.bio, rule);
    const file = join(dir, `doc-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(doc));
    try {
      await loadApiDocument(file);
    } catch (err) {
      assert.ok(err instanceof ApiDocumentError, String(err));
      return { file, issues: err.issues };
    }
    return { file, issues: [] };
  };

  for (const [what, rule, message] of [
    ['a string', { 'x-portcullis-write': 'admin' }, /expected a non-empty list of role or scope names/],
    ['a number in the list', { 'x-portcullis-read': ['admin', 1] }, /expected a non-empty list/],
    ['an empty name', { 'x-portcullis-read': [''] }, /expected a non-empty list/],
    ['an empty list', { 'x-portcullis-write': [] }, /use readOnly \/ writeOnly/],
    ['a mapping', { 'x-portcullis-read': { roles: ['admin'] } }, /expected a non-empty list/],
    ['a misspelt rule', { 'x-portcullis-reed': ['admin'] }, /unknown extension: x-portcullis-reed/],
  ] as const) {
    it(`refuses ${what}, naming the file and the JSON pointer`, async () => {
      const { file, issues } = await load(rule);
      const key = Object.keys(rule)[0]!;
      assert.equal(issues.length, 1, JSON.stringify(issues));
      assert.equal(issues[0]!.file, file);
      assert.equal(issues[0]!.pointer, `/components/schemas/Profile/properties/bio/${key}`);
      assert.match(issues[0]!.message, message);
    });
  }

  it('loads well-formed rules', async () => {
    assert.deepEqual((await load({ 'x-portcullis-read': ['admin', 'users:read'] })).issues, []);
  });
});
