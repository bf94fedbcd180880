import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import {
  AllowInsecureSchema,
  compileTls,
  HttpRedirectSchema,
  ListenTlsSchema,
  type RawTlsInput,
  RouteMtlsSchema,
  UpstreamTlsSchema,
} from './schema.js';

// The fragments placed as the config schema places them, validated the way
// the loader validates (defaults applied, unknown keys refused).
const Wrapper = Type.Object(
  {
    mode: Type.Union([Type.Literal('development'), Type.Literal('production')], { default: 'development' }),
    listen: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1' }),
        port: Type.Integer({ default: 8443 }),
        tls: Type.Optional(ListenTlsSchema),
        http_redirect: Type.Optional(HttpRedirectSchema),
      },
      { additionalProperties: false, default: {} },
    ),
    allow_insecure: Type.Optional(AllowInsecureSchema),
    upstreams: Type.Record(
      Type.String(),
      Type.Object(
        { url: Type.String(), tls: Type.Optional(UpstreamTlsSchema) },
        { additionalProperties: false },
      ),
      { default: {} },
    ),
    routes: Type.Array(
      Type.Object({ mtls: Type.Optional(RouteMtlsSchema) }, { additionalProperties: false }),
      {
        default: [],
      },
    ),
  },
  { additionalProperties: false },
);
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
const validate = ajv.compile(Wrapper);

function compile(raw: Record<string, unknown>) {
  const copy = structuredClone(raw);
  if (!validate(copy)) throw new Error(ajv.errorsText(validate.errors));
  return compileTls(copy as unknown as RawTlsInput, { baseDir: '/etc/portcullis' });
}

const certs = [{ cert: 'tls/api.crt', key: 'tls/api.key' }];
const paths = (issues: { path: (string | number)[] }[]) => issues.map((i) => i.path.join('.'));

