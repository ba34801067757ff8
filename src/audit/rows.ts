/**
 * Row ↔ entry mapping, shared by the writer (insert), verification (recompute) and queries (read),
 * so what a query returns is exactly what verification hashed. NULL columns become absent fields.
 */
import type { AuditEvent, AuditOutcomeRecord } from './event.ts';

/** Columns of `audit_events` that make up the hashed event, in SELECT order. */
export const EVENT_COLUMNS =
  'seq, id, time, source, action, decision, reason, lineage, token_id, resource, operation, accesses, ' +
  'fingerprint, normalized, outcome, duration_ms, prev_hash, hash';

/** Columns of `audit_outcomes`. */
export const OUTCOME_COLUMNS = 'seq, id, event_id, time, outcome, duration_ms, prev_hash, hash';

/** The column definition list for `jsonb_to_recordset` when inserting events. */
export const EVENT_RECORDSET =
  'seq bigint, id uuid, time timestamptz, source text, action text, decision text, reason text, ' +
  'lineage jsonb, token_id text, resource text, operation text, accesses jsonb, fingerprint text, ' +
  'normalized text, outcome jsonb, duration_ms numeric, prev_hash text, hash text';

/** The column definition list for `jsonb_to_recordset` when inserting outcomes. */
export const OUTCOME_RECORDSET =
  'seq bigint, id uuid, event_id uuid, time timestamptz, outcome jsonb, duration_ms numeric, prev_hash text, hash text';

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

/** An event (before sealing) → a `jsonb_to_recordset` element for INSERT, minus seq/prev_hash/hash. */
export function eventToRow(e: Omit<AuditEvent, 'seq' | 'prevHash' | 'hash'>): Row {
  return {
    id: e.id,
    time: e.time,
    source: e.source,
    action: e.action,
    decision: e.decision,
    reason: e.reason,
    lineage: e.lineage,
    token_id: e.tokenId,
    resource: e.resource,
    operation: e.operation,
    accesses: e.accesses,
    fingerprint: e.fingerprint,
    normalized: e.normalized,
    outcome: e.outcome,
    duration_ms: e.durationMs,
  };
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

/** An outcome record (before sealing) → a `jsonb_to_recordset` element for INSERT, minus seq/prev_hash/hash. */
export function outcomeToRow(o: Omit<AuditOutcomeRecord, 'seq' | 'prevHash' | 'hash'>): Row {
  return {
    id: o.id,
    event_id: o.eventId,
    time: o.time,
    outcome: o.outcome,
    duration_ms: o.durationMs,
  };
}
