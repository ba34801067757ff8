/**
 * Verification of the OIDC tokens (ID tokens or RFC 9068 JWT access tokens) that agents present as
 * the `subject_token` of the broker's RFC 8693 token exchange.
 *
 * Order of checks (cheap and offline first, so garbage never costs a network round trip):
 *   size → compact-JWS shape → trusted `iss` → allowed `alg` → key from the issuer's JWKS (discovery,
 *   cached; jose refetches on an unknown `kid`) → signature + `aud`/`exp`/`nbf` (jose) → `iat` not in
 *   the future → claim mapping.
 *
 * Every failure is a `BatonError` whose `message` is safe to return to the caller; what went wrong
 * internally (URLs, library messages, offending values) goes to `detail` only.
 */
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { BatonError, describe, type ErrorCode } from '../errors.ts';
import { deepFreeze } from './deep-freeze.ts';
import { parseOidcIssuers, type OidcIssuerConfig, type OidcIssuerInput } from './config.ts';

/** Tokens larger than this are rejected before any parsing (a JWT is a few hundred bytes to a few KiB). */
export const MAX_OIDC_TOKEN_BYTES = 16 * 1024;

/** Who presented the token, in Baton's terms. */
export interface Identity {
  /** The configured issuer URL (equal to the token's `iss`). */
  readonly issuer: string;
  /** The subject claim (by default `sub`). */
  readonly subject: string;
  /** The agent / OAuth client (by default `client_id`, else `azp`), when the token names one. */
  readonly clientId?: string;
  /** Groups from the groups claim; empty when absent. */
  readonly groups: readonly string[];
  /** The whole verified claim set (frozen), for grant policies that look at other claims. */
  readonly claims: Readonly<JWTPayload>;
}

/** Tuning for network behaviour; the defaults suit production. */
export interface OidcVerifierOptions {
  /** Timeout of each discovery / JWKS request. Default 5000 ms. */
  httpTimeoutMs?: number;
  /** How long a discovery document is reused. Default 1 hour. */
  discoveryMaxAgeMs?: number;
  /** Minimum time between two JWKS refetches triggered by an unknown `kid`. Default 30 s (jose's). */
  jwksCooldownMs?: number;
  /** How long a JWKS is trusted without refetching. Default 10 min (jose's). */
  jwksMaxAgeMs?: number;
  /** The clock, for tests. Default `() => new Date()`. */
  now?: () => Date;
}

/** Verifies OIDC tokens against the configured issuers. */
export interface OidcVerifier {
  /**
   * Verify a compact JWT and map it to an {@link Identity}.
   *
   * @throws BatonError `BATON_ERR_OIDC_*` (see docs/oidc.md for the mapping).
   * @throws TypeError when `jwt` is not a string (caller bug, not a credential failure).
   */
  verify(jwt: string): Promise<Identity>;
}

const DEFAULT_OPTIONS = {
  httpTimeoutMs: 5_000,
  discoveryMaxAgeMs: 60 * 60 * 1000,
  jwksCooldownMs: 30_000,
  jwksMaxAgeMs: 10 * 60 * 1000,
  now: () => new Date(),
} satisfies Required<OidcVerifierOptions>;

/** Three base64url segments; the signature may be empty only for `alg: none`, rejected later as such. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Create a verifier for the given issuers. No network I/O happens until the first `verify()`.
 *
 * @param issuers issuer entries (validated with `OidcIssuersSchema`; defaults applied).
 * @throws TypeError when the issuer configuration is invalid.
 * @example
 * ```ts
 * const oidc = createOidcVerifier([{ issuer: 'https://idp.example.com', audiences: ['https://baton.example.com'] }]);
 * const identity = await oidc.verify(subjectToken); // { issuer, subject, clientId, groups, claims }
 * ```
 */
