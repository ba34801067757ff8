/** The audit trail over HTTP (admin role only): query, chain verification, delegation tree, export. */
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';
import { type AuditCheckpoint, auditQueryStringSchema, auditTree, markRevoked, exportJsonLines, queryAudit, verifyAuditChain } from '../../audit/index.ts';
import { BatonError } from '../../errors.ts';
import { requireAdmin, type BearerDeps } from '../bearer.ts';

export interface AuditRouteDeps {
  /** The primary: verification reads it (a lagging copy would look truncated against newer anchors). */
  pool: pg.Pool;
  /** A read replica for queries, trees and exports (they may lag); default `pool`. */
  readPool?: pg.Pool;
  bearer: BearerDeps;
  /** Checkpoints kept outside the database (an anchor witness, src/audit/witness.ts): verified too. */
  anchors?: () => AuditCheckpoint[];
}

function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.output<T> {
  const parsed = schema.safeParse(query);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.')))].join(', ');
    throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid query parameter(s): ${fields}`);
  }
  return parsed.data;
}

export function auditRoutes(deps: AuditRouteDeps) {
  const reads = deps.readPool ?? deps.pool;
  return async (app: FastifyInstance) => {
    app.get('/v1/audit', async (request) => {
      requireAdmin(request, deps.bearer);
      const page = await queryAudit(reads, parseQuery(auditQueryStringSchema, request.query));
      return { events: page.events, next_cursor: page.nextCursor };
    });

    app.get('/v1/audit/verify', async (request) => {
      requireAdmin(request, deps.bearer);
      // Every chain (one per writer process and lane, plus the legacy one): `chains` lists each with
      // its count, anchoring and first broken entry; `first_broken` is the lowest-seq one of those.
      const result = await verifyAuditChain(deps.pool, { anchors: deps.anchors?.() });
      return {
        ok: result.ok,
        count: result.count,
        outcomes: result.outcomes,
        chains: result.chains,
        strays: result.strays,
        ...(result.firstBroken ? { first_broken: result.firstBroken } : {}),
      };
    });

    app.get<{ Params: { tokenId: string } }>('/v1/audit/tree/:tokenId', async (request) => {
      requireAdmin(request, deps.bearer);
      if (!/^[\w-]{1,128}$/.test(request.params.tokenId)) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'invalid token id');
      // each node says whether it (or a link above it) is revoked: the console shows subtrees revoked
      return markRevoked(await auditTree(reads, request.params.tokenId), (ids) => deps.bearer.revocations.firstRevoked(ids));
    });

    app.get('/v1/audit/export', async (request, reply) => {
      requireAdmin(request, deps.bearer);
      const { limit: _limit, order: _order, ...filters } = parseQuery(auditQueryStringSchema, request.query);
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      try {
        await exportJsonLines(reads, filters, reply.raw);
      } finally {
        reply.raw.end();
      }
    });
  };
}
