/**
 * Whether a token's own checks hold now, whatever it is used for. Bearer authentication and
 * introspection do not authorize a (resource, operation) pair, so reading the expiry from lineage is
 * not enough: a hand-written check such as `check if time($t), $t <= <past date>` (any shape lineage
 * does not read as an expiry) must still make the token inactive. We run the token's checks with
 * `time(now)` and an allow-all policy; checks that only scope resources or operations fail there for
 * want of `resource`/`operation` facts, and are not failures here. Every other failed check is.
 */
import type { Biscuit } from './biscuit.ts';
import { failedChecks, runAuthorizer } from './engine.ts';
import { dateParam } from './terms.ts';
import type { Check, DecodedToken } from './wire/index.ts';

/** The facts an introspecting authorizer supplies: the time, and nothing to authorize. */
const STANDING_POLICY = 'time({now}); allow if true;';

/** Body predicates a scoping check reads: the ones the proxy supplies per request. */
const REQUEST_PREDICATES = ['resource', 'operation'];

export interface StandingFailure {
  /** 0 = authority block, 1.. = each delegation. */
  block: number;
  check: number;
  /** The failed check as Datalog. */
  rule: string;
}

/**
 * The first check of `biscuit` (verified; `decoded` is its structure) that fails at `now` and does
 * not merely scope resources/operations; undefined when none does.
 *
 * @throws BatonError BATON_ERR_SERVER when the engine cannot decide (never read as active)
 * @example if (failedStandingCheck(v.biscuit, v.decoded, new Date())) return { active: false };
 */
export function failedStandingCheck(biscuit: Biscuit, decoded: DecodedToken, now: Date): StandingFailure | undefined {
  const failure = runAuthorizer(biscuit, STANDING_POLICY, { now: dateParam(now) });
  if (!failure) return undefined;
  for (const failed of failedChecks(failure)) {
    // we add no authorizer checks, so an authorizer-level failure is not expected: count it
    if (!failed.Block) return { block: -1, check: failed.Authorizer?.check_id ?? -1, rule: failed.Authorizer?.rule ?? '' };
    const { block_id: block, check_id: check, rule } = failed.Block;
    const decodedCheck = decoded.blocks[block]?.checks[check];
    if (!decodedCheck || !onlyScopesTheRequest(decodedCheck)) return { block, check, rule };
  }
  // an allow-all policy cannot fail without a failed check; if it did, nothing says the token is usable
  if (failedChecks(failure).length === 0) return { block: -1, check: -1, rule: 'no policy matched' };
  return undefined;
}

/**
 * A `check if` every alternative of which reads only `resource`/`operation` facts: it cannot match
 * without a request, and says nothing about whether the token is usable for some request. A check
 * that mixes in anything else (`time`, another fact) counts: its answer may not depend on the request.
 */
function onlyScopesTheRequest(check: Check): boolean {
  return (
    check.kind === 'if' &&
    check.queries.every((q) => q.body.length > 0 && q.body.every((p) => REQUEST_PREDICATES.includes(p.name)))
  );
}