export function createOidcVerifier(
  issuers: readonly (OidcIssuerInput | OidcIssuerConfig)[],
  opts: OidcVerifierOptions = {},
): OidcVerifier {
  const options = { ...DEFAULT_OPTIONS, ...opts };
  const byIssuer = new Map(parseOidcIssuers(issuers).map((cfg) => [cfg.issuer, cfg]));
  const keys = new KeySource(options);

  return {
    async verify(jwt: string): Promise<Identity> {
      if (typeof jwt !== 'string') throw new TypeError('OIDC token must be a string');
      // Length in UTF-16 units ≥ bytes for the ASCII a valid JWT consists of; non-ASCII fails the shape check.
      if (jwt.length > MAX_OIDC_TOKEN_BYTES) {
        throw fail('BATON_ERR_OIDC_INVALID', 'OIDC token is too large', `length ${jwt.length} > ${MAX_OIDC_TOKEN_BYTES}`);
      }
      const { header, payload } = decodeUnverified(jwt);

      const cfg = typeof payload.iss === 'string' ? byIssuer.get(payload.iss) : undefined;
      if (!cfg) {
        throw fail('BATON_ERR_OIDC_UNKNOWN_ISSUER', 'OIDC token issuer is not trusted', `iss=${clip(payload.iss)}`);
      }
      // Checked before any key lookup: `none`, HS256 key confusion and algorithms outside the
      // issuer's list are refused without touching the network.
      if (typeof header.alg !== 'string' || !(cfg.algorithms as readonly string[]).includes(header.alg)) {
        throw fail(
          'BATON_ERR_OIDC_ALGORITHM',
          'OIDC token signing algorithm is not allowed',
          `alg=${clip(header.alg)} allowed=${cfg.algorithms.join(',')} issuer=${cfg.issuer}`,
        );
      }

      const now = options.now();
      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(jwt, keys.getKeyFor(cfg), {
          issuer: cfg.issuer,
          audience: cfg.audiences,
          algorithms: cfg.algorithms,
          clockTolerance: cfg.clockSkewSeconds,
          requiredClaims: ['exp'],
          currentDate: now,
        }));
      } catch (err) {
        throw mapJoseError(err, cfg);
      }
      // jose checks `iat` only together with maxTokenAge; a token issued in the future is as
      // suspicious as one with `nbf` in the future (clock skew or forgery), so refuse it too.
      if (typeof claims.iat === 'number' && claims.iat > now.getTime() / 1000 + cfg.clockSkewSeconds) {
        throw fail('BATON_ERR_OIDC_INVALID', 'OIDC token is not yet valid (issued in the future)', `iat=${claims.iat}`);
      }
      return toIdentity(cfg, claims);
    },
  };
}

/** Discovery documents and remote JWK sets, cached per verifier. */
class KeySource {
  readonly #opts: Required<OidcVerifierOptions>;
  readonly #discovery = new Map<string, { jwksUri: Promise<string>; at: number }>();
  readonly #jwks = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

  constructor(opts: Required<OidcVerifierOptions>) {
    this.#opts = opts;
  }

