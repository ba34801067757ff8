/**
 * Configuration of the OIDC issuers whose tokens the broker accepts as RFC 8693 subject tokens.
 *
 * Closed (strict) zod schemas: an unknown key is a typo, and a typo in security configuration must
 * stop the boot rather than be silently ignored. All defaults live here.
 */
import { z } from 'zod';
import { deepFreeze } from './deep-freeze.ts';

/**
 * Asymmetric JWS algorithms an issuer entry may allow. Symmetric `HS*` is excluded because the broker
 * would have to share the secret with the issuer (and it enables key-confusion attacks when a public
 * key is fed to HMAC); `none` is excluded for the obvious reason.
 */
export const OIDC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

/** One allowed JWS algorithm. */
export type OidcAlgorithm = (typeof OIDC_ALGORITHMS)[number];

/** The defaults, in one place. */
export const OIDC_DEFAULTS = {
  algorithms: ['RS256', 'ES256', 'EdDSA', 'PS256'] as OidcAlgorithm[],
  clockSkewSeconds: 30,
  maxClockSkewSeconds: 300,
  claims: { subject: 'sub', agent: ['client_id', 'azp'], groups: 'groups' },
} as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** https everywhere; plain http only on loopback (the dev issuer and tests), where nothing can intercept it. */
function isSecureOrLoopback(value: string): boolean {
  const url = URL.parse(value);
  if (!url) return true; // reported by the URL check itself
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

const httpsUrl = (what: string) =>
  z
    .url({ error: `${what} must be an absolute URL` })
    .refine(isSecureOrLoopback, { error: `${what} must use https (http is allowed only for loopback hosts)` });

const algorithm = z.enum(OIDC_ALGORITHMS, {
  error: (issue) =>
    typeof issue.input === 'string' && (/^HS/i.test(issue.input) || issue.input.toLowerCase() === 'none')
      ? `algorithm ${JSON.stringify(issue.input)} is not allowed: symmetric (HS*) and "none" algorithms are rejected; use one of ${OIDC_ALGORITHMS.join(', ')}`
      : `unknown algorithm ${JSON.stringify(issue.input)}; expected one of ${OIDC_ALGORITHMS.join(', ')}`,
});

const claimName = z.string().min(1, { error: 'claim name must not be empty' });

/** Which token claims become which parts of the Baton identity. */
export const OidcClaimMappingSchema = z.strictObject({
  /** Claim holding the subject (the human or service the agent acts for). */
  subject: claimName.default(OIDC_DEFAULTS.claims.subject),
  /** Claim(s) naming the agent (OAuth client); the first one present wins. */
  agent: z
    .union([claimName, z.array(claimName).min(1, { error: 'claims.agent must list at least one claim' })])
    .transform((v) => (typeof v === 'string' ? [v] : v))
    .default([...OIDC_DEFAULTS.claims.agent]),
  /** Claim holding the groups: an array of strings or a single string. */
  groups: claimName.default(OIDC_DEFAULTS.claims.groups),
});

/**
 * One trusted issuer.
 *
 * @example
 * ```ts
 * OidcIssuerSchema.parse({ issuer: 'https://idp.example.com', audiences: ['https://baton.example.com'] });
 * ```
 */
export const OidcIssuerSchema = z.strictObject({
  /** Must equal the tokens' `iss` claim exactly (OIDC Core §2), and the discovery document's `issuer`. */
  issuer: httpsUrl('issuer').refine((v) => !URL.parse(v)?.search && !URL.parse(v)?.hash, {
    error: 'issuer must not contain a query or fragment (OpenID Connect Discovery §2)',
  }),
  /** Accepted `aud` values; a token must name at least one. */
  audiences: z
    .array(z.string().min(1, { error: 'audience must not be empty' }))
    .min(1, { error: 'audiences must list at least one audience' }),
  algorithms: z
    .array(algorithm)
    .min(1, { error: 'algorithms must list at least one algorithm' })
    .default([...OIDC_DEFAULTS.algorithms]),
  /** JWKS location; when absent it is read from `<issuer>/.well-known/openid-configuration`. */
  jwksUri: httpsUrl('jwksUri').optional(),
  claims: OidcClaimMappingSchema.prefault({}),
  clockSkewSeconds: z
    .number()
    .int({ error: 'clockSkewSeconds must be an integer' })
    .min(0, { error: 'clockSkewSeconds must not be negative' })
    .max(OIDC_DEFAULTS.maxClockSkewSeconds, {
      error: `clockSkewSeconds must be at most ${OIDC_DEFAULTS.maxClockSkewSeconds}`,
    })
    .default(OIDC_DEFAULTS.clockSkewSeconds),
});

/** The list of trusted issuers; each issuer may appear once. */
export const OidcIssuersSchema = z.array(OidcIssuerSchema).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((entry, i) => {
    if (seen.has(entry.issuer)) {
      ctx.addIssue({ code: 'custom', path: [i, 'issuer'], message: `duplicate issuer ${entry.issuer}` });
    }
    seen.add(entry.issuer);
  });
});

/** An issuer entry as written in configuration (defaults optional). */
export type OidcIssuerInput = z.input<typeof OidcIssuerSchema>;
/** An issuer entry after validation, with every default applied. */
export type OidcIssuerConfig = z.output<typeof OidcIssuerSchema>;

/**
 * Validate issuer entries, apply defaults and freeze the result.
 *
 * @throws TypeError with every problem listed (path and reason), e.g.
 *   `invalid OIDC issuer configuration:\n✖ algorithm "HS256" is not allowed … → at [0].algorithms[0]`.
 * @example
 * ```ts
 * const issuers = parseOidcIssuers(yaml.parse(text).oidc.issuers);
 * ```
 */
export function parseOidcIssuers(input: unknown): readonly OidcIssuerConfig[] {
  const result = OidcIssuersSchema.safeParse(input);
  if (!result.success) {
    throw new TypeError(`invalid OIDC issuer configuration:\n${z.prettifyError(result.error)}`);
  }
  return Object.freeze(result.data.map((entry) => deepFreeze(entry)));
}
