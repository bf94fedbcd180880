/**
 * The detectors. Each is a plain class over the injected clock's time, with
 * one bounded LRU table per kind of source, and reports a finding once per
 * episode: on the event that crosses its threshold, then not again until the
 * measure has fallen below half of it.
 *
 * Requests answered `client.blocked` are ignored by the per-source detectors:
 * the source is already dealt with, and counting its rejected retries would
 * only raise findings about the block itself.
 */
import { LruCache } from '../util/lru.js';
import type { AnomalySettings } from './schema.js';
import type {
  Detector,
  DetectorName,
  Finding,
  ObservedRequest,
  Severity,
  Subject,
  SubjectKind,
} from './types.js';
import {
  CLEAR_RATIO,
  DistinctEstimate,
  distinctBits,
  ewmaAlpha,
  hashString,
  RateBaseline,
  type RateParams,
  SlidingCount,
} from './windows.js';

type SourceKind = Exclude<SubjectKind, 'gateway' | 'route'>;

/** The reason of requests refused because their source is blocked. */
export const BLOCKED_REASON = 'client.blocked';

// The longest id a block accepts, so an automatic block matches the subject as found.
const MAX_ID_LENGTH = 200;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes.
const UNSAFE = /[\x00-\x1f\x7f]/g;

/** Subject ids end up in chat messages and terminals: bounded, without control characters. */
function safeId(id: string): string {
  const short = id.length > MAX_ID_LENGTH ? `${id.slice(0, MAX_ID_LENGTH)}…` : id;
  return short.replace(UNSAFE, '?');
}

/** `60000` → `1m`, `1500` → `1.5s`: the way durations are written in the config. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % (size / 10) === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

const DESCRIBE: Record<SourceKind, string> = { ip: 'IP', api_key: 'API key', principal: 'principal' };

/** The API-key or principal source of an authenticated request. */
function principalSource(event: ObservedRequest): SourceKind | undefined {
  const p = event.principal;
  if (p === undefined || p.kind === 'anonymous') return undefined;
  return p.kind === 'api_key' ? 'api_key' : 'principal';
}

/**
 * One LRU table per kind of source, each of at most `anomaly.max_sources`
 * entries; an entry is created on first sight. Eviction forgets the least
 * recently seen source's window or baseline: a source that keeps sending
 * stays recent (marked as used, so eviction passes over it once, CLOCK),
 * and one that pauses is forgotten only once about `max_sources`
 * other sources of its kind have been seen meanwhile (with IPs, that many
 * other addresses, which would each start from zero anyway).
 */
class SourceTables<S> {
  private readonly tables: Record<SourceKind, LruCache<string, S>>;

  private readonly ipKey: (ip: string) => string;

  constructor(
    maxSources: number,
    options: Options,
    private readonly create: () => S,
  ) {
    const { now } = options;
    this.ipKey = options.ipKey ?? ((ip) => ip);
    this.tables = {
      ip: new LruCache(maxSources, now),
      api_key: new LruCache(maxSources, now),
      principal: new LruCache(maxSources, now),
    };
  }

  /**
   * The state of a source; an IP is counted under its key (IPv6: its
   * `listen.ipv6_prefix` network), so rotating addresses within it does not
   * reset a count. Findings still name the address that tipped it.
   */
  get(kind: SourceKind, raw: string): S {
    const id = kind === 'ip' ? this.ipKey(raw) : raw;
    const table = this.tables[kind];
    // peek: a source seen again is marked (CLOCK), not re-inserted: no Map write per event.
    let state = table.peek(id);
    if (state === undefined) {
      state = this.create();
      table.set(id, state);
    }
    return state;
  }

  sizes(): Record<string, number> {
    return {
      ip: this.tables.ip.size,
      api_key: this.tables.api_key.size,
      principal: this.tables.principal.size,
    };
  }
}

/** A windowed count with an episode flag. */
class CountEpisode {
  active = false;
  readonly count: SlidingCount;

