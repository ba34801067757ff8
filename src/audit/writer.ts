/**
 * The audit writer: validates and guards events, then hands them to group committers — one for
 * events (on the request's critical path) and one for outcomes (after execution), so recording
 * outcomes never delays the next statement's audit entry. Each committer appends to chains this
 * process registered for itself (no lock shared with other processes), hashing here (hash.ts).
 *
 * Contract (security rule 6): `append` resolves only after the event is committed and flushed to
 * disk; the caller runs the statement only then. Every `append` either commits or rejects — nothing
 * is dropped silently. Semantics and outage behaviour: docs/audit.md.
 */
import { type KeyObject, randomFillSync } from 'node:crypto';
import { basename } from 'node:path';
import type pg from 'pg';
import { z } from 'zod';
import { BatonError } from '../errors.ts';
import { type AuditCheckpoint, anchorKey } from './anchor.ts';
import {
  type AuditEvent,
  type AuditEventInput,
  type AuditOutcomeInput,
  type AuditOutcomeRecord,
  auditEventInputSchema,
  auditLineageSchema,
  auditOutcomeInputSchema,
} from './event.ts';
import { type ChainCodec, type ChainHealth, GroupCommitter } from './group-commit.ts';
import { canonicalJson, sha256Hex } from './hash.ts';
import { touchedResources } from './rows.ts';
import { assertNoCredentials } from './redact.ts';

/** Proof that an event is durably in the trail; pass it to `recordOutcome`. */
export interface AuditReceipt {
  seq: number;
  /** The writer's chain and the entry's position in it (optional only so test doubles need not invent them). */
  chainId?: number;
  chainSeq?: number;
  id: string;
  time: string;
  hash: string;
}

/** Proof that an outcome is committed to the trail (asynchronously flushed: outcomes gate nothing). */
export interface AuditOutcomeReceipt {
  seq: number;
  chainId?: number;
  chainSeq?: number;
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
  /** Event chains (each with its own connection) written in parallel; outcomes use one. */
  lanes: z.number().int().min(1).max(16).optional(),
  /** Sign a checkpoint of a chain's head at least every this many entries… */
  checkpointEvery: z.number().int().min(1).max(1_000_000).optional(),
  /** …and within this many ms of its head moving (and on close). */
  checkpointMs: z.number().int().min(10).max(3_600_000).optional(),
  /** How long an outcome waits for others to join its batch (outcomes gate nothing; events never wait). */
  outcomeLingerMs: z.number().int().min(0).max(1000).optional(),
  /** Recorded with each chain this writer registers (what wrote it); host and pid are added. */
  description: z.string().min(1).max(256).optional(),
  /** Ed25519 private key signing checkpoints; default: a fresh key per chain, only in this process's memory. */
  anchorKey: z.custom<KeyObject>((v) => typeof v === 'object' && v !== null && (v as KeyObject).asymmetricKeyType === 'ed25519').optional(),
  /** Called with every committed checkpoint: publish it outside the database (broker, Redis, log). */
  onCheckpoint: z.custom<(cp: AuditCheckpoint) => void>((v) => typeof v === 'function').optional(),
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
  lanes: 2,
  checkpointEvery: 1000,
  checkpointMs: 1000,
  outcomeLingerMs: 5,
});

/** Closes a chain's idle connection after this long (it reconnects on demand). */
const IDLE_MS = 10_000;

/** An event's hashed content (its lineage replaced by `lineageHash`) and the lineage's canonical JSON. */
interface PendingEvent {
  entry: Omit<AuditEvent, 'seq' | 'chainId' | 'chainSeq' | 'prevHash' | 'hash' | 'lineage'> & { lineageHash: string };
  lineageJson: string;
}
type PendingOutcome = Omit<AuditOutcomeRecord, 'seq' | 'chainId' | 'chainSeq' | 'prevHash' | 'hash'>;

