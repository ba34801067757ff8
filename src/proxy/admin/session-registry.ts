/**
 * Publishes every client session of the Postgres proxy to the live-session registry
 * (src/sessions/registry.ts), for `GET /v1/sessions` and the console: its lineage (from the token
 * the gate has just accepted — decoded again here, never stored), upstream, statement counts and
 * last activity. A gate wrapper like session-log.ts: the wire engine and the gate are untouched.
 *
 * Counts are decisions, as in session-log.ts: allowed statements that run (Query, Execute — a Parse
 * alone runs nothing) and denials at any phase; activity is any check or outcome.
 *
 * Ending a session (`POST /v1/sessions/{id}/end`): the broker revokes the session token's last block,
 * then announces the session id on {@link SESSION_END_CHANNEL}; the proxy holding it ends it at once
 * with FATAL 28P01 — but only once its chain is revoked here too (a revoked token's next statement
 * would end it anyway: the announcement only spares an idle session the wait, and cannot end a
 * session whose token stands).
 *
 * @example
 * startPgProxy(config, { …, wrapGate: (gate) => publishedSessions(loggedSessions(gate, logger), registry, { state, revocations }) });
 */
import { toAuditLineage } from '../../audit/lineage.ts';
import type { RevocationView } from '../../revocation/view.ts';
import { SESSION_END_CHANNEL, type SessionRegistry } from '../../sessions/registry.ts';
import type { SharedState } from '../../store/shared-state.ts';
import { readLineage, type LineageLink } from '../../token/lineage.ts';
import { decodeToken } from '../../token/wire/index.ts';
import type { SessionControl, SessionGate } from '../pg/gate.ts';
import { countedSession } from './counted-session.ts';

/** How long an announced end waits for the revocation to arrive (it is published first). */
const END_WAIT_MS = 5_000;

export function publishedSessions(
  gate: SessionGate,
  registry: SessionRegistry,
  ending?: { state: SharedState; revocations: Pick<RevocationView, 'firstRevoked'> },
): SessionGate {
  /** Running sessions of this proxy that can be ended: id → its chain's revocation ids and handle. */
  const running = new Map<string, { ids: string[]; control: SessionControl }>();
  if (ending) {
    void ending.state
      .subscribe(SESSION_END_CHANNEL, (id) => {
        const started = Date.now();
        const tryEnd = () => {
          const s = running.get(id);
          if (!s) return;
          if (ending.revocations.firstRevoked(s.ids) !== undefined) return s.control.end('28P01', 'baton: the token (or one of its ancestors) has been revoked; session ended by an administrator');
          if (Date.now() - started < END_WAIT_MS) setTimeout(tryEnd, 100).unref();
        };
        tryEnd();
      })
      .catch(() => {}); // ending idle sessions is a courtesy: revoked sessions end at their next statement regardless
  }
  return {
    async authenticate(req) {
      const result = await gate.authenticate(req);
      if (!result.ok) return result;
      const inner = result.session;
      let lineage: LineageLink[];
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
      const session = countedSession(inner, {
        decided: (allowed) => published.statement(allowed),
        closed: () => {
          running.delete(published.id);
          published.close();
        },
        attached: (control) => running.set(published.id, { ids: lineage.map((l) => l.revocationId), control }),
      });
      return { ok: true, session };
    },
  };
}
