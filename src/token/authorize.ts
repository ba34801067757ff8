/**
 * Authorizing ONE (resource, operation) pair against a verified token (DESIGN.md rule 1). Callers
 * that touch several resources call this once per pair; a request is allowed only if every pair is.
 */
import { BatonError, describe } from '../errors.ts';
import type { Biscuit } from './biscuit.ts';
import { dateParam } from './terms.ts';
import { AUTHORIZER_POLICY, candidatePatterns } from './vocabulary.ts';

export type AuthorizationResult =
  | { allow: true }
  | {
      allow: false;
      /** Index of the block whose check failed (0 = authority, 1 = first attenuation …), if one did. */
      failedBlock: number | undefined;
      reason: string;
    };

/**
 * Limits for checks and policies. Rules (which biscuit-wasm runs under a fixed 1 ms budget whatever
 * we pass) are not part of our vocabulary.
 */
const LIMITS = { max_facts: 10_000, max_iterations: 100, max_time_micro: 50_000 };

/**
 * @example authorize(verified.biscuit, 'pg:appdb/public.orders', 'read', new Date())
 * @throws BatonError BATON_ERR_SERVER when the engine keeps hitting its run limit (never a deny)
 */
export function authorize(biscuit: Biscuit, resource: string, operation: string, now: Date): AuthorizationResult {
  // biscuit-wasm runs rules under a fixed 1 ms budget; a cold engine, a GC pause or CPU contention can
  // exceed it. A RunLimit is never a decision: try again (a fresh run), then report a server error.
  for (let attempt = 1; ; attempt++) {
    try {
      return authorizeOnce(biscuit, resource, operation, now);
    } catch (err) {
      if (!(err instanceof RunLimitError) || attempt >= 3) {
        throw err instanceof RunLimitError ? new BatonError('BATON_ERR_SERVER', 'authorization engine ran out of time', { detail: err.message }) : err;
      }
    }
  }
}

class RunLimitError extends Error {}

function authorizeOnce(biscuit: Biscuit, resource: string, operation: string, now: Date): AuthorizationResult {
  const authorizer = biscuit.getAuthorizer();
  try {
    authorizer.addCodeWithParameters(
      AUTHORIZER_POLICY,
      {
        now: dateParam(now),
        resource,
        operation,
        patterns: candidatePatterns(resource),
        ops: [operation, '*'],
      },
      {},
    );
    authorizer.authorizeWithLimits(LIMITS);
    return { allow: true };
  } catch (err) {
    return denial(err);
  } finally {
    authorizer.free();
  }
}

interface FailedCheck {
  Block?: { block_id: number; check_id: number; rule: string };
  Authorizer?: { check_id: number; rule: string };
}

/** Maps biscuit-wasm's thrown plain objects to a decision; anything but a logic failure is an error. */
function denial(err: unknown): AuthorizationResult {
  const logic = (err as { FailedLogic?: { Unauthorized?: { checks?: FailedCheck[] }; NoMatchingPolicy?: { checks?: FailedCheck[] } } })
    ?.FailedLogic;
  if ((err as { RunLimit?: unknown })?.RunLimit !== undefined) throw new RunLimitError(describe(err));
  if (!logic) {
    // format errors, …: a server-side problem, never a silent deny or allow.
    throw new BatonError('BATON_ERR_SERVER', 'authorization engine error', { detail: describe(err) });
  }
  const checks = logic.Unauthorized?.checks ?? logic.NoMatchingPolicy?.checks ?? [];
  const blockCheck = checks.find((c) => c.Block)?.Block;
  if (blockCheck) {
    return {
      allow: false,
      failedBlock: blockCheck.block_id,
      reason: blockCheck.block_id === 0 ? 'the token has expired' : `a constraint of link ${blockCheck.block_id} forbids it`,
    };
  }
  return { allow: false, failedBlock: 0, reason: 'no right in the token grants it' };
}
