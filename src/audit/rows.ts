/**
 * Row → entry mapping, shared by verification (recompute) and queries (read), so what a query
 * returns is exactly what verification hashed. NULL columns become absent fields. (Writing maps the
 * other way inside PostgreSQL: `audit_append_*` in migrations/004_audit_fast_append.sql derives the
 * columns from the very JSON it hashes.)
 */
import type { AuditEvent, AuditOutcomeRecord } from './event.ts';

/** Columns of `audit_events` that make up the hashed event, in SELECT order. */
export const EVENT_COLUMNS =
  'seq, id, time, source, action, decision, reason, lineage, token_id, resource, operation, accesses, ' +
  'fingerprint, normalized, outcome, duration_ms, prev_hash, hash';

/** Columns of `audit_outcomes`. */
export const OUTCOME_COLUMNS = 'seq, id, event_id, time, outcome, duration_ms, prev_hash, hash';

export type Row = Record<string, unknown>;

function present<T extends object>(obj: T): T {
  for (const k of Object.keys(obj) as (keyof T)[]) if (obj[k] === undefined || obj[k] === null) delete obj[k];
  return obj;
}

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const str = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const iso = (v: unknown): string => (v instanceof Date ? v : new Date(String(v))).toISOString();

/** An `audit_events` row (as node-postgres returns it) → the hashed event. */
export function rowToEvent(row: Row): AuditEvent {
  return present({
    seq: Number(row.seq),
    id: String(row.id),
    time: iso(row.time),
    source: row.source as AuditEvent['source'],
    action: String(row.action),
    decision: row.decision as AuditEvent['decision'],
    reason: str(row.reason),
    lineage: row.lineage as AuditEvent['lineage'],
    tokenId: str(row.token_id),
    resource: str(row.resource),
    operation: str(row.operation),
    accesses: (row.accesses ?? undefined) as AuditEvent['accesses'],
    fingerprint: str(row.fingerprint),
    normalized: str(row.normalized),
    outcome: (row.outcome ?? undefined) as AuditEvent['outcome'],
    durationMs: num(row.duration_ms),
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  });
}

/** An `audit_outcomes` row → the hashed outcome record. */
export function rowToOutcome(row: Row): AuditOutcomeRecord {
  return present({
    seq: Number(row.seq),
    id: String(row.id),
    eventId: String(row.event_id),
    time: iso(row.time),
    outcome: row.outcome as AuditOutcomeRecord['outcome'],
    durationMs: num(row.duration_ms),
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  });
}
