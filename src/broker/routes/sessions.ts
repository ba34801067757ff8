/**
 * `GET /v1/sessions` — the open proxy sessions of every live proxy (src/sessions/registry.ts), for
 * access reviews and the console: lineage, upstream, statements so far, idle time. Admin or approver
 * (undelegated tokens). Ending one is `POST /v1/revoke` with its `revocationId` (the session token's
 * last block), which every proxy learns through the revocation fan-out.
 */
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';
import { BatonError } from '../../errors.ts';
import { listLiveSessions } from '../../sessions/registry.ts';
import { authenticateRequest, type BearerDeps } from '../bearer.ts';

export interface SessionRouteDeps {
  pool: pg.Pool;
  bearer: BearerDeps;
}

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
  };
}
