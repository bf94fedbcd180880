import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { AuditSchema, checkAudit, compileAudit, type RawAudit } from './schema.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
// As the config loader sees it: a section of the config (a default is not allowed on a root schema).
const validateSection = ajv.compile<{ audit: RawAudit }>(
  Type.Object({ audit: AuditSchema }, { additionalProperties: false }),
);
const validate = (raw: unknown): boolean => validateSection({ audit: raw });

function valid(raw: unknown): RawAudit {
  const doc = { audit: raw };
  assert.ok(validateSection(doc), JSON.stringify(validateSection.errors));
  return doc.audit as RawAudit;
}

const ed25519Pem = () =>
  generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const context = { mode: 'development' as const, routeNames: ['orders-read', 'GET /health'] };

describe('the audit config', () => {
  it('defaults to on, everything sampled, 200 ms batches of 128, a 50 000-event queue that drops, kept 90 days', () => {
    const fromSchema = compileAudit(valid({}));
    assert.deepEqual(fromSchema, compileAudit(undefined));
    assert.deepEqual(fromSchema, {
      enabled: true,
      sampleSuccess: 1,
      sampleRoutes: {},
      flushIntervalMs: 200,
      batchSize: 128,
      maxQueue: 50_000,
      overflow: 'drop',
      checkpointEvery: 1000,
      checkpointIntervalMs: 60_000,
      signingKey: undefined,
      redactFields: [],
      shutdownTimeoutMs: 10_000,
      jsonl: undefined,
      retention: { maxAgeMs: 90 * 86_400_000, maxEvents: undefined, checkIntervalMs: 600_000 },
      aggregate: { perSourcePerInterval: 50, intervalMs: 10_000, maxSources: 10_000 },
    });
  });

  it('compiles durations, per-route sampling, the JSON lines target and retention', () => {
    const settings = compileAudit(
      valid({
        sample_success: 0.1,
        sample_routes: { 'orders-read': 0.5 },
        flush_interval: '1s',
        overflow: 'block',
        checkpoint_interval: '30s',
        jsonl: { path: '-' },
        retention: { max_age: '90d', max_events: 10_000_000 },
      }),
    );
    assert.equal(settings.sampleSuccess, 0.1);
    assert.deepEqual(settings.sampleRoutes, { 'orders-read': 0.5 });
    assert.equal(settings.flushIntervalMs, 1000);
    assert.equal(settings.overflow, 'block');
    assert.equal(settings.checkpointIntervalMs, 30_000);
    assert.deepEqual(settings.jsonl, { path: '-' });
    assert.deepEqual(settings.retention, {
      maxAgeMs: 90 * 86_400_000,
      maxEvents: 10_000_000,
      checkIntervalMs: 600_000,
    });
  });

  it('keeps events forever only when told to', () => {
    const settings = compileAudit(valid({ retention: { max_age: 'forever' } }));
    assert.equal(settings.retention.maxAgeMs, undefined);
    assert.equal(validate({ retention: { max_age: 'always' } }), false);
  });

  it('refuses unknown keys, a sampling rate above 1, an unknown overflow policy and a literal signing key', () => {
    assert.equal(validate({ sampling: 1 }), false);
    assert.equal(validate({ sample_success: 1.5 }), false);
    assert.equal(validate({ overflow: 'wait' }), false);
    assert.equal(validate({ signing_key: '-----BEGIN PRIVATE KEY-----' }), false);
    assert.equal(validate({ signing_key: '${file:audit.pem}' }), true);
    assert.equal(validate({ retention: { max_age: '90 days' } }), false);
  });

  it('describes every field, for the config reference', () => {
    const undocumented: string[] = [];
    const walk = (schema: Record<string, unknown>, path: string) => {
      if (typeof schema.description !== 'string') undocumented.push(path);
      for (const [key, child] of Object.entries(
        (schema.properties as Record<string, Record<string, unknown>>) ?? {},
      )) {
        walk(child, `${path}.${key}`);
      }
    };
    walk(AuditSchema as unknown as Record<string, unknown>, 'audit');
    assert.deepEqual(undocumented, []);
  });

  it('accepts an Ed25519 signing key and refuses any other kind, naming the field', () => {
    assert.deepEqual(checkAudit({ signing_key: ed25519Pem() }, context).issues, []);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    const [issue] = checkAudit({ signing_key: rsa }, context).issues;
    assert.deepEqual(issue?.path, ['signing_key']);
    assert.match(issue?.message ?? '', /Ed25519/);
    assert.match(
      checkAudit({ signing_key: 'not a key' }, context).issues[0]?.message ?? '',
      /not a PEM private key/,
    );
  });

  it('requires the signing key by reference in production', () => {
    const { issues } = checkAudit({}, { ...context, mode: 'production' });
    assert.deepEqual(issues[0]?.path, ['signing_key']);
    assert.deepEqual(
      checkAudit({ signing_key: ed25519Pem() }, { ...context, mode: 'production' }).issues,
      [],
    );
  });

  it('names a sampled route that does not exist', () => {
    const { issues } = checkAudit({ sample_routes: { 'orders-raed': 0.5, 'GET /health': 0 } }, context);
    assert.equal(issues.length, 1);
    assert.deepEqual(issues[0]?.path, ['sample_routes', 'orders-raed']);
  });

  it('warns when auditing is off, and refuses a queue smaller than a batch', () => {
    assert.match(checkAudit({ enabled: false }, context).warnings[0]?.message ?? '', /not recorded/);
    assert.deepEqual(checkAudit({ max_queue: 10, batch_size: 100 }, context).issues[0]?.path, ['max_queue']);
  });
});
