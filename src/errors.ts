/**
 * One error hierarchy for Baton. Every failure a caller can see has a stable `code` from the registry
 * below, which also fixes how it surfaces: the HTTP status (+ RFC 6749 `error` for the token
 * endpoint) and the PostgreSQL SQLSTATE used by the proxy. `test/errors.test.ts` keeps the registry,
 * README and openapi.yaml in step.
 *
 * The `message` is safe to show the caller; `detail` is internal (logged, never sent).
 */

/** code → how the error surfaces. Keep sorted by area. */
export const ERROR_REGISTRY = {
  // request shape
  BATON_ERR_INVALID_REQUEST: { http: 400, oauth: 'invalid_request', sqlstate: '08P01' },
  BATON_ERR_UNSUPPORTED_GRANT_TYPE: { http: 400, oauth: 'unsupported_grant_type', sqlstate: '08P01' },
  BATON_ERR_UNSUPPORTED_MEDIA_TYPE: { http: 415, oauth: 'invalid_request', sqlstate: '08P01' },
  BATON_ERR_PAYLOAD_TOO_LARGE: { http: 413, oauth: 'invalid_request', sqlstate: '54000' },
  BATON_ERR_RATE_LIMITED: { http: 429, oauth: 'temporarily_unavailable', sqlstate: '53400' },
  BATON_ERR_NOT_FOUND: { http: 404, oauth: 'invalid_request', sqlstate: '42704' },
  // OIDC subject/actor tokens
  BATON_ERR_OIDC_INVALID: { http: 400, oauth: 'invalid_grant', sqlstate: '28000' },
  BATON_ERR_OIDC_EXPIRED: { http: 400, oauth: 'invalid_grant', sqlstate: '28000' },
  BATON_ERR_OIDC_UNKNOWN_ISSUER: { http: 400, oauth: 'invalid_grant', sqlstate: '28000' },
  BATON_ERR_OIDC_AUDIENCE: { http: 400, oauth: 'invalid_grant', sqlstate: '28000' },
  BATON_ERR_OIDC_ALGORITHM: { http: 400, oauth: 'invalid_grant', sqlstate: '28000' },
  BATON_ERR_OIDC_JWKS_UNAVAILABLE: { http: 503, oauth: 'temporarily_unavailable', sqlstate: '08006' },
  // grant policy
  BATON_ERR_POLICY_NO_MATCH: { http: 400, oauth: 'unauthorized_client', sqlstate: '28000' },
  BATON_ERR_POLICY_INVALID_TARGET: { http: 400, oauth: 'invalid_target', sqlstate: '42501' },
  BATON_ERR_POLICY_INVALID_SCOPE: { http: 400, oauth: 'invalid_scope', sqlstate: '42501' },
  // Baton tokens
  BATON_ERR_TOKEN_MALFORMED: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  BATON_ERR_TOKEN_SIGNATURE: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  BATON_ERR_TOKEN_UNKNOWN_KEY: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  BATON_ERR_TOKEN_EXPIRED: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  BATON_ERR_TOKEN_REVOKED: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  // a non-authority block exceeds a structural bound (src/token/limits.ts), or defines a reserved name
  BATON_ERR_TOKEN_TOO_COMPLEX: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  BATON_ERR_TOKEN_RESERVED_NAME: { http: 401, oauth: 'invalid_token', sqlstate: '28P01' },
  BATON_ERR_TOKEN_SEALED: { http: 400, oauth: 'invalid_request', sqlstate: '42501' },
  BATON_ERR_ATTENUATION_WIDENS: { http: 400, oauth: 'invalid_request', sqlstate: '42501' },
  BATON_ERR_UNAUTHENTICATED: { http: 401, oauth: 'invalid_token', sqlstate: '28000' },
  BATON_ERR_FORBIDDEN: { http: 403, oauth: 'insufficient_scope', sqlstate: '42501' },
  // data path
  BATON_ERR_SQL_UNPARSABLE: { http: 400, oauth: 'invalid_request', sqlstate: '42501' },
  BATON_ERR_SQL_UNSUPPORTED: { http: 400, oauth: 'invalid_request', sqlstate: '42501' },
  BATON_ERR_REVOCATION_STALE: { http: 503, oauth: 'temporarily_unavailable', sqlstate: '57P03' },
  BATON_ERR_STORE_UNAVAILABLE: { http: 503, oauth: 'temporarily_unavailable', sqlstate: '57P03' },
  BATON_ERR_AUDIT_UNAVAILABLE: { http: 503, oauth: 'temporarily_unavailable', sqlstate: '57P03' },
  BATON_ERR_AUDIT_REJECTED: { http: 400, oauth: 'invalid_request', sqlstate: '42501' },
  BATON_ERR_UPSTREAM_UNAVAILABLE: { http: 502, oauth: 'temporarily_unavailable', sqlstate: '08006' },
  BATON_ERR_UPSTREAM_TIMEOUT: { http: 504, oauth: 'temporarily_unavailable', sqlstate: '57014' },
  BATON_ERR_METHOD_NOT_ALLOWED: { http: 405, oauth: 'invalid_request', sqlstate: '0A000' },
  // native credentials (src/credentials/): not configured / STS unreachable; STS refused; the token cannot be expressed
  BATON_ERR_CREDENTIALS_UNAVAILABLE: { http: 503, oauth: 'temporarily_unavailable', sqlstate: '08006' },
  BATON_ERR_CREDENTIALS_REFUSED: { http: 502, oauth: 'temporarily_unavailable', sqlstate: '08006' },
  BATON_ERR_CREDENTIALS_UNREPRESENTABLE: { http: 422, oauth: 'invalid_request', sqlstate: '42501' },
  // just-in-time approvals: the request is not pending (decided, used, expired) or its requester was revoked
  BATON_ERR_APPROVAL_CONFLICT: { http: 409, oauth: 'invalid_request', sqlstate: '55000' },
  // everything unexpected
  BATON_ERR_SERVER: { http: 500, oauth: 'server_error', sqlstate: 'XX000' },
} as const satisfies Record<string, { http: number; oauth: string; sqlstate: string }>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

/** The base of every Baton domain error; switch on `code`. */
export class BatonError extends Error {
  override readonly name = 'BatonError';
  readonly code: ErrorCode;
  /** Internal detail for logs; never sent to a caller. */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, options: { detail?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.detail = options.detail;
  }

  get http(): number {
    return ERROR_REGISTRY[this.code].http;
  }
  get oauth(): string {
    return ERROR_REGISTRY[this.code].oauth;
  }
  get sqlstate(): string {
    return ERROR_REGISTRY[this.code].sqlstate;
  }
}

/** Anything not a BatonError becomes a generic server error (its detail stays internal). */
export function asBatonError(err: unknown): BatonError {
  if (err instanceof BatonError) return err;
  return new BatonError('BATON_ERR_SERVER', 'internal error', { detail: describe(err), cause: err });
}

/** biscuit-wasm throws plain objects (`{"FailedLogic": …}`); render anything readably for logs. */
export function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
