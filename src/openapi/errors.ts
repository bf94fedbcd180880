/**
 * The errors of input validation, injection inspection and response
 * filtering, as named in the one catalogue (`ERRORS` in `src/errors.ts`);
 * the problem items are the one addition
 * to the RFC 9457 body: where the request failed and which rule it broke,
 * never the value that was sent.
 */
import { ERRORS, type ErrorSpec, GatewayError } from '../errors.js';

/** One failing location of a request, as the client sees it. */
export interface ProblemItem {
  /** A JSON pointer prefixed by its part of the request: `/body/items/0/qty`, `/query/limit`, `/header/x-trace`. */
  readonly location: string;
  /** The rule broken: a JSON Schema keyword (`maximum`, `required`, `additionalProperties`) or a gateway rule (`duplicate`, `max_depth`). */
  readonly rule: string;
}

/** The catalogue's input errors, by the names this feature uses. */
export const INPUT_ERRORS = {
  inputInvalid: ERRORS.inputInvalid,
  inputRejected: ERRORS.inputRejected,
  unsupportedMediaType: ERRORS.unsupportedMediaType,
  upstreamError: ERRORS.upstreamError,
  upstreamRefused: ERRORS.upstreamRefused,
  upstreamInvalidResponse: ERRORS.upstreamInvalidResponse,
} as const satisfies Record<string, ErrorSpec>;

/** Most problem items listed in one answer; the rest are counted in the log only. */
export const MAX_PROBLEM_ITEMS = 20;

/** A rejected input, with the locations that failed. `errors` is safe to send. */
export class InputError extends GatewayError {
  readonly errors: readonly ProblemItem[];

  constructor(spec: ErrorSpec, errors: readonly ProblemItem[], internal?: string) {
    super(spec, internal === undefined ? {} : { internal });
    this.name = 'InputError';
    this.errors = errors.slice(0, MAX_PROBLEM_ITEMS);
  }
}

/** Escapes one JSON pointer segment (RFC 6901 §3) and bounds its length: keys come from clients. */
export function pointerSegment(key: string | number): string {
  const text = String(key);
  const bounded = text.length > 64 ? `${text.slice(0, 61)}...` : text;
  return bounded.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A one-line summary of problem items for logs and the audit trail: locations and rules, never values. */
export function describeProblems(items: readonly ProblemItem[]): string {
  return items.map((i) => `${i.location} ${i.rule}`).join('; ');
}
