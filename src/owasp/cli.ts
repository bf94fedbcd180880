/**
 * `portcullis check --owasp [--format table|json|sarif] [--fail-on low|medium|high]`:
 * the report of an already loaded config, printed, and the exit code CI
 * gates on: 0, or 3 when a finding (hints aside) is at or above `--fail-on`.
 */
import type { GatewayConfig } from '../config/types.js';
import { formatJsonReport, formatSarifReport, formatTableReport } from './format.js';
import { failsAt, owaspReport, SEVERITIES, type Severity } from './report.js';

export const OWASP_FORMATS = ['table', 'json', 'sarif'] as const;
export type OwaspFormat = (typeof OWASP_FORMATS)[number];

/** The exit code of a report with findings at or above `--fail-on`. */
export const OWASP_FAIL_EXIT = 3;

/** Checks the flags; a message for bad usage, or the parsed values. */
export function parseOwaspFlags(
  format: string | undefined,
  failOn: string | undefined,
): { format: OwaspFormat; failOn: Severity } | string {
  const f = format ?? 'table';
  if (!(OWASP_FORMATS as readonly string[]).includes(f)) {
    return `--format expects one of ${OWASP_FORMATS.join(', ')}, got ${JSON.stringify(f)}`;
  }
  const s = failOn ?? 'high';
  if (!(SEVERITIES as readonly string[]).includes(s)) {
    return `--fail-on expects one of ${SEVERITIES.join(', ')}, got ${JSON.stringify(s)}`;
  }
  return { format: f as OwaspFormat, failOn: s as Severity };
}

/** Builds and prints the report; returns the exit code. */
export async function runOwaspCheck(
  config: GatewayConfig,
  flags: { format: OwaspFormat; failOn: Severity },
  io: { out(text: string): void; err(text: string): void },
  toolVersion: string,
): Promise<number> {
  const report = await owaspReport(config);
  io.out(
    flags.format === 'json'
      ? formatJsonReport(report)
      : flags.format === 'sarif'
        ? formatSarifReport(report, toolVersion)
        : formatTableReport(report),
  );
  const failing = report.findings.filter((f) => failsAt(f, flags.failOn)).length;
  if (failing > 0) {
    io.err(`portcullis check --owasp: ${failing} finding(s) at or above ${flags.failOn}`);
    return OWASP_FAIL_EXIT;
  }
  return 0;
}
