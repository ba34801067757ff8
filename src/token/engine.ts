/**
 * Running a biscuit-wasm authorizer over a verified token, with the library's traps handled once
 * (DESIGN.md): errors are plain objects, a RunLimit is never a decision, the authorizer must be freed.
 */
import { BatonError, describe } from '../errors.ts';
import type { Biscuit } from './biscuit.ts';

/**
 * Limits for checks and policies. Rules (which biscuit-wasm runs under a fixed 1 ms budget whatever
 * we pass) are not part of our vocabulary; joins are bounded structurally before we get here
 * (limits.ts), because the engine does not enforce its time limit inside one.
 */
const LIMITS = { max_facts: 10_000, max_iterations: 100, max_time_micro: 50_000 };

/** How often a run that hit the engine's run limit is tried (a fresh run each time). */
const ATTEMPTS = 3;

/** One failed check, as biscuit-wasm reports it. */
export interface FailedCheck {
  Block?: { block_id: number; check_id: number; rule: string };
  Authorizer?: { check_id: number; rule: string };
}

/** The logic failure of a run: which checks failed, and whether a policy matched. */
export interface LogicFailure {
  Unauthorized?: { checks?: FailedCheck[] };
  NoMatchingPolicy?: { checks?: FailedCheck[] };
}

/**
 * Runs `code` (with `params`) against `biscuit`. Returns undefined when authorized, the logic failure
 * otherwise.
 *
 * @throws BatonError BATON_ERR_SERVER for anything but a logic failure, and when the engine keeps
 *   hitting its run limit: biscuit-wasm runs rules under a fixed 1 ms budget, which a cold engine, a
 *   GC pause or CPU contention can exceed; that is never a deny (nor an allow).
 */
export function runAuthorizer(biscuit: Biscuit, code: string, params: Record<string, unknown>): LogicFailure | undefined {
  for (let attempt = 1; ; attempt++) {
    const outcome = runOnce(biscuit, code, params);
    if (outcome !== RUN_LIMIT) return outcome;
    if (attempt >= ATTEMPTS) throw new BatonError('BATON_ERR_SERVER', 'authorization engine ran out of time');
  }
}

/** The checks a logic failure names. */
export function failedChecks(failure: LogicFailure): FailedCheck[] {
  return failure.Unauthorized?.checks ?? failure.NoMatchingPolicy?.checks ?? [];
}

const RUN_LIMIT = Symbol('RunLimit');

function runOnce(biscuit: Biscuit, code: string, params: Record<string, unknown>): LogicFailure | undefined | typeof RUN_LIMIT {
  const authorizer = biscuit.getAuthorizer();
  try {
    authorizer.addCodeWithParameters(code, params, {});
    authorizer.authorizeWithLimits(LIMITS);
    return undefined;
  } catch (err) {
    if ((err as { RunLimit?: unknown })?.RunLimit !== undefined) return RUN_LIMIT;
    const logic = (err as { FailedLogic?: LogicFailure })?.FailedLogic;
    // format errors, …: a server-side problem, never a silent deny or allow
    if (!logic) throw new BatonError('BATON_ERR_SERVER', 'authorization engine error', { detail: describe(err) });
    return logic;
  } finally {
    authorizer.free();
  }
}
