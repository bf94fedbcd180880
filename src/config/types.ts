/** The compiled, frozen configuration the gateway runs on: units parsed, references resolved. */

export interface CorsSettings {
  anyOrigin: boolean;
  origins: ReadonlySet<string>;
  allowMethods: string;
  /** Lower-cased request header names allowed cross-origin. */
  allowHeaders: readonly string[];
  exposeHeaders: string;
  credentials: boolean;
  maxAgeSeconds: number;
}

export interface RouteSettings {
  /** Position in the config's `routes` list. */
  index: number;
  name: string;
  /** The path template as written (`/users/{id}`). */
  template: string;
  /** The same template in the router's syntax (`/users/:id`). */
  routerPath: string;
  params: readonly string[];
  /** Accepted methods; HEAD is added wherever GET is. */
  methods: readonly string[];
  upstream: string;
  auth: 'none' | 'required';
  /** Bytes; Infinity when the route opts out of a limit. */
  bodyLimit: number;
  cacheControl: string;
  cors: CorsSettings | undefined;
}

export interface UpstreamSettings {
  name: string;
  /** `scheme://host:port`. */
  origin: string;
  /** Prepended to every request path; empty or `/base` without a trailing slash. */
  basePath: string;
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

export interface ListenSettings {
  host: string;
  port: number;
  trustedProxies: readonly string[];
  maxHeaderBytes: number;
  maxHeaders: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

export interface GatewayConfig {
  /** Absolute path of the file this was loaded from. */
  file: string;
  mode: 'development' | 'production';
  listen: ListenSettings;
  admin: { enabled: boolean; host: string; port: number };
  store: { url: string | undefined; dataDir: string };
  log: { level: string; access: boolean; redact: readonly string[] };
  upstreams: Readonly<Record<string, UpstreamSettings>>;
  routes: readonly RouteSettings[];
}
