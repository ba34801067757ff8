/**
 * Who may decide a request, and when (DESIGN.md rule 7). The checks run in the order of
 * {@link DECISION_STEPS}, against the request as locked in the deciding transaction; the first that
 * fails refuses the decision. That the caller holds the approver role on an undelegated token is the
 * broker's check before any of these (src/broker/bearer.ts `requireApprover`).
 */
import type { AuditLineage } from '../audit/event.ts';
import { BatonError } from '../errors.ts';
import type { RevocationView } from '../revocation/view.ts';
import type { Approval } from './approval.ts';

/** The approver deciding: the subject and lineage of their (undelegated) Baton token. */
export interface Approver {
  subject: string;
  lineage: AuditLineage;
  tokenId?: string;
}

export type Verdict = 'approve' | 'deny';

export interface DecisionContext {
  approval: Approval;
  approver: Approver;
  verdict: Verdict;
  reason: string | undefined;
  /** The revocation state: a request whose requesting chain is revoked is void. */
  revocations: Pick<RevocationView, 'firstRevoked'> | undefined;
}

/** Identities compare after Unicode compatibility folding, trimmed and case-blind: refusing more is safe. */
function sameIdentity(a: string, b: string): boolean {
  const fold = (s: string) => s.normalize('NFKC').trim().toLowerCase();
  return fold(a) === fold(b);
}

/**
 * Who in the requesting lineage `subject` is, if anyone: the requester (link 0's subject) or a
 * holder of some link (its `agent` or `delegatedTo`).
 * @example partyIn(approval.lineage, 'alice') // 'the requester'
 */
function partyIn(lineage: AuditLineage, subject: string): string | undefined {
  for (const link of lineage) {
    if (link.depth === 0 && link.subject !== undefined && sameIdentity(link.subject, subject)) return 'the requester';
    if (link.agent !== undefined && sameIdentity(link.agent, subject)) return `the requesting agent (link ${link.depth})`;
    if (link.delegatedTo !== undefined && sameIdentity(link.delegatedTo, subject)) return `a delegate in the requesting chain (link ${link.depth})`;
  }
  return undefined;
}

export interface DecisionStep {
  name: string;
  /** Throws a BatonError when the decision must not be made. */
  check(ctx: DecisionContext): void;
}

/** The checks of a decision, in order. */
export const DECISION_STEPS: readonly DecisionStep[] = [
  {
    name: 'reason',
    check({ verdict, reason }) {
      if (verdict === 'deny' && !reason?.trim()) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'a denial needs a reason');
    },
  },
  {
    name: 'approver-outside-lineage',
    check({ approval, approver }) {
      const party = partyIn(approval.lineage, approver.subject);
      if (party) {
        throw new BatonError('BATON_ERR_FORBIDDEN', `an approver may not decide a request of their own chain: you are ${party}`, {
          detail: `approver ${approver.subject} in the lineage of ${approval.id}`,
        });
      }
    },
  },
  {
    name: 'pending',
    check({ approval }) {
      if (approval.state !== 'pending') throw new BatonError('BATON_ERR_APPROVAL_CONFLICT', `the request is ${approval.state}, not pending: only a pending request can be decided`);
    },
  },
  {
    name: 'requester-not-revoked',
    check({ approval, verdict, revocations }) {
      if (verdict !== 'approve' || !revocations) return;
      const revoked = revocations.firstRevoked(approval.revocationIds);
      if (revoked) throw new BatonError('BATON_ERR_APPROVAL_CONFLICT', 'the requesting token was revoked: the request is void', { detail: `revoked id ${revoked}` });
    },
  },
];

/** Runs {@link DECISION_STEPS} in order. @throws BatonError of the first failing step */
export function checkDecision(ctx: DecisionContext): void {
  for (const step of DECISION_STEPS) step.check(ctx);
}