  constructor(windowMs: number) {
    this.count = new SlidingCount(windowMs);
  }

  /** Counts one occurrence; true when it starts an episode. */
  hit(now: number, threshold: number): boolean {
    if (this.active && this.count.value(now) < threshold * CLEAR_RATIO) this.active = false;
    this.count.add(now);
    if (this.active || this.count.value(now) < threshold) return false;
    this.active = true;
    return true;
  }
}

export interface Options {
  now: () => number;
  /** How an address is keyed (`ipKey` with `listen.ipv6_prefix`); default: as is. */
  ipKey?: ((ip: string) => string) | undefined;
}

function finding(
  detector: DetectorName,
  severity: Severity,
  kind: SubjectKind,
  id: string,
  summary: string,
  evidence: Record<string, number | string>,
): Finding {
  return { detector, severity, subject: { kind, id: safeId(id) }, summary, evidence };
}

/**
 * Bursts of failed authentication: per client IP (credential stuffing, where
 * every attempt names a different account) and per credential (guessing the
 * secret of one API key). Per-credential counting needs `credentialId` on the
 * event.
 */
export class AuthFailureDetector implements Detector {
  readonly name = 'auth_failures';
  private readonly tables: SourceTables<CountEpisode>;
  private readonly reasons: ReadonlySet<string>;

  constructor(
    private readonly settings: AnomalySettings['detectors']['auth_failures'],
    maxSources: number,
    options: Options,
  ) {
    this.reasons = new Set(settings.reasons);
    this.tables = new SourceTables(maxSources, options, () => new CountEpisode(settings.windowMs));
  }

  observe(event: ObservedRequest, now: number, report: (f: Finding) => void): void {
    if (!this.reasons.has(event.reason)) return;
    this.count('ip', event.clientIp, now, report, event);
    const credential = event.credentialId ?? event.principal?.id;
    if (credential !== undefined) {
      this.count(credential.startsWith('key_') ? 'api_key' : 'principal', credential, now, report, event);
    }
  }

  private count(
    kind: SourceKind,
    id: string,
    now: number,
    report: (f: Finding) => void,
    event?: ObservedRequest,
  ): void {
    const state = this.tables.get(kind, id);
    const { threshold, windowMs, severity } = this.settings;
    if (!state.hit(now, threshold)) return;
    const failures = Math.round(state.count.value(now));
    const window = formatDuration(windowMs);
    report({
      ...finding(
        this.name,
        severity,
        kind,
        id,
        kind === 'ip'
          ? `${failures} failed authentications from IP ${safeId(id)} within ${window}: credential stuffing or brute force.`
          : `${failures} failed authentications against ${DESCRIBE[kind]} ${safeId(id)} within ${window}: its secret is being guessed.`,
        { failures, threshold, window },
      ),
      // An API key being guessed is its own target; IPs and presented tokens attack the route.
      target: kind === 'api_key' ? undefined : attackTarget(event),
    });
  }

  tracked(): Record<string, number> {
    return this.tables.sizes();
  }
}

/** The scope of an attack seen in one request: its route, or the gateway when unrouted. */
export function attackTarget(event: ObservedRequest | undefined): Subject {
  return event?.route === undefined
    ? { kind: 'gateway', id: 'unrouted' }
    : { kind: 'route', id: safeId(event.route) };
}

/** Rate parameters from a detector's settings. */
function rateParams(s: {
  factor: number;
  minRatePerSecond: number;
  intervalMs: number;
  halfLifeMs: number;
  warmupMs: number;
}): RateParams {
  return {
    intervalMs: s.intervalMs,
    alpha: ewmaAlpha(s.intervalMs, s.halfLifeMs),
    factor: s.factor,
    minRatePerSecond: s.minRatePerSecond,
    warmupIntervals: Math.max(1, Math.ceil(s.warmupMs / s.intervalMs)),
  };
}

