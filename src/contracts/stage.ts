/**
 * The framework-neutral request context that every stage works on. The
 * server fills in the transport facts; stages enrich it (the principal) or
 * reject the request by throwing a GatewayError. A contract: it imports
 * only other contracts (and Node's types).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from './principal.js';
import type { HeaderView, MediaType, QueryView, RequestBody } from './request.js';

/** What a request's stages may know of its route; the rest they took from the route at build time. */
export interface RouteFacts {
  readonly name: string;
  /** Names of the path parameters, in template order. */
  readonly params: readonly string[];
  /** Bytes; Infinity when the route opts out of a limit. */
  readonly bodyLimit: number;
}

export interface RequestContext {
  /** `req_…`, or the caller's own X-Request-Id when it is well formed. */
  readonly id: string;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  /** The client's address, resolved through the trusted-proxy list. */
  readonly clientIp: string;
  readonly method: string;
  /** The canonical path: the only path the upstream ever sees. */
  readonly path: string;
  /** The query string, parsed once (`query.raw` is the string as received). */
  readonly query: QueryView;
  /** The headers, read once from the raw list (repeated singletons already refused). */
  readonly headers: HeaderView;
  /** The Content-Type, parsed once; undefined when absent. */
  readonly contentType: MediaType | undefined;
  readonly route: RouteFacts;
  /** Route parameters, decoded once by the router. */
  readonly params: Readonly<Record<string, string | undefined>>;
  principal: Principal | undefined;
  /**
   * Headers a stage sets on the upstream request (identity, tenant, a narrowed Accept), by
   * lower-case name; each replaces every line of that name the client sent.
   */
  readonly upstreamHeaders: Record<string, string>;
  /**
   * The request body, once a stage read it (`readRequestBody`): decoded and
   * bounded by the route's limit. The upstream then receives exactly these
   * bytes (a validation transform may replace them).
   */
  body: Buffer | undefined;
  /** The body parsed once by the strict parser of its kind, once a stage read it. */
  requestBody: RequestBody | undefined;
  /** The body as the validate stage typed it against the API description. */
  parsedBody: unknown;
  /** Response headers a stage adds to the client's response (e.g. RateLimit), as flat pairs. */
  readonly responseHeaders: string[];
  /** Names of shadow-mode rules that would have denied this request. */
  readonly shadowDenials: string[];
  /** The stage running now, or the one that rejected the request. */
  stage: string | undefined;
  /** When the upstream request started and ended (`performance.now()`), when it was called. */
  upstreamStartedAt: number | undefined;
  upstreamEndedAt: number | undefined;
  /** The non-secret id of a credential that failed authentication. */
  credentialId: string | undefined;
  /** The W3C `traceparent` sent upstream, once the request is proxied. */
  traceparent: string | undefined;
  /**
   * Set only when the request is explained (`portcullis explain`, a dry
   * run): stages record every rule they evaluate here, passed or failed.
   */
  readonly trail: DecisionEntry[] | undefined;
  /**
   * Set only when traces are on: each stage run, as flat triples of its
   * name, start and end (`performance.now()`; NaN when it threw).
   */
  readonly stageTimes: Array<string | number> | undefined;
}

/** One rule a stage evaluated, as `portcullis explain` shows it. */
export interface DecisionEntry {
  readonly rule: string;
  readonly pass: boolean;
  readonly detail: string;
}

/** The upstream's answer as a response filter sees it, collected whole. */
export interface UpstreamResponse {
  status: number;
  /** Lower-cased header names and values as flat pairs; filters may change them. */
  headers: string[];
  body: Buffer;
}

/**
 * The response side of a stage (pipeline steps 10–11). When `wants` returns
 * true for the upstream's status and headers, the gateway collects the body
 * (up to `limit` bytes; past it, 502 `upstream.response_too_large`) and passes it
 * through `filter` before anything is sent.
 */
export interface ResponseFilter {
  limit: number;
  wants(ctx: RequestContext, status: number, headers: readonly string[]): boolean;
  filter(ctx: RequestContext, response: UpstreamResponse): UpstreamResponse;
}

/**
 * One unit of the pipeline, built once per route at start-up. `handle`
 * returns nothing (or a promise of nothing) to let the request go on and
 * throws a GatewayError to reject it.
 */
export interface Stage {
  readonly name: string;
  handle(ctx: RequestContext): void | Promise<void>;
  /** Response-side work, when the stage has any. */
  readonly response?: ResponseFilter;
}
