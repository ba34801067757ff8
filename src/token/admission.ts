/**
 * Whether a decoded token's structure may be verified and authorized at all: the structural bounds
 * (limits.ts) and the reserved names (reserved.ts), checked before any Datalog runs. `verifyToken`
 * refuses on the first problem; `inspect` without keys reports it.
 */
import { BatonError } from '../errors.ts';
import { exceededLimit } from './limits.ts';
import { reservedNameUse } from './reserved.ts';
import type { DecodedToken } from './wire/index.ts';

/** The refusal `verifyToken` would raise for this structure, or undefined. */
export function admissionError(token: DecodedToken, textLength?: number): BatonError | undefined {
  const limit = exceededLimit(token, textLength);
  if (limit) return new BatonError('BATON_ERR_TOKEN_TOO_COMPLEX', `token refused: ${limit.message}`, { detail: limit.limit });
  const reserved = reservedNameUse(token);
  if (reserved) return new BatonError('BATON_ERR_TOKEN_RESERVED_NAME', `token refused: ${reserved}`);
  return undefined;
}

/** @throws BatonError BATON_ERR_TOKEN_TOO_COMPLEX | BATON_ERR_TOKEN_RESERVED_NAME */
export function assertAdmissible(token: DecodedToken, textLength?: number): void {
  const err = admissionError(token, textLength);
  if (err) throw err;
}
