/**
 * Memory held by the alerter's running alerts at their bounds: the active
 * set (`maxActiveAlerts`, 10 000) plus the recent-alerts table (10 000), and
 * the per-source counts (`maxActiveSources`, 100 000 in all). The store is a
 * no-op and there are no webhooks: only the alerter's own tables are
 * measured, as heapUsed after a full GC.
 *
 *     node --expose-gc --import tsx bench/memory/alerts.ts [attacks=30000]
 *
 * 1. `attacks` distinct attacking IPs, one alert each: the active set fills
 *    and evicts; the evicted stay in the recent table.
 * 2. 200 attacked routes, 2 000 distinct sources each (400 000 findings):
 *    the per-source counts stop at their bound.
 */

import { createAlerter } from '../../src/alerts/alerter.js';
import type { AlertStore } from '../../src/alerts/store.js';
import type { AlertSettings } from '../../src/anomaly/schema.js';
import type { Finding } from '../../src/anomaly/types.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const ATTACKS = Number(process.argv[2] ?? 30_000);
const out = (line: string) => process.stdout.write(`${line}\n`);
const MB = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const store: AlertStore = {
  insert: async () => {},
  findRecent: async () => undefined,
  recordDuplicate: async () => {},
  recordDuplicates: async () => {},
  setDelivery: async () => {},
  get: async () => undefined,
  list: async () => [],
};
const settings: AlertSettings = {
  webhooks: [],
  cooldownMs: 3_600_000,
  timeoutMs: 2000,
  retry: { attempts: 1, backoffMs: 10, maxBackoffMs: 10 },
  queueSize: 100,
  concurrency: 1,
};
const finding = (ip: string, route?: string): Finding => ({
  detector: 'auth_failures',
  severity: 'warning',
  subject: { kind: 'ip', id: ip },
  ...(route === undefined ? {} : { target: { kind: 'route' as const, id: route } }),
  summary: `20 failed authentications from IP ${ip} within 1m: credential stuffing or brute force.`,
  evidence: { failures: 20, threshold: 20, window: '1m' },
});
const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

async function attacks(): Promise<void> {
  const base = heap();
  const alerter = createAlerter({ store, settings, maxPendingFindings: 1_000_000 });
  for (let i = 0; i < ATTACKS; i++) {
    alerter.raise(finding(ip(i)));
    if (i % 1000 === 999) await alerter.settle();
  }
  await alerter.settle();
  const held = heap() - base;
  out(
    `${ATTACKS} attacks: ${alerter.activeAlerts()} active, ${alerter.stats.activeEvicted} evicted, ` +
      `${alerter.stats.findingsDropped} dropped; heap held ${MB(held)}`,
  );
  await alerter.close();
}

async function sources(): Promise<void> {
  const base = heap();
  const alerter = createAlerter({ store, settings, maxPendingFindings: 1_000_000 });
  let n = 0;
  for (let route = 0; route < 200; route++) {
    alerter.raise(finding(ip(0), `route-${route}`));
    await alerter.settle();
    for (let s = 1; s < 2000; s++, n++) alerter.raise(finding(ip(s + route * 2000), `route-${route}`));
  }
  await alerter.settle();
  const held = heap() - base;
  out(
    `200 attacked routes × 2000 sources (${n + 200} findings): ${alerter.activeAlerts()} active, ` +
      `${alerter.stats.suppressed} folded; heap held ${MB(held)}`,
  );
  await alerter.close();
}

await attacks();
await sources();
