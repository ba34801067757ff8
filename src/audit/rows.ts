/**
 * Row → entry mapping, shared by verification (recompute) and queries (read), so what a query
 * returns is exactly what verification hashed. NULL columns become absent fields. (Writing maps the
 * other way: the codecs in writer.ts take each column from the very entry they hash.) An event's
 * lineage is stored once in `audit_lineages` and joined back in (legacy rows carry it inline).
 */
import type { AuditEvent, AuditOutcomeRecord } from './event.ts';

/** Events with their lineage joined in: `FROM ${EVENT_FROM}`, columns prefixed `e.` (event) and `l.` (lineage). */
export const EVENT_FROM = 'audit_events AS e LEFT JOIN audit_lineages AS l ON l.hash = e.lineage_hash';

/** Columns (of {@link EVENT_FROM}) that make up the event as shown, in SELECT order. */
export const EVENT_COLUMNS =
  'e.seq, e.chain_id, e.chain_seq, e.id, e.time, e.source, e.action, e.decision, e.reason, ' +
  'coalesce(e.lineage, l.lineage) AS lineage, e.lineage_hash, e.token_id, e.resource, e.operation, e.accesses, ' +
  'e.fingerprint, e.normalized, e.outcome, e.duration_ms, e.masking, e.approval_id, e.http, e.prev_hash, e.hash';

/** Columns of `audit_outcomes`. */
export const OUTCOME_COLUMNS = 'seq, chain_id, chain_seq, id, event_id, time, outcome, duration_ms, prev_hash, hash';

export type Row = Record<string, unknown>;

/**
 * The `resources` query helper of an event: its resource and every access's resource, distinct, in
 * UTF-16 order. Derived from hashed fields: the writer stores it, verification recomputes it.
 *
 * @example
 * touchedResources({ resource: 'pg:a/x', accesses: [{ resource: 'pg:a/y', operation: 'read' }] }); // ['pg:a/x', 'pg:a/y']
 */
export function touchedResources(e: Pick<AuditEvent, 'resource' | 'accesses'>): string[] {
  const all = new Set<string>();
  if (e.resource !== undefined) all.add(e.resource);
  for (const a of e.accesses ?? []) all.add(a.resource);
  return [...all].sort();
}

function present<T extends object>(obj: T): T {
  for (const k of Object.keys(obj) as (keyof T)[]) if (obj[k] === undefined || obj[k] === null) delete obj[k];
  return obj;
}

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const str = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const iso = (v: unknown): string => (v instanceof Date ? v : new Date(String(v))).toISOString();

/** An `audit_events` row with its lineage (as node-postgres returns it) → the event. */
export function rowToEvent(row: Row): AuditEvent {
  return present({
    seq: Number(row.seq),
    chainId: num(row.chain_id),
    chainSeq: num(row.chain_seq),
    id: String(row.id),
    time: iso(row.time),
    source: row.source as AuditEvent['source'],
    action: String(row.action),
    decision: row.decision as AuditEvent['decision'],
    reason: str(row.reason),
    lineage: row.lineage as AuditEvent['lineage'],
    lineageHash: str(row.lineage_hash),
    tokenId: str(row.token_id),
    resource: str(row.resource),
    operation: str(row.operation),
    accesses: (row.accesses ?? undefined) as AuditEvent['accesses'],
    fingerprint: str(row.fingerprint),
    normalized: str(row.normalized),
    outcome: (row.outcome ?? undefined) as AuditEvent['outcome'],
    durationMs: num(row.duration_ms),
    masking: (row.masking ?? undefined) as AuditEvent['masking'],
    approvalId: str(row.approval_id),
    http: (row.http ?? undefined) as AuditEvent['http'],
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  });
}

/** An `audit_outcomes` row → the hashed outcome record. */
export function rowToOutcome(row: Row): AuditOutcomeRecord {
  return present({
    seq: Number(row.seq),
    chainId: num(row.chain_id),
    chainSeq: num(row.chain_seq),
    id: String(row.id),
    eventId: String(row.event_id),
    time: iso(row.time),
    outcome: row.outcome as AuditOutcomeRecord['outcome'],
    durationMs: num(row.duration_ms),
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  });
}
