/**
 * Structured JSON logs (pino). Credentials are redacted wherever a request's
 * headers are logged; configured extra header names are redacted too.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Header names whose values are never written, whatever the config says. */
export const ALWAYS_REDACTED_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
] as const;

export function createLogger(
  options: { level: string; redact?: readonly string[] },
  destination?: DestinationStream,
): Logger {
  const headers = [...new Set([...ALWAYS_REDACTED_HEADERS, ...(options.redact ?? [])])];
  const paths = headers.flatMap((h) => [
    `req.headers[${JSON.stringify(h)}]`,
    `headers[${JSON.stringify(h)}]`,
  ]);
  return pino(
    {
      level: options.level,
      base: { service: 'portcullis' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
