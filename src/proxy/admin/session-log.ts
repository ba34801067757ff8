/**
 * One summary line per client session, when it ends:
 *
 *   {"event":"pg.session.end","database":"appdb","remote":"10.0.0.7","lineageRoot":"0190…","allowed":12,"denied":1,"durationMs":5312} session ended
 *
 * `lineageRoot` is the session's per-token key (the authority token id its lineage descends from:
 * attenuated children share it), the key to `baton audit tree`. Counts are decisions: allowed
 * statements that run (Query, Execute — a Parse alone runs nothing) and denials at any phase.
 * Never a token, SQL text or resource name.
 *
 * @example
 * createPgProxy({ gate: loggedSessions(gate, logger), … });
 */
import type { SessionGate } from '../pg/gate.ts';
import { countedSession } from './counted-session.ts';
import type { ProxyLogger } from '../pg/log.ts';

export function loggedSessions(gate: SessionGate, logger: ProxyLogger, now: () => number = Date.now): SessionGate {
  return {
    async authenticate(req) {
      const result = await gate.authenticate(req);
      if (!result.ok) return result;
      const inner = result.session;
      const started = now();
      let allowed = 0;
      let denied = 0;
      const session = countedSession(inner, {
        decided: (ok) => (ok ? allowed++ : denied++),
        closed: () =>
          logger.info(
            {
              event: 'pg.session.end',
              database: req.database,
              remote: req.remoteAddress,
              ...(inner.limitKey !== undefined ? { lineageRoot: inner.limitKey } : {}),
              allowed,
              denied,
              durationMs: now() - started,
            },
            'session ended',
          ),
      });
      return { ok: true, session };
    },
  };
}
