/**
 * Reading the trail: filtered, keyset-paginated queries (`GET /v1/audit`, `baton audit tail`).
 * Pages are ordered by the global `seq` (newest first by default), across every writer's chain; the
 * cursor is opaque and stable because seq never changes. Each record shows its lineage in full
 * (joined from `audit_lineages`).
 */
import type pg from 'pg';
import { z } from 'zod';
import { BatonError } from '../errors.ts';
import type { AuditRecord } from './event.ts';
import { EVENT_COLUMNS, EVENT_FROM, OUTCOME_COLUMNS, rowToEvent, rowToOutcome } from './rows.ts';

const name = z.string().min(1).max(1024).regex(/^[^\u0000]*$/);
const instant = z.iso.datetime({ offset: true });

/**
 * Filters for {@link queryAudit}. `since` is inclusive, `until` exclusive. `delegate` matches any
 * agent or delegate name anywhere in the lineage; `resource` matches `resource` or any `accesses`.
 */
export const auditFiltersSchema = z.strictObject({
  subject: name.optional(),
  delegate: name.optional(),
  tokenId: name.optional(),
  resource: name.optional(),
  decision: z.enum(['allow', 'deny']).optional(),
  since: instant.optional(),
  until: instant.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(64).optional(),
  /** `desc` (default): newest first. `asc`: oldest first (tail, export). */
  order: z.enum(['desc', 'asc']).default('desc'),
});
export type AuditFilters = z.input<typeof auditFiltersSchema>;

/**
 * The same filters as HTTP query parameters (`GET /v1/audit?token_id=…&limit=…`), mapped to
 * {@link AuditFilters}; `limit` may arrive as a string.
 *
 * @example
 * const filters = auditQueryStringSchema.parse(request.query);
 * const { events, nextCursor } = await queryAudit(pool, filters);
 * reply.send({ events, next_cursor: nextCursor });
 */
export const auditQueryStringSchema = auditFiltersSchema
  .omit({ tokenId: true })
  .extend({ token_id: name.optional() })
  .transform(({ token_id, ...rest }) => ({ ...rest, tokenId: token_id }));

export interface AuditPage {
  events: AuditRecord[];
  /** Pass back as `cursor` for the next page; null when this was the last one. */
  nextCursor: string | null;
}

/**
 * One page of audit records matching `filters`, each with its recorded outcome (if any).
 * Throws `BATON_ERR_INVALID_REQUEST` for invalid filters or a foreign cursor.
 *
 * @example
 * const page = await queryAudit(pool, { delegate: 'helper-7', decision: 'deny', limit: 50 });
 */
export async function queryAudit(pool: pg.Pool, filters: AuditFilters = {}): Promise<AuditPage> {
  const parsed = auditFiltersSchema.safeParse(filters);
  if (!parsed.success) {
    throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid audit filters: ${z.prettifyError(parsed.error)}`);
  }
  const f = parsed.data;
  const params: unknown[] = [];
  const where: string[] = [];
  const add = (sql: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  // Subject and delegates live with the lineage (once per distinct lineage); legacy rows carry them inline.
  const byLineage = (legacy: (p: string) => string, lineage: (p: string) => string) => (p: string) =>
    `((e.chain_id IS NULL AND ${legacy(p)}) OR e.lineage_hash = ANY(ARRAY(SELECT hash FROM audit_lineages WHERE ${lineage(p)})))`;
  if (f.subject !== undefined) add(byLineage((p) => `e.subject = ${p}`, (p) => `subject = ${p}`), f.subject);
  if (f.delegate !== undefined) add(byLineage((p) => `e.delegates @> ARRAY[${p}::text]`, (p) => `delegates @> ARRAY[${p}::text]`), f.delegate);
  if (f.tokenId !== undefined) add((p) => `e.token_id = ${p}`, f.tokenId);
  if (f.resource !== undefined) add((p) => `e.resources @> ARRAY[${p}::text]`, f.resource);
  if (f.decision !== undefined) add((p) => `e.decision = ${p}`, f.decision);
  if (f.since !== undefined) add((p) => `e.time >= ${p}::timestamptz`, f.since);
  if (f.until !== undefined) add((p) => `e.time < ${p}::timestamptz`, f.until);
  if (f.cursor !== undefined) {
    const after = decodeCursor(f.cursor, f.order);
    add((p) => (f.order === 'desc' ? `e.seq < ${p}` : `e.seq > ${p}`), after);
  }
  params.push(f.limit + 1);
  const sql =
    `SELECT ${EVENT_COLUMNS} FROM ${EVENT_FROM} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ` +
    `ORDER BY e.seq ${f.order === 'desc' ? 'DESC' : 'ASC'} LIMIT $${params.length}`;
  const { rows } = await pool.query(sql, params);
  const events: AuditRecord[] = rows.slice(0, f.limit).map(rowToEvent);
  await attachOutcomes(pool, events);
  const last = events.at(-1);
  return { events, nextCursor: rows.length > f.limit && last ? auditCursor(last.seq, f.order) : null };
}

/** Adds each event's first recorded outcome (one query for the page). */
async function attachOutcomes(pool: pg.Pool, events: AuditRecord[]): Promise<void> {
  if (events.length === 0) return;
  const { rows } = await pool.query(
    `SELECT DISTINCT ON (event_id) ${OUTCOME_COLUMNS} FROM audit_outcomes WHERE event_id = ANY($1::uuid[]) ORDER BY event_id, seq`,
    [events.map((e) => e.id)],
  );
  const byEvent = new Map(rows.map((r) => [String(r.event_id), rowToOutcome(r)]));
  for (const e of events) {
    const outcome = byEvent.get(e.id);
    if (outcome) e.recordedOutcome = outcome;
  }
}

/**
 * The cursor that continues after the record at `seq` in `order`. Opaque to callers; bound to the
 * order so a cursor cannot silently skip rows when used with the other one.
 *
 * @example
 * const resume = auditCursor(lastRecord.seq, 'asc');
 */
export function auditCursor(seq: number, order: 'asc' | 'desc'): string {
  return Buffer.from(`${order}:${seq}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string, order: 'asc' | 'desc'): number {
  const m = /^(asc|desc):(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || m[1] !== order) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'invalid audit cursor');
  return Number(m[2]);
}
