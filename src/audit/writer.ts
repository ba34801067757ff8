/**
 * The audit writer: validates and guards events, then hands them to group committers — one for the
 * event chain (on the request's critical path) and one for the outcome chain (after execution), so
 * recording outcomes never delays the next statement's audit entry.
 *
 * Contract (security rule 6): `append` resolves only after the event is committed and flushed to
 * disk; the caller runs the statement only then. Every `append` either commits or rejects — nothing
 * is dropped silently. Semantics and outage behaviour: docs/audit.md.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { BatonError } from '../errors.ts';
import {
  type AuditEvent,
  type AuditEventInput,
  type AuditOutcomeInput,
  type AuditOutcomeRecord,
  auditEventInputSchema,
  auditOutcomeInputSchema,
} from './event.ts';
import { type ChainHealth, GroupCommitter } from './group-commit.ts';
import { assertNoCredentials } from './redact.ts';

/** Proof that an event is durably in the trail; pass it to `recordOutcome`. */
export interface AuditReceipt {
  seq: number;
  id: string;
  time: string;
  hash: string;
}

/** Proof that an outcome is committed to the trail (asynchronously flushed: outcomes gate nothing). */
export interface AuditOutcomeReceipt {
  seq: number;
  id: string;
  eventId: string;
  hash: string;
}

/** Readiness snapshot: `ok` is false while the last event batch failed or after `close()`. */
export interface AuditWriterHealth {
  ok: boolean;
  closed: boolean;
  events: ChainHealth;
  outcomes: ChainHealth;
}

export interface AuditWriter {
  /** Durably records an event; resolves after its COMMIT is flushed to disk. Rejects with `BATON_ERR_AUDIT_UNAVAILABLE` (store down, queue full) or `BATON_ERR_AUDIT_REJECTED` (invalid event, credential-like value). */
  append(event: AuditEventInput): Promise<AuditReceipt>;
  /**
   * Records what happened after execution, as its own hash-chained row. Committed without waiting
   * for the WAL flush (the event, which gated execution, is already durable); a crash can lose only
   * the newest outcomes. Await it or attach `.catch`.
   */
  recordOutcome(receipt: Pick<AuditReceipt, 'id'>, outcome: AuditOutcomeInput): Promise<AuditOutcomeReceipt>;
  health(): AuditWriterHealth;
  /** Stops accepting entries and waits for queued ones to settle. Leaves the pool open (the caller owns it). */
  close(): Promise<void>;
}

/** Writer options; all optional. Defaults in {@link AUDIT_WRITER_DEFAULTS}. */
export const auditWriterOptionsSchema = z.strictObject({
  /** Entries queued or in flight per chain before `append` rejects at once. */
  maxQueue: z.number().int().min(1).max(1_000_000).optional(),
  /** Approximate bytes (JSON size) queued per chain before `append` rejects at once. */
  maxQueueBytes: z.number().int().min(1024).optional(),
  /** Entries per transaction. */
  maxBatch: z.number().int().min(1).max(10_000).optional(),
  /** Budget for one batch: connect, lock, insert, commit and flush. */
  timeoutMs: z.number().int().min(50).max(600_000).optional(),
  /** Called for each failed batch and each idle pool connection error (for logs/metrics). */
  onError: z.custom<(err: BatonError) => void>((v) => typeof v === 'function').optional(),
});
export type AuditWriterOptions = z.input<typeof auditWriterOptionsSchema>;

/** All writer defaults in one place. */
export const AUDIT_WRITER_DEFAULTS = Object.freeze({
  maxQueue: 10_000,
  maxQueueBytes: 64 * 1024 * 1024,
  maxBatch: 1000,
  timeoutMs: 5000,
});

type PendingEvent = Omit<AuditEvent, 'seq' | 'prevHash' | 'hash'>;
type PendingOutcome = Omit<AuditOutcomeRecord, 'seq' | 'prevHash' | 'hash'>;

/**
 * Creates the audit writer on `pool` (migrations `002_audit.sql` and `004_audit_fast_append.sql` applied). Several writers, in one
 * process or many, may share one database: the chain stays correct.
 *
 * @example
 * const audit = createAuditWriter(pool, { onError: (e) => log.warn(e.detail) });
 * const receipt = await audit.append({ source: 'proxy-pg', action: 'statement', decision: 'allow', lineage, tokenId });
 * const result = await upstream.query(sql); // only after the audit entry is durable
 * audit.recordOutcome(receipt, { rowCount: result.rowCount ?? 0, tag: result.command, durationMs }).catch(log.warn);
 */
export function createAuditWriter(pool: pg.Pool, options: AuditWriterOptions = {}): AuditWriter {
  const parsed = auditWriterOptionsSchema.safeParse(options);
  if (!parsed.success) throw new TypeError(`createAuditWriter: invalid options: ${z.prettifyError(parsed.error)}`);
  const { onError = () => {}, ...rest } = parsed.data;
  const limits = { ...AUDIT_WRITER_DEFAULTS, ...rest };

  const events = new GroupCommitter<PendingEvent>(pool, { table: 'audit_events', chain: 1 }, limits, onError);
  const outcomes = new GroupCommitter<PendingOutcome>(pool, { table: 'audit_outcomes', chain: 2 }, limits, onError);

  // An idle pooled connection that dies (backend terminated, server restart) makes the pool emit
  // 'error'; unhandled, that would crash the process. The next batch simply reconnects.
  const onPoolError = (err: Error) =>
    onError(new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit store connection lost', { detail: err.message, cause: err }));
  pool.on('error', onPoolError);
  let closed = false;

  return {
    async append(input) {
      const event = validate(auditEventInputSchema, input, 'event');
      const { time, ...fields } = event;
      const pending: PendingEvent = {
        id: randomUUID(),
        // Normalised so the value survives timestamptz unchanged and the hash re-computes.
        time: (time === undefined ? new Date() : new Date(time)).toISOString(),
        ...fields,
      };
      const sealed = await events.submit(pending);
      return { seq: sealed.seq, id: sealed.id, time: sealed.time, hash: sealed.hash };
    },

    async recordOutcome(receipt, input) {
      const eventId = z.uuid().safeParse(receipt?.id);
      if (!eventId.success) throw new TypeError('recordOutcome: receipt.id must be the id from append()');
      const { durationMs, ...outcome } = validate(auditOutcomeInputSchema, input, 'outcome');
      const pending: PendingOutcome = { id: randomUUID(), eventId: eventId.data, time: new Date().toISOString(), outcome, durationMs };
      const sealed = await outcomes.submit(pending);
      return { seq: sealed.seq, id: sealed.id, eventId: sealed.eventId, hash: sealed.hash };
    },

    health() {
      const e = events.health();
      return { ok: e.ok && !closed, closed, events: e, outcomes: outcomes.health() };
    },

    async close() {
      closed = true;
      await Promise.all([events.close(), outcomes.close()]);
      pool.removeListener('error', onPoolError);
    },
  };
}

/**
 * Parses an entry and applies the credential guard. Values come partly from callers' tokens (a
 * delegation `purpose`), so an unacceptable one is a coded refusal, not a TypeError. Zod issues are
 * reduced to paths and codes: messages could echo the value.
 */
function validate<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`).join('; ');
    throw new BatonError('BATON_ERR_AUDIT_REJECTED', `audit ${what} refused: invalid`, { detail: issues });
  }
  assertNoCredentials(result.data);
  return result.data;
}
