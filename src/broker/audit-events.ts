/** Audit events the broker itself produces (token exchange, key rotation). */
import type { AuditEventInput } from '../audit/event.ts';
import type { BatonError } from '../errors.ts';
import type { ExchangeResult } from './exchange.ts';

export function exchangeGranted(r: ExchangeResult): AuditEventInput {
  return {
    source: 'broker',
    action: 'token.exchange',
    decision: 'allow',
    reason: `granted by policy rule(s) ${r.grant.rules.join(', ')}`.slice(0, 1024),
    tokenId: r.tokenId,
    lineage: [
      {
        depth: 0,
        subject: r.subject.subject,
        issuer: r.subject.issuer,
        agent: r.agent,
        constraints: {
          resources: [...new Set(r.grant.rights.map((x) => x.resource))].slice(0, 256),
          operations: [...new Set(r.grant.rights.map((x) => x.operation))].slice(0, 64),
          expiresAt: r.expiresAt.toISOString(),
        },
        revocationId: r.revocationId,
      },
    ],
  };
}

export function exchangeDenied(error: BatonError): AuditEventInput {
  return { source: 'broker', action: 'token.exchange', decision: 'deny', reason: `${error.code}: ${error.message}`.slice(0, 1024), lineage: [] };
}
