/**
 * A gate session wrapped to observe its decisions, for the admin wrappers (session-log.ts,
 * session-registry.ts). Counts are decisions: an allowed statement that runs (Query, Execute — a
 * Parse alone runs nothing) and a denial at any phase; a throw of the inner check is a denial (fail
 * closed) and is rethrown. `closed` runs once, after the inner session closed.
 */
import type { CheckResult, GateSession, SessionControl } from '../pg/gate.ts';

export interface SessionObserver {
  decided(allowed: boolean): void;
  closed(): void;
  attached?(control: SessionControl): void;
}

export function countedSession(inner: GateSession, observer: SessionObserver): GateSession {
  let ended = false;
  const failed = (err: unknown): never => {
    observer.decided(false);
    throw err;
  };
  return {
    upstream: inner.upstream,
    ...(inner.limitKey !== undefined ? { limitKey: inner.limitKey } : {}),
    check(sql, phase, context) {
      const count = (r: CheckResult): CheckResult => {
        if (!r.allow) observer.decided(false);
        else if (phase !== 'parse') observer.decided(true);
        return r;
      };
      let r: CheckResult | Promise<CheckResult>;
      try {
        r = inner.check(sql, phase, context);
      } catch (err) {
        return failed(err);
      }
      return r instanceof Promise ? r.then(count, failed) : count(r);
    },
    ...(inner.outcome ? { outcome: (ticket: unknown, outcome) => inner.outcome!(ticket, outcome) } : {}),
    close() {
      if (ended) return;
      ended = true;
      try {
        inner.close?.();
      } finally {
        observer.closed();
      }
    },
    attach(control) {
      observer.attached?.(control);
      inner.attach?.(control);
    },
  };
}
