/**
 * `Authorization: Bearer <Baton token>` on broker endpoints: verify the chain, refuse expired or
 * revoked tokens and tokens whose own checks fail now, and expose who is calling. Failures say one
 * generic thing to the caller; the detail goes to the log (STYLE.md 4).
 */
import type { FastifyRequest } from 'fastify';
import { BatonError, asBatonError } from '../errors.ts';
import type { RevocationView } from '../revocation/view.ts';
import type { KeyResolver } from '../token/keys.ts';
import { effectiveRights, readLineage, type EffectiveRights, type LineageLink } from '../token/lineage.ts';
import { failedStandingCheck } from '../token/standing-checks.ts';
import { verifyToken } from '../token/verify.ts';

export interface Caller {
  tokenId: string | undefined;
  lineage: LineageLink[];
  effective: EffectiveRights;
  /** Revocation ids of the caller's chain, authority first. */
  revocationIds: string[];
  /**
   * Holds the admin role from the grant policy (authority block `role("admin")`) on an UNDELEGATED
   * token: admin power does not pass through attenuation (a narrowed child must not query the whole
   * audit trail or revoke anything).
   */
  isAdmin: boolean;
  /**
   * Holds the approver role (authority block `role("approver")`) on an UNDELEGATED token: decides
   * just-in-time approvals (src/approvals/), never passed down to a child.
   */
  isApprover: boolean;
}

export interface BearerDeps {
  keys: KeyResolver;
  revocations: RevocationView;
  now?: () => Date;
}

/** Reads and checks a Baton token. @throws BatonError (401-class, or 503 when revocation state is unknown) */
export function authenticateToken(token: string, deps: BearerDeps): Caller {
  const v = verifyToken(token, deps.keys);
  try {
    const effective = effectiveRights(v.decoded);
    const now = (deps.now ?? (() => new Date()))();
    if (effective.expiresAt && now > new Date(effective.expiresAt)) throw new BatonError('BATON_ERR_TOKEN_EXPIRED', 'the token has expired');
    // the lineage expiry covers the vocabulary's form only: the token's own checks decide (e.g. a
    // hand-written time limit of another shape)
    const failed = failedStandingCheck(v.biscuit, v.decoded, now);
    if (failed) throw new BatonError('BATON_ERR_UNAUTHENTICATED', 'the token\'s own checks refuse it now', { detail: `link ${failed.block}: ${failed.rule}` });
    deps.revocations.assertCurrent();
    if (deps.revocations.firstRevoked(v.revocationIds)) throw new BatonError('BATON_ERR_TOKEN_REVOKED', 'the token has been revoked');
    const lineage = readLineage(v.decoded);
    return {
      tokenId: lineage[0]?.tokenId,
      lineage,
      effective,
      revocationIds: v.revocationIds,
      isAdmin: lineage.length === 1 && (lineage[0]?.roles?.includes('admin') ?? false),
      isApprover: lineage.length === 1 && (lineage[0]?.roles?.includes('approver') ?? false),
    };
  } finally {
    v.biscuit.free();
  }
}

/** The caller of a request, from its bearer token. */
export function authenticateRequest(request: FastifyRequest, deps: BearerDeps): Caller {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match) throw new BatonError('BATON_ERR_UNAUTHENTICATED', 'a Baton token is required: Authorization: Bearer <token>');
  try {
    return authenticateToken(match[1]!, deps);
  } catch (err) {
    const e = asBatonError(err);
    if (e.code === 'BATON_ERR_REVOCATION_STALE' || e.code === 'BATON_ERR_SERVER') throw e;
    throw new BatonError('BATON_ERR_UNAUTHENTICATED', 'the bearer token is not valid', { detail: `${e.code}: ${e.message}` });
  }
}

/** The caller, who must hold the admin role. */
export function requireAdmin(request: FastifyRequest, deps: BearerDeps): Caller {
  const caller = authenticateRequest(request, deps);
  if (!caller.isAdmin) throw new BatonError('BATON_ERR_FORBIDDEN', 'this endpoint needs the admin role from the grant policy');
  return caller;
}

/** The caller, who must hold the approver role (on an undelegated token). */
export function requireApprover(request: FastifyRequest, deps: BearerDeps): Caller {
  const caller = authenticateRequest(request, deps);
  if (!caller.isApprover) throw new BatonError('BATON_ERR_FORBIDDEN', 'this endpoint needs the approver role from the grant policy, on an undelegated token');
  return caller;
}
