/**
 * The RFC 8693 token-exchange request (§2.1), as a zod schema: the single source for validation and
 * for the openapi description. Form-encoded per the RFC; JSON accepted too.
 */
import { z } from 'zod';
import { parseDuration } from '../policy/duration.ts';
import { GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_BATON } from '../sdk/protocol.ts';

// shared with the SDK (which must not import server code), so they live in a neutral module
export { GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_BATON };
export const OIDC_TOKEN_TYPES = [
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:id_token',
  'urn:ietf:params:oauth:token-type:access_token',
] as const;

/** Repeated form fields arrive as arrays; single ones as strings. */
const stringList = z
  .union([z.string().max(512), z.array(z.string().max(512)).max(32)])
  .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(' ')).filter(Boolean));

const lifetime = z.union([z.string().max(16), z.number()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

export const TokenExchangeRequest = z
  .object({
    grant_type: z.string(),
    // no max here: the body limit bounds it, and the OIDC verifier answers an oversized token with
    // invalid_grant ("too large"), like any other unusable grant
    subject_token: z.string().min(1),
    subject_token_type: z.enum(OIDC_TOKEN_TYPES),
    actor_token: z.string().min(1).optional(),
    actor_token_type: z.enum(OIDC_TOKEN_TYPES).optional(),
    resource: stringList.optional(),
    audience: stringList.optional(),
    scope: stringList.optional(),
    requested_token_type: z.literal(TOKEN_TYPE_BATON).optional(),
    /** Requested lifetime: seconds or `30s`/`5m`/`2h`; clamped to the policy maximum. */
    requested_lifetime: lifetime.optional(),
  })
  .refine((r) => !r.actor_token === !r.actor_token_type, {
    message: 'actor_token and actor_token_type go together (RFC 8693 §2.1)',
    path: ['actor_token_type'],
  });

export type TokenExchangeRequest = z.output<typeof TokenExchangeRequest>;

export const TokenExchangeResponse = z.object({
  access_token: z.string(),
  issued_token_type: z.literal(TOKEN_TYPE_BATON),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  scope: z.string().optional(),
});
export type TokenExchangeResponse = z.infer<typeof TokenExchangeResponse>;
