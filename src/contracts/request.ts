/**
 * The one parsed view of a request (DESIGN.md, "One reading of the
 * request"). Steps 1–3 of the pipeline build it; every later stage reads it
 * and nothing else. This file is a contract: it imports nothing.
 */

export type Pair = readonly [name: string, value: string];

/** The query string under the gateway's one grammar (see `src/request/query.ts`). */
export interface QueryView {
  /** The raw query string as received, without `?`. */
  readonly raw: string;
  /** Decoded pairs in order. */
  readonly pairs: readonly Pair[];
  /** Every value an upstream may bind to `name`, under every spelling (`name[]`, `NAME`, `a;name=`). */
  values(name: string): string[];
  /** The spellings of `name` present other than `name` itself. */
  spellings(name: string): string[];
}

/**
 * The request headers as received, read once from the raw header list.
 * Names are lower case. Headers whose names contain `_` are not in the
 * view and never forwarded (they alias `-` names in CGI/WSGI upstreams).
 */
export interface HeaderView {
  /** The value of a header that appears once; the first value otherwise (singletons are refused when repeated). */
  get(name: string): string | undefined;
  /** Every value of a header, in order. */
  all(name: string): readonly string[];
  /** Every (name, value) pair in order. */
  readonly pairs: readonly Pair[];
}

/** A Content-Type parsed once: its essence (lower case) and parameters (names lower case). */
export interface MediaType {
  readonly essence: string;
  readonly parameters: Readonly<Record<string, string>>;
}

/** How the gateway reads a body, by its media type. */
export type BodyKind = 'json' | 'form' | 'multipart' | 'xml' | 'text' | 'binary';

/** One value of a form or multipart body. */
export interface BodyField {
  readonly name: string;
  /** The value; for a file part, the file's name is in `filename` and the value is its content as text. */
  readonly value: string;
  readonly filename?: string | undefined;
}

/** A leaf of an XML body: the element path (`@attr` for attributes) and its decoded text. */
export interface XmlLeaf {
  readonly path: readonly string[];
  readonly text: string;
}

/**
 * A request body, read whole once (within the route's limit), decoded
 * (Content-Encoding removed) and parsed once by the strict parser of its
 * kind. The upstream receives exactly `bytes`.
 */
export type RequestBody =
  | { readonly kind: 'none'; readonly bytes: Buffer }
  | { readonly kind: 'json'; readonly bytes: Buffer; readonly value: unknown }
  | { readonly kind: 'form' | 'multipart'; readonly bytes: Buffer; readonly fields: readonly BodyField[] }
  | { readonly kind: 'xml'; readonly bytes: Buffer; readonly leaves: readonly XmlLeaf[] }
  | { readonly kind: 'text'; readonly bytes: Buffer; readonly text: string }
  /** A body of a kind the gateway cannot parse, or one that failed its kind's parser: read as raw text. */
  | {
      readonly kind: 'raw';
      readonly bytes: Buffer;
      readonly text: string;
      /** The kind its media type declares. */
      readonly declared: BodyKind;
      /** Why its kind's parser refused it (`/body/items/0` `json`); undefined for a kind the gateway does not parse. */
      readonly problem: BodyProblem | undefined;
    };

/** Where and why a body failed its parser: a JSON pointer under `/body` and a rule name. */
export interface BodyProblem {
  readonly location: string;
  readonly rule: string;
}

/** What steps 1–2 (bound, normalise) read of every request, before routing. */
export interface RequestHead {
  /** The canonical path: the only path the upstream ever sees. */
  readonly path: string;
  readonly query: QueryView;
  /** The query string forwarded upstream: as received, less the parameters never forwarded. */
  readonly forwardQuery: string;
  readonly headers: HeaderView;
  readonly contentType: MediaType | undefined;
}
