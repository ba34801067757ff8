/**
 * Publishes every client session of the Postgres proxy to the live-session registry
 * (src/sessions/registry.ts), for `GET /v1/sessions` and the console: its lineage (from the token
 * the gate has just accepted — decoded again here, never stored), upstream, statement counts and
 * last activity. A gate wrapper like session-log.ts: the wire engine and the gate are untouched.
 *
 * Counts are decisions, as in session-log.ts: allowed statements that run (Query, Execute — a Parse
 * alone runs nothing) and denials at any phase; activity is any check or outcome.
 *
 * @example
 * startPgProxy(config, { …, wrapGate: (gate) => publishedSessions(loggedSessions(gate, logger), registry) });
 */
import { toAuditLineage } from '../../audit/lineage.ts';
import type { SessionRegistry } from '../../sessions/registry.ts';
import { readLineage } from '../../token/lineage.ts';
import { decodeToken } from '../../token/wire/index.ts';
import type { CheckPhase, CheckResult, GateSession, SessionGate } from '../pg/gate.ts';

export function publishedSessions(gate: SessionGate, registry: SessionRegistry): SessionGate {
  return {
    async authenticate(req) {
      const result = await gate.authenticate(req);
      if (!result.ok) return result;
      const inner = result.session;
      let lineage;
      try {
        // the gate verified this token a moment ago: only its structure is read here
        lineage = readLineage(decodeToken(req.password.trim()));
      } catch {
        return result; // not a Baton token (another gate): nothing to publish
      }
      const last = lineage.at(-1);
      if (!last) return result;
      const published = registry.open({
        kind: 'pg',
        upstream: req.database,
        remote: req.remoteAddress,
        ...(lineage[0]?.tokenId ? { tokenId: lineage[0].tokenId } : {}),
        revocationId: last.revocationId,
        lineage: toAuditLineage(lineage),
      });
      const count = (r: CheckResult, phase: CheckPhase): CheckResult => {
        if (!r.allow) published.statement(false);
        else if (phase !== 'parse') published.statement(true);
        return r;
      };
      const failed = (err: unknown): never => {
        published.statement(false); // a throw is a denial (fail closed)
        throw err;
      };
      const session: GateSession = {
        upstream: inner.upstream,
        ...(inner.limitKey !== undefined ? { limitKey: inner.limitKey } : {}),
        check(sql, phase, context) {
          let r: CheckResult | Promise<CheckResult>;
          try {
            r = inner.check(sql, phase, context);
          } catch (err) {
            return failed(err);
          }
          return r instanceof Promise ? r.then((x) => count(x, phase), failed) : count(r, phase);
        },
        ...(inner.outcome ? { outcome: (ticket: unknown, outcome) => inner.outcome!(ticket, outcome) } : {}),
        close() {
          try {
            inner.close?.();
          } finally {
            published.close();
          }
        },
      };
      return { ok: true, session };
    },
  };
}
