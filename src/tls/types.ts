/** The compiled, frozen TLS settings (`compileTls` makes them from the config). Paths are absolute. */
import type { TlsProfileName } from './tls-options.js';

/** One certificate the public listener can present. */
export interface CertificateSource {
  /** PEM file: the certificate first, then its intermediates. */
  cert: string;
  /** PEM file with the private key, encrypted or not. */
  key: string;
  /** The key's passphrase, already resolved from its `${env:…}` / `${file:…}` reference. */
  passphrase: string | undefined;
  /** SNI names it is served for (`api.example.com`, `*.example.com`); undefined: the certificate's DNS names. */
  names: readonly string[] | undefined;
}

/** How a verified client certificate becomes a principal id. */
export type PrincipalMapping = 'fingerprint' | 'subject' | 'san';

export type ClientAuthMode = 'off' | 'optional' | 'required';

export interface ClientAuthSettings {
  /** The listener's own mode: `required` refuses the handshake without a valid certificate. */
  mode: ClientAuthMode;
  /** Whether the handshake asks for a certificate at all (listener mode, or any route with `mtls`). */
  request: boolean;
  /** CA files the handshake verifies against: the listener's and every route's. */
  caFiles: readonly string[];
  principal: PrincipalMapping;
  /** `required`: access tokens must be bound to the certificate (RFC 8705 `cnf.x5t#S256`); `if_present`: only bound tokens are checked. */
  tokenBinding: 'if_present' | 'required';
}

export interface HstsSettings {
  maxAgeSeconds: number;
  includeSubdomains: boolean;
  preload: boolean;
}

/** The `Strict-Transport-Security` value (RFC 6797 §6.1); sent on HTTPS responses only. */
export function hstsHeaderValue(hsts: HstsSettings): string {
  return `max-age=${hsts.maxAgeSeconds}${hsts.includeSubdomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}`;
}

/** HTTP/2 on the TLS listener (`listen.tls.http2`), with the limits that bound the known HTTP/2 attacks. */
export interface Http2Settings {
  /** SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, bytes (also bounds CONTINUATION floods). */
  maxHeaderListSize: number;
  /** Streams reset before their response, per connection per second, before GOAWAY (rapid reset). */
  maxResetsPerSecond: number;
  /** PING and SETTINGS frames per connection per second, before GOAWAY. */
  maxControlFramesPerSecond: number;
  /** Node's `maxSessionMemory`, in megabytes. */
  maxSessionMemoryMb: number;
  /** A connection with no frame for this long is closed. */
  idleTimeoutMs: number;
  /** A stream with no frame for this long is reset. */
  streamIdleTimeoutMs: number;
}

export interface TlsListenerSettings {
  certificates: readonly CertificateSource[];
  profile: TlsProfileName;
  handshakeTimeoutMs: number;
  sessionTickets: boolean;
  ticketKeyRotationMs: number;
  /** How long before a certificate's expiry the logs start warning. */
  expiryWarningMs: number;
  /** Reload when the certificate, key or CA files change. */
  watch: boolean;
  clientAuth: ClientAuthSettings;
  /** Undefined: no Strict-Transport-Security header. */
  hsts: HstsSettings | undefined;
  /** Undefined: HTTP/1.1 only (ALPN offers http/1.1 alone). */
  http2: Http2Settings | undefined;
  /**
   * What to do with a self-signed certificate or one from the development CA:
   * `allow` (development), `warn` (production with allow_insecure.self_signed:
   * logged at every start and reload), `refuse` (production).
   */
  selfSigned: 'allow' | 'warn' | 'refuse';
}

export interface RedirectSettings {
  host: string;
  port: number;
  /**
   * The port put in the Location (443 is left out); default: listen.port.
   * 0 (listen.port 0, in tests) means the port the HTTPS listener bound: the
   * runtime puts that in.
   */
  httpsPort: number;
  /** Every redirect goes to this host; undefined: the request's own Host, when it is well formed. */
  canonicalHost: string | undefined;
}

export interface RouteMtlsSettings {
  /** `required`: the route refuses a request without a verified client certificate. */
  mode: 'required' | 'optional';
  /** CA files this route accepts certificates from; empty: any the listener accepts. */
  caFiles: readonly string[];
}

export interface UpstreamTlsSettings {
  /** Verify the certificate chain and the host name. */
  verify: boolean;
  /** CA bundle file replacing the system roots; undefined: Node's bundled roots. */
  caFile: string | undefined;
  /** Accepted SHA-256 hashes (base64) of the server's SubjectPublicKeyInfo; empty: no pinning. */
  pinSha256: readonly string[];
  clientCertFile: string | undefined;
  clientKeyFile: string | undefined;
  clientKeyPassphrase: string | undefined;
  /** SNI and the name the certificate must match; undefined: the URL's host. */
  servername: string | undefined;
}

export interface TlsSettings {
  /** Undefined: the public listener speaks plain HTTP. */
  listener: TlsListenerSettings | undefined;
  /** Undefined: no plain-HTTP listener. */
  redirect: RedirectSettings | undefined;
  allowInsecure: { tlsDisabled: boolean; selfSigned: boolean };
  /** For every https:// upstream, by name. */
  upstreams: Readonly<Record<string, UpstreamTlsSettings>>;
  /** Per route, in config order; undefined where the route has no `mtls`. */
  routes: readonly (RouteMtlsSettings | undefined)[];
}
