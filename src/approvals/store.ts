/**
 * The approvals store in PostgreSQL (table `approvals`, migration 007): the proxy's side
 * ({@link ApprovalDesk.admit}) and the broker's (list, get, approve, deny). docs/approvals.md.
 *
 * Single use rests on one statement: `admit` consumes an approval with an UPDATE whose WHERE demands
 * `state = 'approved'`, an unexpired `approved_until` and no `used_at`; of two sessions racing for
 * it, the second re-checks that WHERE after the first commits and updates nothing. Creating a request
 * runs under a transaction-scoped advisory lock on the binding, so concurrent identical statements
 * share one pending request (and one notification).
 */
import type pg from 'pg';
import { z } from 'zod';
import { auditLineageSchema } from '../audit/event.ts';
import { BatonError } from '../errors.ts';
import type { ApprovalsPolicy } from '../policy/schema.ts';
import { APPROVAL_COLUMNS, APPROVAL_ID, approvalFromRow, newApprovalId, type Approval, type ApprovalRow, type ApprovalState } from './approval.ts';
import { checkDecision, type Approver, type DecisionContext, type Verdict } from './decide.ts';
import type { AdmitResult, ApprovalDesk, ApprovalRequestInput } from './desk.ts';

export interface ApprovalDeskOptions {
  pool: pg.Pool;
  /** The grant policy's `approvals` section: `ttl` (use an approval within, s), `pending_ttl` (decide within, s). */
  policy: Pick<ApprovalsPolicy, 'ttl' | 'pending_ttl'>;
  /** The broker's base URL: a request's `url` is `${publicUrl}/v1/approvals/<id>`. */
  publicUrl: string;
  /** Told of every NEW pending request (once), e.g. the webhook notifier; must not block (errors are swallowed). */
  notify?: (approval: Approval) => void;
  /** The clock (tests). */
  now?: () => Date;
}

export interface DecisionOptions {
  /** The revocation state: a request whose requesting chain is revoked cannot be approved. */
  revocations?: DecisionContext['revocations'];
  /**
   * Runs inside the deciding transaction, after the row is updated and before it commits (the
   * broker appends the audit entry here): when it rejects, the decision is rolled back.
   */
  record?: (approval: Approval) => Promise<void>;
}

/** The full store: the proxy's {@link ApprovalDesk} plus what the broker's endpoints need. */
export interface ApprovalStore extends ApprovalDesk {
  /** Newest first; `state` filters by the state as of now (expired computed). `limit` 1–500, default 50. */
  list(state?: ApprovalState, limit?: number): Promise<Approval[]>;
  get(id: string): Promise<Approval | undefined>;
  /** @throws BatonError NOT_FOUND, FORBIDDEN (approver in the lineage), APPROVAL_CONFLICT (not pending, requester revoked) */
  approve(id: string, approver: Approver, reason?: string, opts?: DecisionOptions): Promise<Approval>;
  /** @throws BatonError as {@link ApprovalStore.approve}, and INVALID_REQUEST without a reason */
  deny(id: string, approver: Approver, reason: string, opts?: DecisionOptions): Promise<Approval>;
}

const hex = (min: number, max: number) => z.string().regex(new RegExp(`^[0-9a-f]{${min},${max}}$`));
/** No NUL (PostgreSQL text cannot hold it). */
const text = (max: number) => z.string().max(max).regex(/^[^\u0000]*$/);

/** What the proxy must hand `admit`: checked, since a malformed request would bind nothing. */
const RequestInput = z.object({
  binding: z.object({ revocationId: hex(16, 256), statementHash: hex(64, 64) }),
  revocationIds: z.array(hex(16, 256)).min(1).max(64),
  upstream: text(256).min(1),
  statement: text(100_000),
  normalized: text(100_000),
  accesses: z.array(z.object({ resource: text(1024), operation: text(64) })).max(256),
  rules: z.array(text(256)).max(64),
  lineage: auditLineageSchema,
  tokenId: text(256).optional(),
});

/** Conditions on the stored row for each state as of `$1`, so the state index serves them. */
const STATE_FILTER: Record<ApprovalState, string> = {
  pending: `state = 'pending' AND expires_at > $1`,
  approved: `state = 'approved' AND approved_until > $1`,
  denied: `state = 'denied'`,
  used: `state = 'used'`,
  expired: `(state = 'expired' OR (state = 'pending' AND expires_at <= $1) OR (state = 'approved' AND approved_until <= $1))`,
};

/**
 * @example
 * const desk = createApprovalDesk({ pool: db.pool, policy: policy.approvals, publicUrl: 'https://baton.example.com', notify: webhook?.notify });
 * const r = await desk.admit({ binding: { revocationId, statementHash }, revocationIds, upstream: 'appdb', statement, normalized, accesses, rules, lineage });
 * if (r.state !== 'approved') refuse(r); // pending: tell the client r.url; denied: r.reason
 */
