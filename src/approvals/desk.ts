/**
 * The contract between the proxy (which holds a statement that needs approval) and the approvals
 * store. The proxy asks `admit` for every held statement; the broker's `/v1/approvals` endpoints
 * decide. DESIGN.md rule 7: an approval is bound to the requesting chain (its last block's
 * revocation id) and the exact statement (SQL text + parameter values), single-use, and expires.
 */
import type { AuditLineage } from '../audit/event.ts';

/** What one approval is bound to. */
export interface ApprovalBinding {
  /** Revocation id (hex) of the LAST block of the requesting token: a parent's or sibling's approval never fits. */
  revocationId: string;
  /** SHA-256 hex of the exact statement: SQL text, and for the extended protocol the Bind parameter values. */
  statementHash: string;
}

/** A statement the proxy holds for approval. */
export interface ApprovalRequestInput {
  binding: ApprovalBinding;
  /** Every revocation id of the requesting chain (root first): a revoked one voids the request and its approval. */
  revocationIds: readonly string[];
  /** Upstream name (`appdb`). */
  upstream: string;
  /** The exact statement, shown to approvers (they must see what they approve); bounded to 100 kB. */
  statement: string;
  /** The statement with literals replaced (as in the audit). */
  normalized: string;
  accesses: readonly { resource: string; operation: string }[];
  /** Names of the policy/token rules that require approval, e.g. `unqualified-delete`, `token:delete`. */
  rules: readonly string[];
  /** The requesting chain as the audit records it (subject, agent, delegates, purposes). */
  lineage: AuditLineage;
  tokenId?: string;
}

export type AdmitResult =
  /** An approved, unused, unexpired approval with exactly this binding was found and is now used. */
  | { state: 'approved'; id: string; approver: string }
  /** No usable approval: a pending request exists (created now, or an earlier identical one). */
  | { state: 'pending'; id: string; url: string }
  /** The latest request for this binding was denied (and has not expired): the denial stands. */
  | { state: 'denied'; id: string; reason: string };

export interface ApprovalDesk {
  /**
   * Consume a usable approval for `input.binding`, atomically (two sessions racing for one approval:
   * exactly one wins), or return the pending request for it, creating one (and notifying) if none.
   * Rejects when the store is unreachable: the caller refuses the statement (fail closed).
   */
  admit(input: ApprovalRequestInput): Promise<AdmitResult>;
}
