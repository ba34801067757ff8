/**
 * Native credentials no wider and no longer-lived than the caller's token (issue 14), for a Baton
 * token presented as Bearer:
 *
 * - `POST /v1/credentials/aws {role}`: STS credentials; the audit entry naming the chain, the role
 *   and every right passed to AWS is durable before STS is asked (DESIGN.md rule 6: nothing is
 *   handed out that the trail does not show), and the outcome follows.
 * - `POST /v1/credentials/postgres {upstream}`: an ephemeral login role (postgres-service.ts).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AuditEventInput } from '../audit/event.ts';
import { toAuditLineage } from '../audit/lineage.ts';
import type { AuditReceipt, AuditWriter } from '../audit/writer.ts';
import { authenticateRequest, type BearerDeps, type Caller } from '../broker/bearer.ts';
import { asBatonError, BatonError } from '../errors.ts';
import type { SharedState } from '../store/shared-state.ts';
import type { AwsIssuer } from './aws.ts';
import type { AwsSessionRequest } from './aws-policy.ts';
import { type PostgresCredentials, postgresDenied } from './postgres-service.ts';

export const awsCredentialsRequestSchema = z.strictObject({
  /** A role configured under `aws.roles`. */
  role: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
});

export const postgresCredentialsRequestSchema = z.strictObject({
  /** An upstream under `credentials.postgres.upstreams`. */
  upstream: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
});

export interface CredentialRouteDeps {
  bearer: BearerDeps;
  aws: AwsIssuer;
  postgres: PostgresCredentials;
  /** The shared rate limiter (Redis across brokers) and issuances allowed per token lineage per minute. */
  limiter: { state: Pick<SharedState, 'hit'>; perTokenPerMinute: number };
  audit: Pick<AuditWriter, 'append' | 'recordOutcome'>;
  now?: () => Date;
}

export function credentialRoutes(deps: CredentialRouteDeps) {
  const now = deps.now ?? (() => new Date());
  /** A helper minting credentials in a loop is stopped per lineage (every child of one exchange counts). */
  const limit = async (caller: Caller) => {
    const key = `cred:${caller.tokenId ?? caller.revocationIds[0]}`;
    const r = await deps.limiter.state.hit(key, deps.limiter.perTokenPerMinute, 60).catch((err: unknown) => {
      throw new BatonError('BATON_ERR_STORE_UNAVAILABLE', 'the rate limiter (shared state) is unavailable; retry later', { detail: String((err as Error)?.message ?? err) });
    });
    if (!r.allowed) throw new BatonError('BATON_ERR_RATE_LIMITED', `too many credential requests for this token; retry after ${r.retryAfter} s`, { detail: `retry-after=${r.retryAfter}` });
  };
  return async (app: FastifyInstance) => {
    app.post('/v1/credentials/aws', async (request, reply) => {
      const caller = authenticateRequest(request, deps.bearer);
      await limit(caller);
      const body = awsCredentialsRequestSchema.safeParse(request.body);
      if (!body.success) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'send {"role": "<name of a role under aws.roles>"}');
      const role = body.data.role;
      let plan: AwsSessionRequest;
      try {
        plan = deps.aws.plan(role, caller, now());
      } catch (err) {
        const e = asBatonError(err);
        // a refusal of a known caller is part of the trail; an outage of the trail does not hide it
        await deps.audit.append(awsEvent(caller, role, 'deny', `${e.code}: ${e.message}`)).catch(() => {});
        throw e;
      }
      const started = performance.now();
      let receipt: AuditReceipt;
      try {
        receipt = await deps.audit.append(awsEvent(caller, role, 'allow', `AssumeRole ${plan.roleArn} as ${plan.roleSessionName} for ${plan.durationSeconds} s, policy ends ${plan.expiresAt.toISOString()}`, plan));
      } catch (err) {
        throw new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit store unavailable; no credentials were issued', { detail: asBatonError(err).detail });
      }
      const outcome = (status: number, tag: string) =>
        void deps.audit.recordOutcome(receipt, { status, tag, durationMs: performance.now() - started }).catch((err: unknown) => request.log.warn({ detail: asBatonError(err).detail }, 'audit outcome not recorded'));
      try {
        const credentials = await deps.aws.assume(plan, role);
        outcome(200, credentials.lineage_cut ? 'issued, lineage tags cut' : 'issued');
        return reply.header('cache-control', 'no-store').send(credentials);
      } catch (err) {
        const e = asBatonError(err);
        outcome(e.http, e.code.slice(0, 64));
        throw e;
      }
    });

    app.post('/v1/credentials/postgres', async (request, reply) => {
      const caller = authenticateRequest(request, deps.bearer);
      await limit(caller);
      const body = postgresCredentialsRequestSchema.safeParse(request.body);
      if (!body.success) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'send {"upstream": "<name of an upstream under credentials.postgres.upstreams>"}');
      try {
        return reply.header('cache-control', 'no-store').send(await deps.postgres.issue(caller, body.data.upstream));
      } catch (err) {
        const e = asBatonError(err);
        if (e.http < 500 && e.code !== 'BATON_ERR_NOT_FOUND') await deps.audit.append(postgresDenied(caller, body.data.upstream, e)).catch(() => {});
        throw e;
      }
    });
  };
}

function awsEvent(caller: Caller, role: string, decision: 'allow' | 'deny', reason: string, plan?: AwsSessionRequest): AuditEventInput {
  const accesses = plan ? plan.grants.map((g) => ({ resource: `aws:${role}/${g.resource}`, operation: g.operation })).slice(0, 256) : [];
  return {
    source: 'broker',
    action: 'credentials.aws.issue',
    decision,
    reason: reason.slice(0, 1024),
    lineage: toAuditLineage(caller.lineage),
    ...(caller.tokenId ? { tokenId: caller.tokenId } : {}),
    resource: `aws:${role}/`,
    operation: 'assume',
    ...(accesses.length ? { accesses } : {}),
  };
}
