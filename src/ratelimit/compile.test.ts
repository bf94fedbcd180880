import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRate } from './compile.js';
import { compileForTest, schemaAccepts } from './test-support/config.js';

describe('the limit language', () => {
  it('parses rates as COUNT/PERIOD', () => {
    assert.deepEqual(parseRate('10/s'), { count: 10, periodMs: 1000 });
    assert.deepEqual(parseRate('1000/h'), { count: 1000, periodMs: 3_600_000 });
    assert.deepEqual(parseRate('100/10s'), { count: 100, periodMs: 10_000 });
    assert.deepEqual(parseRate('5/500ms'), { count: 5, periodMs: 500 });
    assert.equal(schemaAccepts({ limits: { a: { key: [], rate: '0/s' } } }), false);
    assert.equal(schemaAccepts({ limits: { a: { key: [], rate: '10 per second' } } }), false);
  });

  it('compiles names, defaults and routes: burst defaults to the count, all_routes entries apply everywhere', () => {
    const { settings, routes, issues } = compileForTest(
      {
        limits: {
          per_ip: { key: ['ip'], rate: '10/s', burst: 20, all_routes: true },
          per_principal: { key: ['principal', 'route'], rate: '1000/h' },
        },
        quotas: { daily: { key: ['api_key'], limit: 10000, period: 'day' } },
        concurrency: { per_principal_inflight: { key: ['principal'], max: 10 } },
        global_concurrency: 500,
        load_shedding: { max_event_loop_delay: '150ms' },
      },
      {
        export: {
          rate_limits: ['per_principal', 'daily', { key: ['principal'], rate: '20/h', mode: 'shadow' }],
          cost: 10,
        },
        health: {},
      },
    );
    assert.deepEqual(issues, []);
    assert.equal(settings.backend, 'memory');
    assert.equal(settings.ipv6Prefix, 64);
    assert.equal(settings.maxKeys, 100000);
    assert.equal(settings.limits.per_principal!.burst, 1000);
    assert.deepEqual(settings.limits.per_principal!.key, [{ kind: 'principal' }, { kind: 'route' }]);
    assert.equal(settings.globalConcurrency, 500);
    assert.deepEqual(settings.loadShedding, { maxEventLoopDelayMs: 150 });
    const exp = routes.export!;
    assert.equal(exp.cost, 10);
    assert.deepEqual(
      exp.limits.map((l) => [l.name, l.mode]),
      [
        ['per_ip', 'enforce'],
        ['per_principal', 'enforce'],
        ['export#2', 'shadow'],
      ],
    );
    assert.deepEqual(
      exp.quotas.map((q) => q.name),
      ['daily'],
    );
    assert.deepEqual(
      routes.health!.limits.map((l) => l.name),
      ['per_ip'],
    );
  });

  it('gives nothing to a route when no entry applies to it', () => {
    const { routes } = compileForTest({ limits: { a: { key: ['ip'], rate: '1/s' } } }, { r: {} });
    assert.equal(routes.r, undefined);
  });

  it('applies the section mode to entries that do not set their own', () => {
    const { settings } = compileForTest({
      mode: 'shadow',
      limits: { a: { key: [], rate: '1/s' }, b: { key: [], rate: '1/s', mode: 'enforce' } },
    });
    assert.equal(settings.limits.a!.mode, 'shadow');
    assert.equal(settings.limits.b!.mode, 'enforce');
  });

  it('refuses an unknown name, naming the ones that exist', () => {
    const { issues } = compileForTest(
      { limits: { per_ip: { key: ['ip'], rate: '1/s' } } },
      { r: { rate_limits: ['per_pi'] } },
    );
    assert.deepEqual(issues, ['r.rate_limits.0: expected one of per_ip, got "per_pi"']);
  });

  it('refuses a cost that no bucket could ever hold', () => {
    const { issues } = compileForTest(
      {
        limits: { small: { key: ['ip'], rate: '5/s' } },
        quotas: { tiny: { key: ['ip'], limit: 3, period: 'day' } },
      },
      { r: { rate_limits: ['small', 'tiny'], cost: 10 } },
    );
    assert.equal(issues.length, 2);
    assert.match(issues[0]!, /r\.cost: .*burst of small \(5\)/);
    assert.match(issues[1]!, /r\.cost: .*quota tiny \(3\)/);
  });

  it('refuses one name used for two entries, a redis backend without redis, and a password in the URL', () => {
    const { issues } = compileForTest({
      backend: 'redis',
      limits: { same: { key: [], rate: '1/s' } },
      quotas: { same: { key: [], limit: 1, period: 'day' } },
    });
    assert.deepEqual(issues.sort(), [
      'rate_limit.backend: expected a redis section: backend redis needs redis.url',
      'rate_limit.quotas.same: expected a name not used elsewhere: "same" is also in limits',
    ]);
    const secret = compileForTest({ backend: 'redis', redis: { url: 'redis://:hunter2@127.0.0.1:6379' } });
    assert.match(secret.issues[0]!, /rate_limit\.redis\.url: expected the password by reference/);
    const ok = compileForTest({
      backend: 'redis',
      redis: { url: '${env:REDIS_URL}', on_failure: 'fail-open' },
    });
    assert.deepEqual(ok.issues, []);
    assert.equal(ok.settings.redis!.onFailure, 'fail-open');
    assert.equal(ok.settings.redis!.timeoutMs, 100);
  });

  it('refuses unknown key parts and keys', () => {
    assert.equal(schemaAccepts({ limits: { a: { key: ['user'], rate: '1/s' } } }), false);
    assert.equal(
      schemaAccepts({ limits: { a: { key: ['header:x-tenant', 'claim:org.id'], rate: '1/s' } } }),
      true,
    );
    assert.equal(schemaAccepts({ limits: { a: { key: [], rate: '1/s', window: '1m' } } }), false);
  });
});
