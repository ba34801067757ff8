/**
 * Flood limits of `POST /v1/revoke`. Revocation by possession needs no login, and anyone holding a
 * token can mint children offline without end, so without limits one token could fill the list (which
 * every proxy holds in memory). Three locks:
 *
 * 1. per client address: revoke calls per window (SharedState fixed window, shared by every broker);
 * 2. per lineage (the authority token id every child carries, else the first revocation id): calls
 *    per window;
 * 3. per lineage: at most `maxOutstandingPerLineage` unexpired rows (PostgreSQL, `revokeBounded`).
 *    Revoking the issued token itself (the lineage root) is always accepted and replaces the rest.
 *
 * Over a limit: 429 BATON_ERR_RATE_LIMITED with Retry-After. If the limiter's store (Redis) is down,
 * revocations proceed (logged): refusing to revoke is the unsafe side, and lock 3 still bounds them.
 */
import { BatonError } from '../errors.ts';
import type { SharedState } from '../store/shared-state.ts';

export interface RevocationLimits {
  /** Revoke calls per client address per window. */
  perAddress: number;
  /** Revoke calls per token lineage per window. */
  perLineage: number;
  /** Unexpired revocation rows one lineage may hold (its root's own revocation is always accepted). */
  maxOutstandingPerLineage: number;
  windowSeconds: number;
}

export const DEFAULT_REVOCATION_LIMITS: RevocationLimits = {
  perAddress: 120,
  perLineage: 30,
  maxOutstandingPerLineage: 100,
  windowSeconds: 60,
};

/** The rate-limited error, with the seconds for Retry-After in `detail` (`retry-after=N`). */
export function revocationRateLimited(what: string, retryAfter: number): BatonError {
  return new BatonError('BATON_ERR_RATE_LIMITED', `too many revocations ${what}; retry after ${retryAfter} s`, { detail: `retry-after=${retryAfter}` });
}

/** Seconds to send as Retry-After for a rate-limited error, if it is one. */
export function retryAfterOf(err: unknown): number | undefined {
  if (!(err instanceof BatonError) || err.code !== 'BATON_ERR_RATE_LIMITED') return undefined;
  const m = /retry-after=(\d+)/.exec(err.detail ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Counts one revoke call against each given key. @throws BatonError BATON_ERR_RATE_LIMITED
 * @example await hitRevocationLimits(state, { address: request.ip }, limits, log);
 */
export async function hitRevocationLimits(
  state: SharedState,
  keys: { address?: string; lineage?: string },
  limits: RevocationLimits,
  log?: (event: Record<string, unknown>) => void,
): Promise<void> {
  const checks: [string, string, number][] = [];
  if (keys.address !== undefined) checks.push(['from this address', `revoke:addr:${keys.address}`, limits.perAddress]);
  if (keys.lineage !== undefined) checks.push(["for this token's lineage", `revoke:lineage:${keys.lineage}`, limits.perLineage]);
  let results;
  try {
    results = await Promise.all(checks.map(([, key, limit]) => state.hit(key, limit, limits.windowSeconds)));
  } catch (err) {
    log?.({ event: 'revocation.limiter_unavailable', error: err instanceof Error ? err.message : String(err) });
    return;
  }
  results.forEach((r, i) => {
    if (!r.allowed) throw revocationRateLimited(checks[i]![0], r.retryAfter);
  });
}
