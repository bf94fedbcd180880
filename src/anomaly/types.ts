/**
 * The vocabulary of anomaly detection: what a detector reads (a request
 * event), what it reports (a finding) and who the finding is about.
 */
import type { RequestEvent } from '../events/types.js';

/** How urgent a finding is; webhooks filter on it (`min_severity`). */
export type Severity = 'info' | 'warning' | 'critical';

/** Orders severities for comparisons: info < warning < critical. */
export const SEVERITY_RANK: Readonly<Record<Severity, number>> = { info: 0, warning: 1, critical: 2 };

/** What a finding is about. `gateway` findings concern the whole gateway (id `traffic`, `upstream_errors` or `unrouted`); `route` ones a route (as an attack's target). */
export type SubjectKind = 'ip' | 'api_key' | 'principal' | 'gateway' | 'route';

export interface Subject {
  kind: SubjectKind;
  id: string;
}

/** The detectors, named as their config keys under `anomaly.detectors`. */
export type DetectorName =
  | 'auth_failures'
  | 'rate_spike'
  | 'enumeration'
  | 'scraping'
  | 'injection'
  | 'gateway_spike';

export const DETECTOR_NAMES: readonly DetectorName[] = [
  'auth_failures',
  'rate_spike',
  'enumeration',
  'scraping',
  'injection',
  'gateway_spike',
];

/**
 * One anomaly, reported once per episode: a detector fires when its measure
 * crosses the threshold and stays quiet until the measure has fallen back
 * below half of it (hysteresis), so a long attack is one finding, not one
 * per request.
 */
export interface Finding {
  detector: DetectorName;
  severity: Severity;
  subject: Subject;
  /** One sentence for people; never carries request data beyond the subject id. */
  summary: string;
  /** The numbers behind the finding (counts, rates, thresholds). */
  evidence: Record<string, number | string>;
  /**
   * The attack's scope, when it is wider than the subject (the source): the
   * route or the gateway many sources hit. The alerter makes one alert per
   * detector and target, with the sources counted in it.
   */
  target?: Subject | undefined;
}

/**
 * A request event with the two facts detection needs that the core event
 * does not always carry. Both are optional: without them,
 * scraping falls back to the path's last segment and per-credential
 * auth-failure counting is off.
 */
export interface ObservedRequest extends RequestEvent {
  /**
   * The object the request addressed: the route's path parameter values
   * joined with `/` (e.g. `1234` for `/orders/{id}`), undefined on routes
   * without parameters.
   */
  objectId?: string | undefined;
  /**
   * A non-secret id of the credential presented when authentication failed
   * (`AuthFailure.credentialId`: an API key id `key_…`, a client id, a token
   * hash prefix). Never the secret.
   */
  credentialId?: string | undefined;
}

/** One detector: reads events, reports findings, keeps bounded state. */
export interface Detector {
  readonly name: DetectorName;
  /** `now` is the injected clock's time (ms) for this event. */
  observe(event: ObservedRequest, now: number, report: (finding: Finding) => void): void;
  /** Sources currently tracked, per table (memory checks and metrics). */
  tracked(): Record<string, number>;
}
