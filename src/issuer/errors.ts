/**
 * Errors of the built-in issuer meant for operators (start-up failures, CLI
 * messages). They never reach an API client: the endpoints answer with
 * OAuth error objects instead.
 */

/** Stable codes of {@link IssuerError}. */
export type IssuerErrorCode =
  /** The master key is not 32 bytes of base64. */
  | 'issuer.invalid_master_key'
  /** The master key cannot decrypt the stored signing keys (AES-GCM authentication failed). */
  | 'issuer.master_key_mismatch'
  /** A client's name, scopes or tenant is not acceptable. */
  | 'issuer.invalid_client_input'
  /** No stored signing key can be used to sign. */
  | 'issuer.no_signing_key';

/** An issuer failure with a stable code and a message that is safe to print (never key material). */
export class IssuerError extends Error {
  override readonly name = 'IssuerError';

  constructor(
    readonly code: IssuerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
