/**
 * The small TypeBox helpers every config schema is written with: closed
 * objects, sections that may be left out, durations, sizes and secret
 * references. A leaf module (it imports only TypeBox and the unit patterns),
 * so the feature schemas that `src/config/schema.ts` includes can use the
 * same helpers without importing that file back: the schema objects are
 * built while the modules load, and a cycle would leave them undefined.
 */
import { type TObject, type TProperties, Type } from '@sinclair/typebox';
import { DURATION_PATTERN, SIZE_PATTERN } from '../util/units.js';

/** A closed object: unknown keys are rejected. */
export const strict = <T extends TProperties>(props: T, description: string): TObject<T> =>
  Type.Object(props, { additionalProperties: false, description });

/** A section whose keys all have defaults, so the section itself may be left out. */
export const section = <T extends TProperties>(props: T, description: string): TObject<T> =>
  Type.Object(props, { additionalProperties: false, description, default: {} });

/** A duration such as `500ms` or `90d` (zero allowed), with an optional default. */
export const Duration = (description: string, dflt?: string) =>
  Type.String({
    pattern: DURATION_PATTERN,
    description,
    expected: 'a duration such as 500ms, 10s, 5m, 2h or 90d',
    ...(dflt === undefined ? {} : { default: dflt }),
  });

/** A size such as `16kb` or `1mb`, with an optional default. */
export const Size = (description: string, dflt?: string) =>
  Type.String({
    pattern: SIZE_PATTERN,
    description,
    expected: 'a size such as 512b, 16kb, 1mb or 1gb',
    ...(dflt === undefined ? {} : { default: dflt }),
  });

/** A reference to a secret, `${env:NAME}` or `${file:PATH}`: never the secret itself. */
export const SECRET_REF_PATTERN = '^\\$\\{(env|file):[^}]+\\}$';

/** A config value that must be a secret reference; marked `secret` so it is never printed. */
export const SecretRef = (description: string) =>
  Type.String({
    pattern: SECRET_REF_PATTERN,
    description,
    expected: 'a secret reference ${env:NAME} or ${file:PATH}, never the secret itself',
    secret: true,
  });
