/**
 * The answers of rate limiting, with their stable codes. They are
 * ErrorSpecs like those in `src/errors.ts` and render through the same
 * `sendProblem`, so a client sees the same problem+json shape.
 */
import type { ErrorSpec } from '../errors.js';

export const RATE_LIMIT_ERRORS = {
  rateLimited: {
    code: 'rate_limit.exceeded',
    status: 429,
    title: 'Too many requests; retry after the time given in Retry-After.',
  },
  quotaExceeded: {
    code: 'rate_limit.quota_exceeded',
    status: 429,
    title: 'The quota for this period is used up.',
  },
  concurrencyExceeded: {
    code: 'rate_limit.concurrency_exceeded',
    status: 429,
    title: 'Too many requests in flight at once.',
  },
  limiterUnavailable: {
    code: 'rate_limit.unavailable',
    status: 503,
    title: 'Limits cannot be checked right now.',
  },
  overloaded: {
    code: 'gateway.overloaded',
    status: 503,
    title: 'The gateway is overloaded; retry later.',
  },
} as const satisfies Record<string, ErrorSpec>;