export function createApprovalDesk(opts: ApprovalDeskOptions): ApprovalStore {
  const { pool, publicUrl } = opts;
  const clock = opts.now ?? (() => new Date());
  const seconds = (n: number) => n * 1000;
  const toApproval = (row: ApprovalRow) => approvalFromRow(row, publicUrl);

  /** The one statement that makes an approval used: exactly one racing session gets a row back. */
  async function consume(db: pg.Pool | pg.PoolClient, binding: ApprovalRequestInput['binding'], now: Date) {
    const usable = `state = 'approved' AND approved_until > $1 AND used_at IS NULL`;
    const { rows } = await db.query<{ id: string; decided_by: string }>(
      `UPDATE approvals SET state = 'used', used_at = $1
        WHERE id = (SELECT id FROM approvals WHERE revocation_id = $2 AND statement_hash = $3 AND ${usable} ORDER BY decided_at LIMIT 1)
          AND ${usable}
        RETURNING id, decided_by`,
      [now, binding.revocationId, binding.statementHash],
    );
    return rows[0];
  }

  function announce(approval: Approval): void {
    try {
      opts.notify?.(approval);
    } catch {
      // a notifier's failure never holds or fails the statement's answer (it logs its own)
    }
  }

  async function admit(raw: ApprovalRequestInput): Promise<AdmitResult> {
    const parsed = RequestInput.safeParse(raw);
    if (!parsed.success) throw new TypeError(`approval request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const input = parsed.data;
    const now = clock();
    const used = await consume(pool, input.binding, now);
    if (used) return { state: 'approved', id: used.id, approver: used.decided_by };

    const client = await pool.connect();
    let created: Approval | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`approval:${input.binding.revocationId}:${input.binding.statementHash}`]);
      const { rows } = await client.query<ApprovalRow>(
        `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE revocation_id = $2 AND statement_hash = $3 ORDER BY seq DESC LIMIT 1`,
        [now, input.binding.revocationId, input.binding.statementHash],
      );
      const latest = rows[0];
      let result: AdmitResult | undefined;
      if (latest?.state === 'denied' && latest.expires_at > now) result = { state: 'denied', id: latest.id, reason: latest.reason ?? '' };
      else if (latest?.state === 'pending') result = { state: 'pending', id: latest.id, url: toApproval(latest).url };
      else if (latest?.state === 'approved') {
        // approved between our UPDATE and this read: take it now
        const late = await consume(client, input.binding, now);
        if (late) result = { state: 'approved', id: late.id, approver: late.decided_by };
      }
      if (!result) {
        const inserted = await client.query<ApprovalRow>(
          `INSERT INTO approvals (id, state, revocation_id, revocation_ids, statement_hash, upstream, statement, normalized, accesses, rules,
             lineage, token_id, created_at, expires_at)
           VALUES ($2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $1, $13)
           RETURNING ${APPROVAL_COLUMNS}`,
          [
            now,
            newApprovalId(),
            input.binding.revocationId,
            input.revocationIds,
            input.binding.statementHash,
            input.upstream,
            input.statement,
            input.normalized,
            JSON.stringify(input.accesses),
            input.rules,
            JSON.stringify(input.lineage),
            input.tokenId ?? null,
            new Date(now.getTime() + seconds(opts.policy.pending_ttl)),
          ],
        );
        created = toApproval(inserted.rows[0]!);
        result = { state: 'pending', id: created.id, url: created.url };
      }
      await client.query('COMMIT');
      if (created) announce(created);
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async function decide(id: string, verdict: Verdict, approver: Approver, reason: string | undefined, decision: DecisionOptions = {}): Promise<Approval> {
    if (!APPROVAL_ID.test(id)) throw new BatonError('BATON_ERR_NOT_FOUND', 'no such approval request');
    const now = clock();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      // locked: two approvers deciding at once are serialised, and the second finds it decided
      const { rows } = await client.query<ApprovalRow>(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE id = $2 FOR UPDATE`, [now, id]);
      if (!rows[0]) throw new BatonError('BATON_ERR_NOT_FOUND', 'no such approval request');
      checkDecision({ approval: toApproval(rows[0]), approver, verdict, reason: reason?.trim() || undefined, revocations: decision.revocations });
      const updated = await client.query<ApprovalRow>(
        `UPDATE approvals SET state = $3, decided_at = $1, decided_by = $4, decided_by_lineage = $5, reason = $6, approved_until = $7
          WHERE id = $2 RETURNING ${APPROVAL_COLUMNS}`,
        [
          now,
          id,
          verdict === 'approve' ? 'approved' : 'denied',
          approver.subject,
          JSON.stringify(approver.lineage),
          reason?.trim() || null,
          verdict === 'approve' ? new Date(now.getTime() + seconds(opts.policy.ttl)) : null,
        ],
      );
      const approval = toApproval(updated.rows[0]!);
      await decision.record?.(approval);
      await client.query('COMMIT');
      return approval;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  return {
    admit,
    async list(state, limit = 50) {
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new TypeError('limit must be a whole number from 1 to 500');
      const where = state ? `WHERE ${STATE_FILTER[state]}` : '';
      const { rows } = await pool.query<ApprovalRow>(`SELECT ${APPROVAL_COLUMNS} FROM approvals ${where} ORDER BY seq DESC LIMIT $2`, [clock(), limit]);
      return rows.map(toApproval);
    },
    async get(id) {
      if (!APPROVAL_ID.test(id)) return undefined;
      const { rows } = await pool.query<ApprovalRow>(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE id = $2`, [clock(), id]);
      return rows[0] && toApproval(rows[0]);
    },
    approve: (id, approver, reason, decision) => decide(id, 'approve', approver, reason, decision),
    deny: (id, approver, reason, decision) => decide(id, 'deny', approver, reason, decision),
  };
}