/** A source's request rate far above its own baseline. New sources are not judged until warmed up. */
export class RateSpikeDetector implements Detector {
  readonly name = 'rate_spike';
  private readonly tables: SourceTables<RateBaseline>;
  private readonly params: RateParams;

  constructor(
    private readonly settings: AnomalySettings['detectors']['rate_spike'],
    maxSources: number,
    options: Options,
  ) {
    this.params = rateParams(settings);
    this.tables = new SourceTables(maxSources, options, () => new RateBaseline());
  }

  observe(event: ObservedRequest, now: number, report: (f: Finding) => void): void {
    if (event.reason === BLOCKED_REASON) return;
    this.check('ip', event.clientIp, now, report);
    const kind = principalSource(event);
    if (kind !== undefined) this.check(kind, event.principal!.id, now, report);
  }

  private check(kind: SourceKind, id: string, now: number, report: (f: Finding) => void): void {
    const state = this.tables.get(kind, id);
    if (!state.observe(now, this.params)) return;
    const rate = state.count / (this.params.intervalMs / 1000);
    const baseline = state.baseline;
    report(
      finding(
        this.name,
        this.settings.severity,
        kind,
        id,
        `Request rate of ${DESCRIBE[kind]} ${safeId(id)} reached ${round(rate)}/s, ${
          baseline > 0
            ? `${round(rate / baseline, 1)}× its baseline of ${round(baseline, 3)}/s`
            : 'from a baseline of ~0'
        }.`,
        {
          rate_per_second: round(rate),
          baseline_per_second: round(baseline, 3),
          factor: this.settings.factor,
          interval: formatDuration(this.params.intervalMs),
        },
      ),
    );
  }

  tracked(): Record<string, number> {
    return this.tables.sizes();
  }
}

class RatioEpisode {
  active = false;
  readonly total: SlidingCount;
  readonly probes: SlidingCount;

  constructor(windowMs: number) {
    this.total = new SlidingCount(windowMs);
    this.probes = new SlidingCount(windowMs);
  }
}

/**
 * Enumeration: most answers to one source are 403 or 404, over enough
 * requests: ids tried one after another (BOLA probing), or paths scanned.
 */
export class EnumerationDetector implements Detector {
  readonly name = 'enumeration';
  private readonly tables: SourceTables<RatioEpisode>;
  private readonly statuses: ReadonlySet<number>;

  constructor(
    private readonly settings: AnomalySettings['detectors']['enumeration'],
    maxSources: number,
    options: Options,
  ) {
    this.statuses = new Set(settings.statuses);
    this.tables = new SourceTables(maxSources, options, () => new RatioEpisode(settings.windowMs));
  }

  observe(event: ObservedRequest, now: number, report: (f: Finding) => void): void {
    if (event.reason === BLOCKED_REASON) return;
    const probe = this.statuses.has(event.status);
    this.check('ip', event.clientIp, probe, now, report);
    const kind = principalSource(event);
    if (kind !== undefined) this.check(kind, event.principal!.id, probe, now, report);
  }

  private check(kind: SourceKind, id: string, probe: boolean, now: number, report: (f: Finding) => void) {
    const state = this.tables.get(kind, id);
    state.total.add(now);
    if (probe) state.probes.add(now);
    const total = state.total.value(now);
    const probes = state.probes.value(now);
    const { ratio, minRequests, severity, windowMs } = this.settings;
    if (state.active) {
      if (total < minRequests * CLEAR_RATIO || probes < total * ratio * CLEAR_RATIO) state.active = false;
      return;
    }
    if (total < minRequests || probes < total * ratio) return;
    state.active = true;
    const share = Math.round((probes / total) * 100);
    report(
      finding(
        this.name,
        severity,
        kind,
        id,
        `${share}% of ${Math.round(total)} requests by ${DESCRIBE[kind]} ${safeId(id)} within ${formatDuration(windowMs)} were answered ${this.settings.statuses.join(' or ')}: ids or paths are being enumerated.`,
        {
          requests: Math.round(total),
          probes: Math.round(probes),
          ratio: round(probes / total),
          threshold_ratio: ratio,
          window: formatDuration(windowMs),
        },
      ),
    );
  }

