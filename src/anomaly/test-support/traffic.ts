/** Scripted traffic for detection tests: a fake clock, a seeded generator and event builders. */
import { type TSchema, Type } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import { AnomalySchema, type AnomalySettings, compileAnomaly, type RawAnomaly } from '../schema.js';
import type { ObservedRequest } from '../types.js';

/** A clock that only moves when told to. */
export class FakeClock {
  constructor(public time = Date.parse('2030-01-01T00:00:00.000Z')) {}
  readonly now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

/** mulberry32: a tiny seeded PRNG, so a "random" run is the same run every time. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let sequence = 0;

/** An allowed GET answered 200 by the upstream, with whatever `overrides` change. */
export function requestEvent(overrides: Partial<ObservedRequest> = {}): ObservedRequest {
  sequence++;
  return {
    type: 'request',
    time: '2030-01-01T00:00:00.000Z',
    requestId: `req_${sequence}`,
    traceId: '0'.repeat(32),
    clientIp: '198.51.100.1',
    method: 'GET',
    path: '/orders',
    route: 'list-orders',
    principal: undefined,
    decision: 'allow',
    reason: 'ok',
    detail: undefined,
    status: 200,
    latencyMs: 3,
    upstreamMs: 2,
    stage: undefined,
    shadowDenials: [],
    ...overrides,
  };
}

/** A failed authentication as the authenticate stage reports it. */
export function authFailure(clientIp: string, credentialId?: string): ObservedRequest {
  return requestEvent({
    clientIp,
    decision: 'deny',
    reason: 'auth.invalid_credentials',
    status: 401,
    upstreamMs: undefined,
    stage: 'authenticate',
    credentialId,
  });
}

/** An API-key principal, as events carry it. */
export const apiKey = (id: string) => ({ kind: 'api_key', id, tenant: undefined });

/**
 * Validates a config section the way `loadConfig` does (same ajv options), so
 * defaults come from the schema itself; throws with ajv's errors otherwise.
 */
export function validSection<T>(schema: TSchema, raw: unknown): T {
  // Wrapped, as in the config file: ajv applies a default only below the root.
  let validate = validators.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(Type.Object({ section: Type.Optional(schema) }, { additionalProperties: false }));
    validators.set(schema, validate);
  }
  const copy: { section?: unknown } = raw === undefined ? {} : { section: structuredClone(raw) };
  if (!validate(copy)) throw new Error(ajv.errorsText(validate.errors));
  return copy.section as T;
}

const validators = new WeakMap<TSchema, ValidateFunction>();
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });

/** Compiled anomaly settings: the documented defaults with `raw` over them. */
export function anomalySettings(raw: Record<string, unknown> = {}): AnomalySettings {
  return compileAnomaly(validSection<RawAnomaly>(AnomalySchema, raw));
}

/**
 * An hour (by default) of ordinary mixed traffic: 60 API-key clients and 40
 * token users behind 150 IPs, a few thousand objects, a daily-shaped rate,
 * bursts of a page's worth of requests, and the everyday share of mistakes:
 * wrong or expired credentials, a missing object, an invalid body, an
 * upstream hiccup. Times are spread evenly over `durationMs`.
 */
export function* ordinaryTraffic(options: {
  seed: number;
  count: number;
  durationMs: number;
  start: number;
}): Generator<{ at: number; event: ObservedRequest }> {
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const ips = Array.from({ length: 150 }, (_, i) => `203.0.113.${i}`);
  const users = Array.from({ length: 100 }, (_, i) => ({
    principal:
      i < 60
        ? { kind: 'api_key', id: `key_ordinary${i}`, tenant: undefined }
        : { kind: 'jwt', id: `user-${i}`, tenant: 'acme' },
    ip: ips[i % ips.length]!,
    // Each user works on their own handful of objects.
    objects: Array.from({ length: 5 + Math.floor(random() * 25) }, () =>
      String(Math.floor(random() * 100_000)),
    ),
  }));
  let emitted = 0;
  let at = options.start;
  const step = options.durationMs / options.count;
  while (emitted < options.count) {
    const user = pick(users);
    // A burst: a page load making a few calls within a second or two.
    const burst = 1 + Math.floor(random() * 6);
    for (let b = 0; b < burst && emitted < options.count; b++, emitted++) {
      // The rate follows a gentle wave (±40% over the run), like a working day.
      const wave = 1 + 0.4 * Math.sin((2 * Math.PI * (at - options.start)) / options.durationMs);
      at += step / wave;
      const roll = random();
      const objectId = pick(user.objects);
      const base = {
        clientIp: random() < 0.05 ? pick(ips) : user.ip,
        principal: user.principal,
        method: random() < 0.8 ? 'GET' : 'POST',
      };
      let event: ObservedRequest;
      if (roll < 0.01) {
        event = authFailure(base.clientIp, user.principal.kind === 'api_key' ? user.principal.id : undefined);
      } else if (roll < 0.025) {
        event = requestEvent({
          ...base,
          path: `/orders/${objectId}9`,
          route: 'get-order',
          objectId: `${objectId}9`,
          status: 404,
        });
      } else if (roll < 0.03) {
        event = requestEvent({
          ...base,
          route: 'get-order',
          decision: 'deny',
          reason: 'authz.forbidden',
          status: 403,
          upstreamMs: undefined,
          path: `/orders/${objectId}`,
          objectId,
        });
      } else if (roll < 0.036) {
        event = requestEvent({
          ...base,
          route: 'create-order',
          decision: 'deny',
          reason: 'input.invalid',
          status: 400,
          upstreamMs: undefined,
        });
      } else if (roll < 0.04) {
        event = requestEvent({
          ...base,
          decision: 'error',
          reason: random() < 0.5 ? 'upstream.timeout' : 'upstream.unavailable',
          status: random() < 0.5 ? 504 : 502,
          upstreamMs: undefined,
        });
      } else if (roll < 0.6) {
        event = requestEvent({ ...base, path: `/orders/${objectId}`, route: 'get-order', objectId });
      } else {
        event = requestEvent({ ...base, path: '/orders', route: 'list-orders' });
      }
      yield { at: Math.round(at), event };
    }
  }
}
