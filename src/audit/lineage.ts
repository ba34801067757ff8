/** The token's lineage in the audit event's shape (constraints grouped; ids, never tokens). */
import type { LineageLink as TokenLink } from '../token/lineage.ts';
import type { LineageLink as AuditLink } from './event.ts';

export function toAuditLineage(links: readonly TokenLink[]): AuditLink[] {
  return links.map((l) => ({
    depth: l.depth,
    ...(l.subject !== undefined ? { subject: l.subject } : {}),
    ...(l.issuer !== undefined ? { issuer: l.issuer } : {}),
    ...(l.agent !== undefined ? { agent: l.agent } : {}),
    ...(l.delegatedTo !== undefined ? { delegatedTo: l.delegatedTo } : {}),
    ...(l.purpose !== undefined ? { purpose: l.purpose } : {}),
    constraints: {
      ...(l.resources ? { resources: l.resources } : {}),
      ...(l.operations ? { operations: l.operations } : {}),
      ...(l.expiresAt ? { expiresAt: l.expiresAt } : {}),
      ...(l.requireApproval ? { requireApproval: l.requireApproval } : {}),
    },
    revocationId: l.revocationId,
  }));
}