  /**
   * A jose key resolver for one issuer. Failures to *obtain* keys become JWKS_UNAVAILABLE here;
   * failures to *match* a key (jose's own verdicts about the token) pass through unchanged.
   */
  getKeyFor(cfg: OidcIssuerConfig): JWTVerifyGetKey {
    return async (header, token) => {
      const jwksUri = cfg.jwksUri ?? (await this.#discover(cfg.issuer));
      let jwks = this.#jwks.get(jwksUri);
      if (!jwks) {
        jwks = createRemoteJWKSet(new URL(jwksUri), {
          timeoutDuration: this.#opts.httpTimeoutMs,
          cooldownDuration: this.#opts.jwksCooldownMs,
          cacheMaxAge: this.#opts.jwksMaxAgeMs,
        });
        this.#jwks.set(jwksUri, jwks);
      }
      try {
        return await jwks(header, token);
      } catch (err) {
        if (
          err instanceof joseErrors.JWKSNoMatchingKey ||
          // carries an async iterator of candidate keys that jwtVerify tries in turn
          err instanceof joseErrors.JWKSMultipleMatchingKeys ||
          err instanceof joseErrors.JOSENotSupported
        ) {
          throw err;
        }
        throw unavailable(cfg.issuer, `JWKS ${jwksUri}: ${describe(err)}`, err);
      }
    };
  }

  /** `jwks_uri` from the issuer's discovery document; concurrent callers share one request. */
  #discover(issuer: string): Promise<string> {
    const cached = this.#discovery.get(issuer);
    if (cached && Date.now() - cached.at < this.#opts.discoveryMaxAgeMs) return cached.jwksUri;
    const jwksUri = this.#fetchDiscovery(issuer);
    this.#discovery.set(issuer, { jwksUri, at: Date.now() });
    // A failure is not cached: the next token retries (jose's cooldown does not apply to discovery).
    jwksUri.catch(() => {
      if (this.#discovery.get(issuer)?.jwksUri === jwksUri) this.#discovery.delete(issuer);
    });
    return jwksUri;
  }

  async #fetchDiscovery(issuer: string): Promise<string> {
    // OpenID Connect Discovery §4: strip a trailing slash, then append the well-known path.
    const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      const res = await fetch(url, {
        headers: { accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#opts.httpTimeoutMs),
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      doc = await res.json();
    } catch (err) {
      throw unavailable(issuer, `discovery ${url}: ${describe(err)}`, err);
    }
    const meta = doc as { issuer?: unknown; jwks_uri?: unknown } | null;
    // §4.3: the document's issuer must be identical to the one we asked, or it speaks for someone else.
    if (meta?.issuer !== issuer) {
      throw unavailable(issuer, `discovery ${url}: issuer mismatch (${clip(meta?.issuer)})`);
    }
    if (typeof meta.jwks_uri !== 'string' || !URL.canParse(meta.jwks_uri)) {
      throw unavailable(issuer, `discovery ${url}: missing or invalid jwks_uri`);
    }
    return meta.jwks_uri;
  }
}

/** Parse header and payload without verifying anything, so we can pick the issuer and check `alg`. */
function decodeUnverified(jwt: string): { header: { alg?: unknown }; payload: JWTPayload } {
  if (!COMPACT_JWS.test(jwt)) {
    throw fail('BATON_ERR_OIDC_INVALID', 'OIDC token is malformed', 'not a compact JWS (three base64url segments)');
  }
  try {
    return { header: decodeProtectedHeader(jwt), payload: decodeJwt(jwt) };
  } catch (err) {
    throw fail('BATON_ERR_OIDC_INVALID', 'OIDC token is malformed', describe(err), err);
  }
}

/** jose's verdicts → Baton codes with a message that names the problem but no internals. */
function mapJoseError(err: unknown, cfg: OidcIssuerConfig): BatonError {
  if (err instanceof BatonError) return err;
  const detail = `issuer=${cfg.issuer}: ${describe(err)}`;
  const e = joseErrors;
  if (err instanceof e.JWTExpired) {
    return fail('BATON_ERR_OIDC_EXPIRED', 'OIDC token has expired', detail, err);
  }
  if (err instanceof e.JWTClaimValidationFailed) {
    if (err.claim === 'aud') {
      return fail('BATON_ERR_OIDC_AUDIENCE', 'OIDC token audience is not accepted by this broker', detail, err);
    }
    if (err.claim === 'iss') {
      return fail('BATON_ERR_OIDC_UNKNOWN_ISSUER', 'OIDC token issuer is not trusted', detail, err);
    }
    if (err.reason === 'missing') {
      return fail('BATON_ERR_OIDC_INVALID', `OIDC token lacks the required "${err.claim}" claim`, detail, err);
    }
    if (err.claim === 'nbf' || err.claim === 'iat') {
      return fail('BATON_ERR_OIDC_INVALID', 'OIDC token is not yet valid', detail, err);
    }
    return fail('BATON_ERR_OIDC_INVALID', 'OIDC token claims are invalid', detail, err);
  }
  if (err instanceof e.JOSEAlgNotAllowed || err instanceof e.JOSENotSupported) {
    return fail('BATON_ERR_OIDC_ALGORITHM', 'OIDC token signing algorithm is not allowed', detail, err);
  }
  if (err instanceof e.JWSSignatureVerificationFailed) {
    return fail('BATON_ERR_OIDC_INVALID', 'OIDC token signature is invalid', detail, err);
  }
  if (err instanceof e.JWKSNoMatchingKey) {
    // After jose's refetch the issuer still does not publish this kid: as good as a bad signature.
    return fail('BATON_ERR_OIDC_INVALID', 'OIDC token is signed with a key the issuer does not publish', detail, err);
  }
  if (err instanceof e.JOSEError) {
    return fail('BATON_ERR_OIDC_INVALID', 'OIDC token is malformed', detail, err);
  }
  return new BatonError('BATON_ERR_SERVER', 'internal error', { detail, cause: err });
}

function toIdentity(cfg: OidcIssuerConfig, claims: JWTPayload): Identity {
  const subject = claims[cfg.claims.subject];
  if (typeof subject !== 'string' || subject === '') {
    throw fail(
      'BATON_ERR_OIDC_INVALID',
      `OIDC token lacks a subject ("${cfg.claims.subject}" claim)`,
      `issuer=${cfg.issuer} ${cfg.claims.subject}=${clip(subject)}`,
    );
  }
  let clientId: string | undefined;
  for (const name of cfg.claims.agent) {
    const value = claims[name];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value === '') {
      throw fail('BATON_ERR_OIDC_INVALID', `OIDC token claim "${name}" must be a string`, `${name}=${clip(value)}`);
    }
    clientId = value;
    break;
  }
  const raw = claims[cfg.claims.groups];
  const groups = raw === undefined ? [] : typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
    throw fail(
      'BATON_ERR_OIDC_INVALID',
      `OIDC token claim "${cfg.claims.groups}" must be a string or an array of strings`,
      `${cfg.claims.groups}=${clip(raw)}`,
    );
  }
  return Object.freeze({
    issuer: cfg.issuer,
    subject,
    ...(clientId === undefined ? {} : { clientId }),
    groups: Object.freeze([...groups]),
    claims: deepFreeze(structuredClone(claims)),
  });
}

function fail(code: ErrorCode, message: string, detail: string, cause?: unknown): BatonError {
  return new BatonError(code, message, { detail, cause });
}

function unavailable(issuer: string, detail: string, cause?: unknown): BatonError {
  return fail(
    'BATON_ERR_OIDC_JWKS_UNAVAILABLE',
    'the OIDC issuer signing keys are temporarily unavailable; retry later',
    `issuer=${issuer}: ${detail}`,
    cause,
  );
}

/** Caller-controlled values in `detail` are bounded and JSON-quoted (no log injection, no huge lines). */
function clip(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
