/**
 * One just-in-time approval request as the store keeps it and the broker shows it: its states, its
 * id, and how a database row becomes an {@link Approval}. "expired" is never waited for: it is
 * computed from the clock whenever a row is read ({@link effectiveStateSql}).
 */
import { randomBytes } from 'node:crypto';
import type { AuditLineage } from '../audit/event.ts';

/** Every state a request can be seen in. */
export const APPROVAL_STATES = ['pending', 'approved', 'denied', 'expired', 'used'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];

/** `apr_` + 22 base64url characters (132 random bits). */
export const APPROVAL_ID = /^apr_[A-Za-z0-9_-]{22}$/;

/**
 * A fresh approval id.
 * @example newApprovalId() // 'apr_3q2-7wXk1LrVb0aZ9cQeYw'
 */
export function newApprovalId(): string {
  return `apr_${randomBytes(17).toString('base64url').slice(0, 22)}`;
}

/** One request, as the broker's `/v1/approvals` endpoints return it and the notifier receives it. */
export interface Approval {
  id: string;
  state: ApprovalState;
  /** Where an approver decides it: `${publicUrl}/v1/approvals/<id>`. */
  url: string;
  upstream: string;
  /** The exact statement (approvers must see what they approve). */
  statement: string;
  normalized: string;
  accesses: { resource: string; operation: string }[];
  rules: string[];
  /** The requesting chain (subject, agent, delegates, purposes). */
  lineage: AuditLineage;
  tokenId?: string;
  /** The binding: the requesting chain's last block and the statement's SHA-256. */
  revocationId: string;
  statementHash: string;
  /** Every revocation id of the requesting chain, root first. */
  revocationIds: string[];
  createdAt: string;
  /** When the pending request expires (and until when a denial binds its statement). */
  expiresAt: string;
  decidedAt?: string;
  /** The approver's subject. */
  decidedBy?: string;
  reason?: string;
  /** An approval may be used once until then. */
  approvedUntil?: string;
  usedAt?: string;
}

/** The columns every read selects; `$1` is the clock (timestamptz). */
export const APPROVAL_COLUMNS = `id, ${effectiveStateSql('$1')} AS state, upstream, statement, normalized, accesses, rules, lineage,
  token_id, revocation_id, statement_hash, revocation_ids, created_at, expires_at, decided_at, decided_by, reason,
  approved_until, used_at`;

/**
 * The state as of `now` (a SQL expression over the row): a pending request past its expiry, or an
 * approval past `approved_until` and unused, is expired.
 */
function effectiveStateSql(now: string): string {
  return `CASE WHEN state = 'pending' AND expires_at <= ${now} THEN 'expired'
    WHEN state = 'approved' AND approved_until <= ${now} THEN 'expired' ELSE state END`;
}

export interface ApprovalRow {
  id: string;
  state: ApprovalState;
  upstream: string;
  statement: string;
  normalized: string;
  accesses: { resource: string; operation: string }[];
  rules: string[];
  lineage: AuditLineage;
  token_id: string | null;
  revocation_id: string;
  statement_hash: string;
  revocation_ids: string[];
  created_at: Date;
  expires_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  reason: string | null;
  approved_until: Date | null;
  used_at: Date | null;
}

/** A row (selected with {@link APPROVAL_COLUMNS}) as an {@link Approval}. */
export function approvalFromRow(row: ApprovalRow, publicUrl: string): Approval {
  const iso = (d: Date | null) => (d ? d.toISOString() : undefined);
  const optional = <K extends string, V>(key: K, value: V | null | undefined) => (value === null || value === undefined ? {} : ({ [key]: value } as Record<K, V>));
  return {
    id: row.id,
    state: row.state,
    url: approvalUrl(publicUrl, row.id),
    upstream: row.upstream,
    statement: row.statement,
    normalized: row.normalized,
    accesses: row.accesses,
    rules: row.rules,
    lineage: row.lineage,
    ...optional('tokenId', row.token_id),
    revocationId: row.revocation_id,
    statementHash: row.statement_hash,
    revocationIds: row.revocation_ids,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    ...optional('decidedAt', iso(row.decided_at)),
    ...optional('decidedBy', row.decided_by),
    ...optional('reason', row.reason),
    ...optional('approvedUntil', iso(row.approved_until)),
    ...optional('usedAt', iso(row.used_at)),
  };
}

/**
 * Where an approver reviews and decides a request.
 * @example approvalUrl('https://baton.example.com/', 'apr_…') // 'https://baton.example.com/v1/approvals/apr_…'
 */
function approvalUrl(publicUrl: string, id: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/v1/approvals/${id}`;
}

/** The requesting subject and the names of its delegates, in chain order (for summaries). */
export function requestParties(lineage: AuditLineage): { subject: string | undefined; delegates: string[] } {
  const root = lineage.find((l) => l.depth === 0);
  const delegates = lineage.filter((l) => l.depth > 0 && l.delegatedTo !== undefined).map((l) => l.delegatedTo!);
  return { subject: root?.subject, delegates };
}