const nul = <T>(v: T | undefined): T | null => (v === undefined ? null : v);
const json = (v: unknown): string | null => (v === undefined ? null : canonicalJson(v));
const numeric = (v: number | undefined): string | null => (v === undefined ? null : String(v));
/** A PostgreSQL array literal of strings: every element quoted, `"` and `\` escaped. */
const arrayLiteral = (items: readonly string[]): string => `{${items.map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;

/** audit_events: the columns are the hashed entry, field by field (rows.ts reads them back the same way). */
const eventCodec: ChainCodec<PendingEvent> = {
  kind: 'events',
  table: 'audit_events',
  columns: [
    ['id', 'uuid'],
    ['time', 'timestamptz'],
    ['source', 'text'],
    ['action', 'text'],
    ['decision', 'text'],
    ['reason', 'text'],
    ['token_id', 'text'],
    ['resource', 'text'],
    ['operation', 'text'],
    ['accesses', 'jsonb'],
    ['fingerprint', 'text'],
    ['normalized', 'text'],
    ['outcome', 'jsonb'],
    ['duration_ms', 'numeric'],
    ['lineage_hash', 'text'],
    ['resources', 'text', 'text[]'],
    ['masking', 'jsonb'],
    ['approval_id', 'text'],
    ['http', 'jsonb'],
  ],
  content: (p) => canonicalJson(p.entry),
  row: ({ entry: e }) => [
    e.id,
    e.time,
    e.source,
    e.action,
    e.decision,
    nul(e.reason),
    nul(e.tokenId),
    nul(e.resource),
    nul(e.operation),
    json(e.accesses),
    nul(e.fingerprint),
    nul(e.normalized),
    json(e.outcome),
    numeric(e.durationMs),
    e.lineageHash,
    arrayLiteral(touchedResources(e)),
    json(e.masking),
    nul(e.approvalId),
    json(e.http),
  ],
  lineage: (p) => ({ hash: p.entry.lineageHash, json: p.lineageJson }),
};

const outcomeCodec: ChainCodec<PendingOutcome> = {
  kind: 'outcomes',
  table: 'audit_outcomes',
  columns: [
    ['id', 'uuid'],
    ['event_id', 'uuid'],
    ['time', 'timestamptz'],
    ['outcome', 'jsonb'],
    ['duration_ms', 'numeric'],
  ],
  content: (o) => canonicalJson(o),
  row: (o) => [o.id, o.eventId, o.time, canonicalJson(o.outcome), numeric(o.durationMs)],
};

/** Validated lineages by their JSON text: the same delegation chain is usually recorded many times. */
const LINEAGE_CACHE_MAX = 10_000;
/** …and at most this much JSON text (a lineage may be up to 64 links with long purposes). */
const LINEAGE_CACHE_BYTES = 8 * 1024 * 1024;

/**
 * Creates the audit writer on `pool` (migrations 002, 004 and 005 applied). Several writers, in one
 * process or many, may share one database: each appends to chains of its own. The writer opens a
 * dedicated connection per chain (from `pool.options`, one per lane plus one for outcomes), closed
 * when idle and by `close()`.
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
  const { onError = () => {}, onCheckpoint, anchorKey: key, description, outcomeLingerMs, ...rest } = parsed.data;
  const limits = { ...AUDIT_WRITER_DEFAULTS, ...rest, idleMs: IDLE_MS };
  const chain = {
    description: description ?? `${basename(process.argv[1] ?? process.argv0)} audit writer`,
    anchorKey: key ? anchorKey(key) : undefined,
    onCheckpoint,
  };

  const events = new GroupCommitter<PendingEvent>(pool, eventCodec, limits, chain, onError);
  // Outcomes gate nothing: while statements run concurrently (the last event batch held more than one
  // entry) they linger a few ms so that those of concurrent statements share one transaction (one
  // round trip, one commit) instead of one each. A lone caller gains nothing from it (measured: −15 %
  // at one proxy client), so then each outcome leaves as soon as the outcome lane is free.
  const outcomes = new GroupCommitter<PendingOutcome>(
    pool,
    outcomeCodec,
    { ...limits, lanes: 1, lingerMs: outcomeLingerMs ?? AUDIT_WRITER_DEFAULTS.outcomeLingerMs, lingerWhen: () => events.lastBatchSize > 1 },
    chain,
    onError,
  );
  const lineages: LineageCache = { entries: new Map(), bytes: 0 };

  // An idle pooled connection that dies (backend terminated, server restart) makes the pool emit
  // 'error'; unhandled, that would crash the process. The next batch simply reconnects.
  const onPoolError = (err: Error) =>
    onError(new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit store connection lost', { detail: err.message, cause: err }));
  pool.on('error', onPoolError);
  let closed = false;

  return {
    async append(input) {
      const { lineage: rawLineage, ...others } = (input ?? {}) as AuditEventInput;
      const lineage = recordedLineage(lineages, rawLineage);
      const { time, ...fields } = validate(eventFieldsSchema, others, 'event');
      const entry: PendingEvent['entry'] = {
        id: uuidv7(),
        // Normalised so the value survives timestamptz unchanged and the hash re-computes.
        time: (time === undefined ? new Date() : new Date(time)).toISOString(),
        ...fields,
        lineageHash: lineage.hash,
      };
      const sealed = await events.submit({ entry, lineageJson: lineage.json });
      return { seq: sealed.seq, chainId: sealed.chainId, chainSeq: sealed.chainSeq, id: entry.id, time: entry.time, hash: sealed.hash };
    },

    async recordOutcome(receipt, input) {
      const eventId = z.uuid().safeParse(receipt?.id);
      if (!eventId.success) throw new TypeError('recordOutcome: receipt.id must be the id from append()');
      const { durationMs, ...outcome } = validate(auditOutcomeInputSchema, input, 'outcome');
      const pending: PendingOutcome = { id: uuidv7(), eventId: eventId.data, time: new Date().toISOString(), outcome, durationMs };
      const sealed = await outcomes.submit(pending);
      return { seq: sealed.seq, chainId: sealed.chainId, chainSeq: sealed.chainSeq, id: sealed.id, eventId: sealed.eventId, hash: sealed.hash };
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

/** Random bytes for ids, drawn 4 KiB at a time (one call into the CSPRNG per 256 ids). */
const randomPool = Buffer.alloc(4096);
let randomAt = randomPool.length;

/**
 * A time-ordered UUID (RFC 9562 version 7: 48-bit Unix milliseconds, then random bits). Ids are
 * unique-indexed; ordered ones land on the index's rightmost page instead of a random one.
 */
function uuidv7(): string {
  if (randomAt + 16 > randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  const b = Buffer.from(randomPool.subarray(randomAt, (randomAt += 16)));
  const ms = Date.now();
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Validated lineages by JSON text, bounded in entries and bytes (cleared when full: forgetting costs a re-validation). */
interface LineageCache {
  entries: Map<string, { hash: string; json: string }>;
  bytes: number;
}

/** The event without its lineage (validated on its own, see {@link recordedLineage}). */
const eventFieldsSchema = auditEventInputSchema.omit({ lineage: true });

/**
 * The lineage as recorded: validated and guarded like the rest of the event, then stored once under
 * its content address. The same chain is usually recorded many times (every statement of a
 * session), so validated lineages are kept by their JSON text: equal text, equal value.
 */
function recordedLineage(cache: LineageCache, lineage: unknown): { hash: string; json: string } {
  let key: string | undefined;
  try {
    key = JSON.stringify(lineage);
  } catch {
    key = undefined; // cyclic or BigInt: the schema refuses it below
  }
  const known = key === undefined ? undefined : cache.entries.get(key);
  if (known) return known;
  const result = auditLineageSchema.safeParse(lineage);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `lineage.${i.path.join('.')}: ${i.code}`).join('; ');
    throw new BatonError('BATON_ERR_AUDIT_REJECTED', 'audit event refused: invalid', { detail: issues });
  }
  assertNoCredentials({ lineage: result.data });
  const text = canonicalJson(result.data);
  const recorded = { hash: sha256Hex(text), json: text };
  if (key !== undefined) {
    cache.bytes += key.length + text.length;
    if (cache.entries.size >= LINEAGE_CACHE_MAX || cache.bytes > LINEAGE_CACHE_BYTES) {
      cache.entries.clear();
      cache.bytes = key.length + text.length;
    }
    cache.entries.set(key, recorded);
  }
  return recorded;
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