  tracked(): Record<string, number> {
    return this.tables.sizes();
  }
}

/** An id-looking last path segment: digits, a UUID, or a token with a digit in it. */
const ID_LIKE = /^(?:\d+|[0-9a-fA-F-]{32,36}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)$/;

/**
 * The object a request addressed: `objectId` when the gateway provides it
 * (the route's path parameters), otherwise the canonical path's last segment
 * when it looks like an id, on a matched route only.
 */
export function objectIdOf(event: ObservedRequest): string | undefined {
  if (event.objectId !== undefined) return event.objectId === '' ? undefined : event.objectId;
  if (event.route === undefined) return undefined;
  const slash = event.path.lastIndexOf('/');
  const last = event.path.slice(slash + 1);
  return last.length > 0 && last.length <= 200 && ID_LIKE.test(last) ? last : undefined;
}

class DistinctEpisode {
  active = false;
  constructor(readonly ids: DistinctEstimate) {}
}

/**
 * BOLA scraping: one principal (or, unauthenticated, one IP) reading many
 * distinct objects in a short time. Ids are counted per route, so `/orders/7`
 * and `/invoices/7` are two objects.
 */
export class ScrapingDetector implements Detector {
  readonly name = 'scraping';
  private readonly tables: SourceTables<DistinctEpisode>;

  constructor(
    private readonly settings: AnomalySettings['detectors']['scraping'],
    maxSources: number,
    options: Options,
  ) {
    const bits = distinctBits(settings.threshold);
    this.tables = new SourceTables(
      maxSources,
      options,
      () => new DistinctEpisode(new DistinctEstimate(bits, settings.windowMs)),
    );
  }

  observe(event: ObservedRequest, now: number, report: (f: Finding) => void): void {
    if (event.reason === BLOCKED_REASON) return;
    const objectId = objectIdOf(event);
    if (objectId === undefined) return;
    const kind = principalSource(event) ?? 'ip';
    const id = kind === 'ip' ? event.clientIp : event.principal!.id;
    const state = this.tables.get(kind, id);
    const added = state.ids.add(hashString(objectId, hashString(event.route ?? '')), now);
    if (!added && !state.active) return;
    const distinct = state.ids.estimate(now);
    const { threshold, severity, windowMs } = this.settings;
    if (state.active) {
      if (distinct < threshold * CLEAR_RATIO) state.active = false;
      return;
    }
    if (distinct < threshold) return;
    state.active = true;
    report(
      finding(
        this.name,
        severity,
        kind,
        id,
        `${DESCRIBE[kind]} ${safeId(id)} requested about ${Math.round(distinct)} distinct objects within ${formatDuration(windowMs)}: possible scraping of other users' objects (BOLA).`,
        { distinct_objects: Math.round(distinct), threshold, window: formatDuration(windowMs) },
      ),
    );
  }

  tracked(): Record<string, number> {
    return this.tables.sizes();
  }
}

/** Repeated injection attempts or invalid input from one source. */
export class InjectionDetector implements Detector {
  readonly name = 'injection';
  private readonly tables: SourceTables<CountEpisode>;
  private readonly reasons: ReadonlySet<string>;

  constructor(
    private readonly settings: AnomalySettings['detectors']['injection'],
    maxSources: number,
    options: Options,
  ) {
    this.reasons = new Set(settings.reasons);
    this.tables = new SourceTables(maxSources, options, () => new CountEpisode(settings.windowMs));
  }

  observe(event: ObservedRequest, now: number, report: (f: Finding) => void): void {
    if (!this.reasons.has(event.reason)) return;
    this.count('ip', event.clientIp, now, report);
    const kind = principalSource(event);
    if (kind !== undefined) this.count(kind, event.principal!.id, now, report);
  }

