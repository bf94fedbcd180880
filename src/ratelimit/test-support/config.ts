/** Test helper: validates and compiles a `rate_limit` section and some routes, as the config loader will. */
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { quotasMigration } from '../../store/migrations/004-quotas.js';
import { migrations } from '../../store/migrations/index.js';
import type { Migration } from '../../store/types.js';
import { checkRateLimit, compileRateLimit, compileRouteRateLimits } from '../compile.js';
import {
  RateLimitSchema,
  type RawRateLimit,
  type RawRouteRateLimits,
  RouteRateLimitFieldsSchema,
} from '../schema.js';
import type { RateLimitSettings, RouteRateLimits } from '../types.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
ajv.addKeyword({ keyword: 'expected', schemaType: 'string' });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
// Wrapped as in the config schema: ajv ignores (and strict mode refuses) a default at the root.
const validateWrapped = ajv.compile<{ rate_limit: RawRateLimit }>(
  Type.Object({ rate_limit: RateLimitSchema }, { additionalProperties: false }),
);
const validateSection = Object.assign(
  (section: unknown): section is RawRateLimit => validateWrapped({ rate_limit: section }),
  {
    get errors() {
      return validateWrapped.errors;
    },
  },
);
const validateRoute = ajv.compile<RawRouteRateLimits>(RouteRateLimitFieldsSchema);

export interface CompiledForTest {
  settings: RateLimitSettings;
  routes: Record<string, RouteRateLimits | undefined>;
  /** `path: message`, as the loader would report them (before it refuses to start). */
  issues: string[];
}

/** Throws on a schema error (with ajv's messages); collects the loader's own issues. */
export function compileForTest(
  section: Record<string, unknown>,
  routes: Record<string, Record<string, unknown>> = {},
): CompiledForTest {
  const raw = structuredClone(section);
  if (!validateSection(raw)) throw new Error(`schema: ${ajv.errorsText(validateSection.errors)}`);
  const issues: string[] = [];
  const report = (at: string) => (segments: (string | number)[], message: string) =>
    issues.push(`${[at, ...segments].join('.')}: ${message}`);
  checkRateLimit(raw, report('rate_limit'));
  const compiled: Record<string, RouteRateLimits | undefined> = {};
  for (const [name, fields] of Object.entries(routes)) {
    const r = structuredClone(fields);
    if (!validateRoute(r)) throw new Error(`schema: ${ajv.errorsText(validateRoute.errors)}`);
    compiled[name] = compileRouteRateLimits(r, raw, name, report(name));
  }
  return { settings: compileRateLimit(raw), routes: compiled, issues };
}

/** Whether `section` passes the schema. */
export function schemaAccepts(section: Record<string, unknown>): boolean {
  return validateSection(structuredClone(section));
}

/**
 * The migrations up to and including the quota table, whether or not it is
 * registered yet (later migrations of other features are left out).
 */
export const migrationsWithQuotas: Migration[] = [
  ...migrations.filter((m) => m.version < quotasMigration.version),
  quotasMigration,
];
