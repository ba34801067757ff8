/**
 * Just-in-time approvals over HTTP (docs/approvals.md):
 *
 * - `GET  /v1/approvals?state=&limit=`     approver or admin: requests, newest first
 * - `GET  /v1/approvals/{id}`              approver or admin, or the requesting token itself (polling)
 * - `POST /v1/approvals/{id}/approve`      approver: `{reason?}`
 * - `POST /v1/approvals/{id}/deny`         approver: `{reason}`
 *
 * Approver = role `approver` on an UNDELEGATED token (bearer.ts); who may decide which request is
 * src/approvals/decide.ts (DECISION_STEPS). Each decision's audit entry is durable before the
 * decision commits and the 2xx leaves.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AuditEventInput } from '../../audit/event.ts';
import { toAuditLineage } from '../../audit/lineage.ts';
import { APPROVAL_ID, APPROVAL_STATES, type Approval } from '../../approvals/approval.ts';
import type { Approver, Verdict } from '../../approvals/decide.ts';
import type { ApprovalStore } from '../../approvals/store.ts';
import { BatonError } from '../../errors.ts';
import { authenticateRequest, requireApprover, type BearerDeps, type Caller } from '../bearer.ts';

export interface ApprovalRouteDeps {
  desk: ApprovalStore;
  bearer: BearerDeps;
  /** Appends an audit entry and resolves once it is durable. */
  audit: (event: AuditEventInput) => Promise<unknown>;
}

const ListQuery = z.strictObject({
  state: z.enum(APPROVAL_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});
const Reason = z.string().max(1000).regex(/^[^\u0000]*$/, 'must not contain NUL');
const ApproveBody = z.strictObject({ reason: Reason.optional() });
const DenyBody = z.strictObject({ reason: Reason.refine((r) => r.trim() !== '', 'a denial needs a reason') });

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || i.message))].join(', ');
    throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid ${what}: ${fields}`);
  }
  return parsed.data;
}

/** JSON bodies may be empty here (`POST …/approve` with no reason); anything else must parse. */
function emptyTolerantJson(_req: unknown, body: string, done: (err: Error | null, value?: unknown) => void): void {
  if (body.trim() === '') return done(null, {});
  try {
    done(null, JSON.parse(body));
  } catch {
    done(Object.assign(new Error('request body is not valid JSON'), { statusCode: 400 }));
  }
}

/**
 * The plugin the broker passes in `BrokerDeps.plugins`.
 *
 * @example
 * const desk = createApprovalDesk({ pool: db.pool, policy: policy.approvals, publicUrl: url });
 * buildBrokerApp({ …, plugins: [approvalRoutes({ desk, bearer, audit: (e) => audit.append(e) })] });
 */
export function approvalRoutes(deps: ApprovalRouteDeps): (app: FastifyInstance) => Promise<void> {
  /** What an approver sees: the request, and whether its requesting chain has been revoked since. */
  const view = (a: Approval) => ({ ...a, requesterRevoked: deps.bearer.revocations.firstRevoked(a.revocationIds) !== undefined });

  const reader = (caller: Caller) => caller.isApprover || caller.isAdmin;

  async function decide(caller: Caller, id: string, verdict: Verdict, reason: string | undefined): Promise<Approval> {
    const subject = caller.lineage[0]?.subject;
    if (!subject) throw new BatonError('BATON_ERR_FORBIDDEN', 'the approver token names no subject');
    const approver: Approver = { subject, lineage: toAuditLineage(caller.lineage), ...(caller.tokenId ? { tokenId: caller.tokenId } : {}) };
    const record = async (a: Approval) => {
      const first = a.accesses[0];
      await deps.audit({
        source: 'broker',
        action: `approval.${verdict}`,
        decision: 'allow',
        ...(a.reason ? { reason: a.reason } : {}),
        lineage: approver.lineage,
        ...(caller.tokenId ? { tokenId: caller.tokenId } : {}),
        ...(first ? { resource: first.resource, operation: first.operation } : {}),
        accesses: a.accesses,
        normalized: a.normalized,
        approvalId: a.id,
      });
    };
    const opts = { revocations: deps.bearer.revocations, record };
    return verdict === 'approve' ? deps.desk.approve(id, approver, reason, opts) : deps.desk.deny(id, approver, reason ?? '', opts);
  }

  const idOf = (params: unknown) => {
    const id = (params as { id?: string }).id ?? '';
    if (!APPROVAL_ID.test(id)) throw new BatonError('BATON_ERR_NOT_FOUND', 'no such approval request');
    return id;
  };

  return async (app) => {
    await app.register(async (scoped) => {
      scoped.removeContentTypeParser('application/json');
      scoped.addContentTypeParser('application/json', { parseAs: 'string' }, emptyTolerantJson);

      scoped.get('/v1/approvals', async (request) => {
        const caller = authenticateRequest(request, deps.bearer);
        if (!reader(caller)) throw new BatonError('BATON_ERR_FORBIDDEN', 'listing approvals needs the approver or admin role, on an undelegated token');
        const q = parse(ListQuery, request.query, 'query parameter(s)');
        return { approvals: (await deps.desk.list(q.state, q.limit)).map(view) };
      });

      scoped.get('/v1/approvals/:id', async (request) => {
        const caller = authenticateRequest(request, deps.bearer);
        const approval = await deps.desk.get(idOf(request.params));
        // the requesting token (or one derived from it) may poll its own request
        const own = approval && caller.revocationIds.includes(approval.revocationId);
        if (!reader(caller) && !own) throw new BatonError('BATON_ERR_FORBIDDEN', 'this request needs the approver or admin role, or the requesting token');
        if (!approval) throw new BatonError('BATON_ERR_NOT_FOUND', 'no such approval request');
        return view(approval);
      });

      scoped.post('/v1/approvals/:id/approve', async (request) => {
        const caller = requireApprover(request, deps.bearer);
        const body = parse(ApproveBody, request.body, 'body');
        return view(await decide(caller, idOf(request.params), 'approve', body.reason));
      });

      scoped.post('/v1/approvals/:id/deny', async (request) => {
        const caller = requireApprover(request, deps.bearer);
        const body = parse(DenyBody, request.body, 'body');
        return view(await decide(caller, idOf(request.params), 'deny', body.reason));
      });
    });
  };
}
