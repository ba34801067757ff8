/**
 * What the standalone proxy's metrics are fed from, without reaching into the relay: every statement
 * decision and outcome passes through the audit writer (DESIGN.md rule 6), so a thin wrapper around
 * it counts decisions, times commits and records upstream latency; revocation and key-set freshness
 * are timed around their fetches.
 */
import type { AuditWriter } from '../../audit/writer.ts';
import { denyReason, type Metrics } from '../../broker/metrics.ts';
import { RemoteKeySet } from '../pg/keyset.ts';
import type { RevocationSource } from '../../revocation/set.ts';

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

/** A revocation source that remembers when its last successful fetch started. */
export function timedRevocationSource(source: RevocationSource, now: () => number = Date.now): { source: RevocationSource; ageSeconds(): number | undefined } {
  let lastOk: number | undefined;
  return {
    async source(cursor) {
      const started = now();
      const page = await source(cursor);
      lastOk = Math.max(lastOk ?? 0, started);
      return page;
    },
    ageSeconds: () => (lastOk === undefined ? undefined : (now() - lastOk) / 1000),
  };
}

/**
 * The broker key set, polled (see RemoteKeySet), that also knows how old its last good refresh is:
 * a refresh that ended without a `keys.refresh_failed` event succeeded.
 */
export class TimedRemoteKeySet extends RemoteKeySet {
  #lastOk: number | undefined;
  #failures = 0;

  constructor(url: string, opts: ConstructorParameters<typeof RemoteKeySet>[1] = {}) {
    const log = opts.log;
    let self: TimedRemoteKeySet | undefined;
    super(url, {
      ...opts,
      log: (e) => {
        if (e.event === 'keys.refresh_failed' && self) self.#failures++;
        log?.(e);
      },
    });
    self = this;
  }

  override async refresh(): Promise<void> {
    const started = Date.now();
    const failuresBefore = this.#failures;
    await super.refresh();
    if (this.#failures === failuresBefore && this.staleReason() === undefined) this.#lastOk = Math.max(this.#lastOk ?? 0, started);
  }

  /** Seconds since the last successful refresh started; undefined before the first. */
  ageSeconds(): number | undefined {
    return this.#lastOk === undefined ? undefined : (Date.now() - this.#lastOk) / 1000;
  }
}
