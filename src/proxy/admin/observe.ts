/**
 * What the standalone proxy's statement metrics are fed from, without reaching into the relay: every
 * statement decision and outcome passes through the audit writer (DESIGN.md rule 6), so a thin
 * wrapper around it counts decisions, times commits and records upstream latency. (Revocation and
 * key-set freshness come from the RevocationSet and RemoteKeySet themselves: `ageSeconds()`.)
 */
import type { AuditWriter } from '../../audit/writer.ts';
import { denyReason, type Metrics } from '../../broker/metrics.ts';

/**
 * The same writer, observed: `baton_proxy_statements_total` (statement entries: allowed once
 * durable, denied by reason class; an allowed entry that fails is a `audit_unavailable` denial — the
 * relay refuses or withholds that statement), `baton_audit_commit_seconds` and
 * `baton_proxy_upstream_seconds` (outcomes' duration).
 */
export function observedAuditWriter(audit: AuditWriter, metrics: Metrics): AuditWriter {
  return {
    append(event) {
      const started = performance.now();
      const statement = event.source === 'proxy-pg' && event.action === 'statement';
      if (statement && event.decision === 'deny') metrics.statements.inc({ decision: 'denied', reason: denyReason(event.reason) });
      const receipt = audit.append(event);
      receipt.then(
        () => {
          metrics.auditCommitSeconds.observe((performance.now() - started) / 1000);
          if (statement && event.decision === 'allow') metrics.statements.inc({ decision: 'allowed', reason: '' });
        },
        () => {
          if (statement && event.decision === 'allow') metrics.statements.inc({ decision: 'denied', reason: 'audit_unavailable' });
        },
      );
      return receipt;
    },
    recordOutcome(receipt, outcome) {
      if (typeof outcome.durationMs === 'number') metrics.upstreamSeconds.observe(outcome.durationMs / 1000);
      return audit.recordOutcome(receipt, outcome);
    },
    health: () => audit.health(),
    close: () => audit.close(),
  };
}