  private count(kind: SourceKind, id: string, now: number, report: (f: Finding) => void): void {
    const state = this.tables.get(kind, id);
    const { threshold, windowMs, severity } = this.settings;
    if (!state.hit(now, threshold)) return;
    const rejections = Math.round(state.count.value(now));
    report(
      finding(
        this.name,
        severity,
        kind,
        id,
        `${rejections} requests from ${DESCRIBE[kind]} ${safeId(id)} rejected as injection attempts or invalid input within ${formatDuration(windowMs)}.`,
        { rejections, threshold, window: formatDuration(windowMs) },
      ),
    );
  }

  tracked(): Record<string, number> {
    return this.tables.sizes();
  }
}

const UPSTREAM_FAILURES: ReadonlySet<string> = new Set(['upstream.unavailable', 'upstream.timeout']);

/**
 * The whole gateway: total traffic against its own baseline (subject
 * `gateway:traffic`), and the share of upstream calls failing (subject
 * `gateway:upstream_errors`). An upstream call is a request that reached the
 * upstream (`upstreamMs` set) or failed to (`upstream.*`); a failure is
 * `upstream.unavailable`, `upstream.timeout`, or a 5xx from the upstream.
 */
export class GatewaySpikeDetector implements Detector {
  readonly name = 'gateway_spike';
  private readonly traffic = new RateBaseline();
  private readonly params: RateParams;
  private readonly calls: SlidingCount;
  private readonly errors: SlidingCount;
  private errorsActive = false;

  constructor(private readonly settings: AnomalySettings['detectors']['gateway_spike']) {
    this.params = rateParams(settings);
    this.calls = new SlidingCount(settings.errorWindowMs);
    this.errors = new SlidingCount(settings.errorWindowMs);
  }

  observe(event: ObservedRequest, now: number, report: (f: Finding) => void): void {
    const { severity } = this.settings;
    if (this.traffic.observe(now, this.params)) {
      const rate = this.traffic.count / (this.params.intervalMs / 1000);
      const baseline = this.traffic.baseline;
      report(
        finding(
          this.name,
          severity,
          'gateway',
          'traffic',
          `Gateway traffic reached ${round(rate)}/s, ${baseline > 0 ? `${round(rate / baseline, 1)}× its baseline of ${round(baseline, 2)}/s` : 'from a baseline of ~0'}.`,
          {
            rate_per_second: round(rate),
            baseline_per_second: round(baseline, 3),
            factor: this.settings.factor,
            interval: formatDuration(this.params.intervalMs),
          },
        ),
      );
    }
    const failed = UPSTREAM_FAILURES.has(event.reason);
    if (!failed && event.upstreamMs === undefined) return;
    this.calls.add(now);
    if (failed || event.status >= 500) this.errors.add(now);
    const calls = this.calls.value(now);
    const errors = this.errors.value(now);
    const { errorRatio, minUpstreamRequests, errorWindowMs } = this.settings;
    if (this.errorsActive) {
      if (calls < minUpstreamRequests * CLEAR_RATIO || errors < calls * errorRatio * CLEAR_RATIO) {
        this.errorsActive = false;
      }
      return;
    }
    if (calls < minUpstreamRequests || errors < calls * errorRatio) return;
    this.errorsActive = true;
    report(
      finding(
        this.name,
        severity,
        'gateway',
        'upstream_errors',
        `${Math.round((errors / calls) * 100)}% of ${Math.round(calls)} upstream calls failed within ${formatDuration(errorWindowMs)}.`,
        {
          calls: Math.round(calls),
          errors: Math.round(errors),
          ratio: round(errors / calls),
          threshold_ratio: errorRatio,
          window: formatDuration(errorWindowMs),
        },
      ),
    );
  }

  tracked(): Record<string, number> {
    return { gateway: 1 };
  }
}
