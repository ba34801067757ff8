/**
 * Authorizing ONE (resource, operation) pair against a verified token (DESIGN.md rule 1). Callers
 * that touch several resources call this once per pair; a request is allowed only if every pair is.
 */
import type { Biscuit } from './biscuit.ts';
import { failedChecks, runAuthorizer } from './engine.ts';
import { dateParam } from './terms.ts';
import { AUTHORIZER_POLICY, candidatePatterns, directoryOf } from './vocabulary.ts';

export type AuthorizationResult =
  | { allow: true }
  | {
      allow: false;
      /** Index of the block whose check failed (0 = authority, 1 = first attenuation …), if one did. */
      failedBlock: number | undefined;
      reason: string;
    };

/**
 * @example authorize(verified.biscuit, 'pg:appdb/public.orders', 'read', new Date())
 * @throws BatonError BATON_ERR_SERVER when the engine keeps hitting its run limit (never a deny)
 */
export function authorize(biscuit: Biscuit, resource: string, operation: string, now: Date): AuthorizationResult {
  const params = { now: dateParam(now), resource, directory: directoryOf(resource), operation, patterns: candidatePatterns(resource), ops: [operation, '*'] };
  const failure = runAuthorizer(biscuit, AUTHORIZER_POLICY, params);
  if (!failure) return { allow: true };
  const blockCheck = failedChecks(failure).find((c) => c.Block)?.Block;
  if (blockCheck) {
    return {
      allow: false,
      failedBlock: blockCheck.block_id,
      reason: blockCheck.block_id === 0 ? 'the token has expired' : `a constraint of link ${blockCheck.block_id} forbids it`,
    };
  }
  return { allow: false, failedBlock: 0, reason: 'no right in the token grants it' };
}
