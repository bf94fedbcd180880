/**
 * The report's three forms: a table for people, JSON for scripts, and SARIF
 * 2.1.0 for code scanning (GitHub reads `runs[].tool.driver.rules`, each
 * result's `ruleId`, `level`, `message.text` and its physical location).
 */
import { pathToFileURL } from 'node:url';
import { formatTable } from '../cli/support.js';
import { displayPath, type Finding, type OwaspReport, type Severity } from './report.js';
import { OWASP_IDS, OWASP_RULES } from './rules.js';

const COVERAGE_CELL = { covered: 'ok', open: 'OPEN', 'n/a': '-' } as const;

function where(f: { file: string; line: number | undefined }, cwd: string): string {
  return `${displayPath(f.file, cwd)}${f.line === undefined ? '' : `:${f.line}`}`;
}

function counts(findings: readonly Finding[]): Record<Severity, number> {
  const out: Record<Severity, number> = { high: 0, medium: 0, low: 0 };
  for (const f of findings) out[f.severity]++;
  return out;
}

export function formatTableReport(report: OwaspReport, cwd = process.cwd()): string {
  const lines: string[] = [];
  lines.push(
    `OWASP API Security Top 10 (2023) for ${displayPath(report.config, cwd)}${
      report.document === undefined ? '' : ` (API description: ${displayPath(report.document, cwd)})`
    }`,
    '',
  );
  lines.push(
    formatTable([
      ['ROUTE', 'METHODS', 'PATH', ...OWASP_IDS],
      ...report.routes.map((r) => [
        r.name,
        r.methods.join(','),
        r.path,
        ...OWASP_IDS.map((id) => COVERAGE_CELL[r.coverage[id]]),
      ]),
    ]),
  );
  lines.push('', 'ok: covered by the config; OPEN: a gap, see the findings; -: does not apply');
  const c = counts(report.findings);
  lines.push('', `Findings: ${c.high} high, ${c.medium} medium, ${c.low} low`);
  if (report.findings.length > 0) {
    lines.push(
      formatTable([
        ['SEVERITY', 'RULE', 'WHERE', 'FINDING'],
        ...report.findings.map((f) => [
          f.hint ? `${f.severity} (hint)` : f.severity,
          f.rule,
          where(f, cwd),
          f.message,
        ]),
      ]),
    );
  }
  return lines.join('\n');
}

export function formatJsonReport(report: OwaspReport): string {
  return JSON.stringify(
    {
      standard: 'OWASP API Security Top 10 (2023)',
      config: report.config,
      document: report.document ?? null,
      summary: counts(report.findings),
      routes: report.routes,
      findings: report.findings.map((f) => ({ ...f, route: f.route ?? null, line: f.line ?? null })),
    },
    null,
    2,
  );
}

const LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = {
  high: 'error',
  medium: 'warning',
  low: 'note',
};
/** GitHub's `security-severity` (CVSS-like 0-10) ranks code-scanning alerts as critical/high/medium/low. */
const SECURITY_SEVERITY: Record<Severity, string> = { high: '8.0', medium: '5.0', low: '2.0' };

/** The typical severity of each item's findings, for GitHub's ranking of alerts. */
const RULE_SECURITY_SEVERITY: Record<(typeof OWASP_IDS)[number], string> = {
  API1: '8.0',
  API2: '8.0',
  API3: '5.0',
  API4: '5.0',
  API5: '8.0',
  API6: '2.0',
  API7: '8.0',
  API8: '5.0',
  API9: '2.0',
  API10: '5.0',
};

/** A SARIF artifact URI: relative to `cwd` (the repository root in CI) when inside it, else a file: URI. */
function artifactUri(file: string, cwd: string): string {
  const shown = displayPath(file, cwd);
  return shown === file ? pathToFileURL(file).href : shown.split('\\').join('/');
}

export function formatSarifReport(report: OwaspReport, toolVersion: string, cwd = process.cwd()): string {
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'portcullis',
            semanticVersion: toolVersion,
            informationUri: 'https://owasp.org/API-Security/editions/2023/en/0x11-t10/',
            rules: OWASP_IDS.map((id) => {
              const r = OWASP_RULES[id];
              return {
                id,
                name: r.name,
                shortDescription: { text: `${id}:2023 ${r.title}` },
                fullDescription: { text: r.help },
                help: { text: r.help, markdown: `${r.help}\n\n[OWASP ${id}:2023 ${r.title}](${r.url})` },
                helpUri: r.url,
                defaultConfiguration: { level: id === 'API6' ? 'note' : 'warning' },
                properties: {
                  tags: ['security', 'owasp-api-top-10'],
                  precision: 'medium',
                  'security-severity': RULE_SECURITY_SEVERITY[id],
                },
              };
            }),
          },
        },
        results: report.findings.map((f) => ({
          ruleId: f.rule,
          ruleIndex: OWASP_IDS.indexOf(f.rule),
          level: f.hint ? 'note' : LEVEL[f.severity],
          message: { text: f.message },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: artifactUri(f.file, cwd) },
                ...(f.line === undefined ? {} : { region: { startLine: f.line } }),
              },
              ...(f.route === undefined && f.path === ''
                ? {}
                : { logicalLocations: [{ name: f.route ?? f.path, fullyQualifiedName: f.path }] }),
            },
          ],
          partialFingerprints: { portcullisFinding: `${f.rule}|${f.route ?? ''}|${f.path}|${f.message}` },
          properties: {
            severity: f.severity,
            'security-severity': SECURITY_SEVERITY[f.severity],
            hint: f.hint,
          },
        })),
      },
    ],
  };
  return JSON.stringify(sarif, null, 2);
}