describe('the TLS config', () => {
  it('compiles a minimal HTTPS listener with safe defaults and paths from the config folder', () => {
    const { settings, issues, warnings } = compile({ listen: { tls: { certificates: certs } } });
    assert.deepEqual(issues, []);
    assert.deepEqual(warnings, []);
    const l = settings.listener!;
    assert.equal(l.profile, 'intermediate');
    assert.deepEqual(l.certificates, [
      {
        cert: '/etc/portcullis/tls/api.crt',
        key: '/etc/portcullis/tls/api.key',
        passphrase: undefined,
        names: undefined,
      },
    ]);
    assert.deepEqual(l.hsts, { maxAgeSeconds: 31_536_000, includeSubdomains: true, preload: false });
    assert.equal(l.handshakeTimeoutMs, 10_000);
    assert.equal(l.sessionTickets, true);
    assert.equal(l.ticketKeyRotationMs, 3_600_000);
    assert.equal(l.clientAuth.request, false);
    assert.equal(l.selfSigned, 'allow');
    assert.ok(Object.isFrozen(settings) && Object.isFrozen(l.certificates[0]));
  });

  it('refuses a passphrase written in the file, and accepts a reference', () => {
    assert.throws(
      () => compile({ listen: { tls: { certificates: [{ ...certs[0], passphrase: 'hunter2' }] } } }),
      /listen\/tls\/certificates\/0\/passphrase must match pattern/,
    );
    assert.doesNotThrow(() =>
      compile({ listen: { tls: { certificates: [{ ...certs[0], passphrase: '${env:TLS_KEY_PASS}' }] } } }),
    );
  });

  it('refuses unknown keys and malformed pins', () => {
    assert.throws(
      () => compile({ listen: { tls: { certificates: certs, ciphers: 'ALL' } } }),
      /listen\/tls must NOT have additional properties/,
    );
    assert.throws(
      () => compile({ upstreams: { a: { url: 'https://a', tls: { pin_sha256: ['abc'] } } } }),
      /upstreams\/a\/tls\/pin_sha256\/0 must match pattern/,
    );
  });

  describe('production', () => {
    it('refuses to start without TLS', () => {
      const { issues } = compile({ mode: 'production' });
      assert.deepEqual(paths(issues), ['listen.tls']);
    });

    it('accepts TLS turned off only when the config says so, with a warning', () => {
      const { issues, warnings, settings } = compile({
        mode: 'production',
        allow_insecure: { tls_disabled: true },
      });
      assert.deepEqual(issues, []);
      assert.deepEqual(paths(warnings), ['allow_insecure.tls_disabled']);
      assert.equal(settings.listener, undefined);
    });

    it('refuses self-signed certificates unless allowed, and warns when allowed', () => {
      assert.equal(
        compile({ mode: 'production', listen: { tls: { certificates: certs } } }).settings.listener!
          .selfSigned,
        'refuse',
      );
      const allowed = compile({
        mode: 'production',
        listen: { tls: { certificates: certs } },
        allow_insecure: { self_signed: true },
      });
      assert.equal(allowed.settings.listener!.selfSigned, 'warn');
      assert.deepEqual(paths(allowed.warnings), ['allow_insecure.self_signed']);
    });
  });

  it('warns in development when plain HTTP listens beyond loopback', () => {
    assert.deepEqual(paths(compile({ listen: { host: '0.0.0.0' } }).warnings), ['listen.host']);
    assert.deepEqual(compile({ listen: { host: '127.0.0.1' } }).warnings, []);
  });

  it('refuses a preload HSTS policy that preload lists would reject', () => {
    const { issues } = compile({
      listen: { tls: { certificates: certs, hsts: { preload: true, max_age: '30d' } } },
    });
    assert.deepEqual(paths(issues), ['listen.tls.hsts.preload']);
    assert.equal(
      compile({ listen: { tls: { certificates: certs, hsts: { enabled: false } } } }).settings.listener!.hsts,
      undefined,
    );
  });

  describe('client certificates', () => {
    it('needs a CA for client_auth', () => {
      const { issues } = compile({
        listen: { tls: { certificates: certs, client_auth: { mode: 'required' } } },
      });
      assert.deepEqual(paths(issues), ['listen.tls.client_auth']);
    });

    it('makes the listener ask for certificates when only a route needs them, trusting the route CA', () => {
      const { settings, issues } = compile({
        listen: { tls: { certificates: certs } },
        routes: [{}, { mtls: { mode: 'required', ca: ['partners.pem'] } }],
      });
      assert.deepEqual(issues, []);
      assert.deepEqual(settings.listener!.clientAuth, {
        mode: 'off',
        request: true,
        caFiles: ['/etc/portcullis/partners.pem'],
        principal: 'fingerprint',
        tokenBinding: 'if_present',
      });
      assert.deepEqual(settings.routes, [
        undefined,
        { mode: 'required', caFiles: ['/etc/portcullis/partners.pem'] },
      ]);
    });

    it('refuses a route with mtls and no CA anywhere, or without TLS', () => {
      assert.deepEqual(
        paths(compile({ listen: { tls: { certificates: certs } }, routes: [{ mtls: 'required' }] }).issues),
        ['routes.0.mtls'],
      );
      assert.deepEqual(paths(compile({ routes: [{ mtls: 'optional' }] }).issues), ['routes.0.mtls']);
    });
  });

  describe('the redirect listener', () => {
    it('redirects to the HTTPS port by default', () => {
      const { settings } = compile({
        listen: { port: 8443, tls: { certificates: certs }, http_redirect: { port: 8080 } },
      });
      assert.deepEqual(settings.redirect, {
        host: '127.0.0.1',
        port: 8080,
        httpsPort: 8443,
        canonicalHost: undefined,
      });
    });

    it('needs HTTPS, and a port of its own', () => {
      assert.deepEqual(paths(compile({ listen: { http_redirect: { port: 8080 } } }).issues), [
        'listen.http_redirect',
      ]);
      assert.deepEqual(
        paths(
          compile({ listen: { port: 8443, tls: { certificates: certs }, http_redirect: { port: 8443 } } })
            .issues,
        ),
        ['listen.http_redirect.port'],
      );
    });
  });

  describe('upstreams', () => {
    it('verifies every https upstream by default, with no settings at all', () => {
      const { settings } = compile({
        upstreams: { a: { url: 'https://a.internal' }, b: { url: 'http://127.0.0.1:3000' } },
      });
      assert.deepEqual(Object.keys(settings.upstreams), ['a']);
      assert.equal(settings.upstreams.a!.verify, true);
    });

    it('refuses tls on an http upstream, pins without verification, and a certificate without its key', () => {
      const { issues } = compile({
        upstreams: {
          plain: { url: 'http://a', tls: { verify: true } },
          pinned: { url: 'https://b', tls: { verify: false, pin_sha256: [`${'A'.repeat(43)}=`] } },
          half: { url: 'https://c', tls: { client_cert: 'c.pem' } },
        },
      });
      assert.deepEqual(paths(issues), [
        'upstreams.plain.tls',
        'upstreams.pinned.tls.pin_sha256',
        'upstreams.half.tls',
      ]);
    });
  });
});
