/**
 * Live sessions (src/sessions/registry.ts), for access reviews and the console:
 *
 * - `GET  /v1/sessions`           admin or approver: the open sessions of every live proxy — lineage,
 *                                 upstream, statements so far, idle time
 * - `POST /v1/sessions/{id}/end`  admin: revokes the session token's last block through POST
 *                                 /v1/revoke (same checks, audit and fan-out: the token and its
 *                                 descendants are refused everywhere, its ancestors stay valid), then
 *                                 asks the proxy holding the session to end it now rather than at
 *                                 its next statement. Body `{reason?}`.
 */
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';
import { BatonError } from '../../errors.ts';
import { listLiveSessions, SESSION_END_CHANNEL } from '../../sessions/registry.ts';
import type { SharedState } from '../../store/shared-state.ts';
import { authenticateRequest, requireAdmin, type BearerDeps } from '../bearer.ts';

export interface SessionRouteDeps {
  pool: pg.Pool;
  bearer: BearerDeps;
  /** Where proxies listen for sessions to end. */
  state: SharedState;
}

const EndBody = z.strictObject({ reason: z.string().max(500).regex(/^[^\u0000]*$/).optional() });
const SESSION_ID = /^ses_[A-Za-z0-9_-]{8,64}$/;

const ListQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(200) });

/**
 * The plugin the broker passes in `BrokerDeps.plugins`.
 *
 * @example
 * buildBrokerApp({ …, plugins: [sessionRoutes({ pool: db.pool, bearer })] });
 */
export function sessionRoutes(deps: SessionRouteDeps): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.get('/v1/sessions', async (request, reply) => {
      const caller = authenticateRequest(request, deps.bearer);
      if (!caller.isAdmin && !caller.isApprover) throw new BatonError('BATON_ERR_FORBIDDEN', 'listing sessions needs the admin or approver role, on an undelegated token');
      const parsed = ListQuery.safeParse(request.query ?? {});
      if (!parsed.success) throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid query parameter(s): ${[...new Set(parsed.error.issues.map((i) => i.path.join('.')))].join(', ')}`);
      reply.header('cache-control', 'no-store');
      const sessions = await listLiveSessions(deps.pool, { limit: parsed.data.limit });
      // revoked meanwhile (the proxy is ending it): shown as such until its row goes
      return { sessions: sessions.map((s) => ({ ...s, revoked: deps.bearer.revocations.firstRevoked(s.lineage.map((l) => l.revocationId)) !== undefined })) };
    });

    app.post<{ Params: { id: string } }>('/v1/sessions/:id/end', async (request, reply) => {
      requireAdmin(request, deps.bearer);
      const body = EndBody.safeParse(request.body ?? {});
      if (!body.success) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'invalid body: reason');
      const id = request.params.id;
      const { rows } = SESSION_ID.test(id) ? await deps.pool.query<{ revocation_id: string }>('SELECT revocation_id FROM proxy_sessions WHERE id = $1', [id]) : { rows: [] };
      const session = rows[0];
      if (!session) throw new BatonError('BATON_ERR_NOT_FOUND', 'no such open session');
      // the revocation path itself (who may revoke, limits, durable row, audit entry, fan-out)
      const revoked = await app.inject({
        method: 'POST',
        url: '/v1/revoke',
        headers: { authorization: request.headers.authorization!, 'content-type': 'application/json' },
        payload: JSON.stringify({ revocation_id: session.revocation_id, reason: body.data.reason ?? `session ${id} ended` }),
      });
      if (revoked.statusCode !== 200) {
        const e = revoked.json() as { code?: string; error_description?: string };
        reply.status(revoked.statusCode).type('application/problem+json').header('cache-control', 'no-store');
        return { type: `https://baton.dev/errors/${String(e.code)}`, title: e.error_description ?? 'the revocation was refused', status: revoked.statusCode, code: e.code };
      }
      await deps.state.publish(SESSION_END_CHANNEL, id).catch((err: Error) => request.log.warn({ event: 'sessions.end_unpublished', detail: err.message }, 'the proxy will end the session at its next statement'));
      return { id, revocationId: session.revocation_id, revoked: true };
    });
  };
}
