/**
 * Anomaly detection as an event sink: every completed request goes through
 * each enabled detector; findings go to `onFinding` (the alerter).
 *
 * Per request the work is a few LRU lookups and arithmetic per detector,
 * synchronous and without I/O; memory is at most `max_sources` entries per
 * table (three tables, IP, API key and principal, per per-source detector),
 * each a few numbers, or two small bitmaps for scraping.
 */
import type { EventSink, SecurityEvent } from '../events/types.js';
import {
  AuthFailureDetector,
  EnumerationDetector,
  GatewaySpikeDetector,
  InjectionDetector,
  RateSpikeDetector,
  ScrapingDetector,
} from './detectors.js';
import type { AnomalySettings } from './schema.js';
import type { Detector, DetectorName, Finding, ObservedRequest } from './types.js';

export {
  AuthFailureDetector,
  BLOCKED_REASON,
  EnumerationDetector,
  formatDuration,
  GatewaySpikeDetector,
  InjectionDetector,
  objectIdOf,
  RateSpikeDetector,
  ScrapingDetector,
} from './detectors.js';
export * from './schema.js';
export * from './types.js';

/** Options of {@link createAnomalyEngine}. */
export interface AnomalyEngineOptions {
  /** Receives each finding, synchronously; must not throw (the alerter queues it). */
  onFinding(finding: Finding): void;
  /** The clock, epoch ms; tests pass a fake one. Default `Date.now`. */
  now?: () => number;
  /** How a client address is keyed (`ipKey` with `listen.ipv6_prefix`); default: as is. */
  ipKey?: (ip: string) => string;
}

/** Counters for metrics. */
export interface AnomalyStats {
  /** Request events examined. */
  events: number;
  /** Findings per detector. */
  findings: Record<DetectorName, number>;
}

export interface AnomalyEngine extends EventSink {
  readonly stats: AnomalyStats;
  /** Sources tracked per detector and table: `{ auth_failures: { ip: 12, … }, … }`. */
  tracked(): Partial<Record<DetectorName, Record<string, number>>>;
}

/** Builds the enabled detectors from the compiled `anomaly` settings. */
export function createDetectors(
  settings: AnomalySettings,
  now: () => number,
  ipKey?: (ip: string) => string,
): Detector[] {
  const d = settings.detectors;
  const max = settings.maxSources;
  const options = { now, ipKey };
  const detectors: Detector[] = [];
  if (d.auth_failures.enabled) detectors.push(new AuthFailureDetector(d.auth_failures, max, options));
  if (d.rate_spike.enabled) detectors.push(new RateSpikeDetector(d.rate_spike, max, options));
  if (d.enumeration.enabled) detectors.push(new EnumerationDetector(d.enumeration, max, options));
  if (d.scraping.enabled) detectors.push(new ScrapingDetector(d.scraping, max, options));
  if (d.injection.enabled) detectors.push(new InjectionDetector(d.injection, max, options));
  if (d.gateway_spike.enabled) detectors.push(new GatewaySpikeDetector(d.gateway_spike));
  return detectors;
}

/**
 * The anomaly detection sink. Admin events are ignored; request events may
 * carry the optional `objectId` and `credentialId` of {@link ObservedRequest}.
 */
export function createAnomalyEngine(settings: AnomalySettings, options: AnomalyEngineOptions): AnomalyEngine {
  const now = options.now ?? Date.now;
  const detectors = settings.enabled ? createDetectors(settings, now, options.ipKey) : [];
  const stats: AnomalyStats = {
    events: 0,
    findings: {
      auth_failures: 0,
      rate_spike: 0,
      enumeration: 0,
      scraping: 0,
      injection: 0,
      gateway_spike: 0,
    },
  };
  const report = (finding: Finding) => {
    stats.findings[finding.detector]++;
    options.onFinding(finding);
  };
  return {
    stats,
    emit(event: SecurityEvent) {
      if (event.type !== 'request' || detectors.length === 0) return;
      stats.events++;
      const t = now();
      for (const detector of detectors) detector.observe(event as ObservedRequest, t, report);
    },
    tracked() {
      return Object.fromEntries(detectors.map((d) => [d.name, d.tracked()]));
    },
  };
}
