/** The shipped demo (demo/portcullis.yaml + demo/openapi.yaml), for tests that drive it from outside. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/**
 * The demo config as shipped, pointed at an orders upstream on `upstreamPort`
 * (a test starts the real demo upstream with `startOrdersApi(0)`), with the
 * API document by absolute path and the given log level.
 *
 * `relaxInspectionBudget`: inspection's CPU budget (10 ms) is for a
 * production machine; on a shared test machine a cold or preempted run can
 * pass it and be refused (fail closed), which tests of other policies are
 * not about. Gives every route 500 ms.
 */
export function demoConfig(
  upstreamPort: number,
  options: { logLevel?: string; relaxInspectionBudget?: boolean } = {},
): Record<string, unknown> & { routes: Record<string, unknown>[] } {
  const demo = parse(readFileSync(new URL('../../demo/portcullis.yaml', import.meta.url), 'utf8'));
  demo.upstreams.orders.url = `http://127.0.0.1:${upstreamPort}`;
  demo.api.document = new URL('../../demo/openapi.yaml', import.meta.url).pathname;
  demo.log = { level: options.logLevel ?? 'info' };
  if (options.relaxInspectionBudget) {
    for (const route of demo.routes) route.inspection = { timeout: '500ms' };
  }
  return demo;
}
