/**
 * Chain verification: re-reads each chain in seq order, in keyset pages (constant memory, so a
 * million rows is fine), and recomputes every hash from the stored columns — the same mapping
 * queries use, so what a reader sees is what was verified — with the same formula PostgreSQL used
 * when appending (hash.ts).
 */
import type pg from 'pg';
import type { AuditEvent, AuditOutcomeRecord } from './event.ts';
import { GENESIS_HASH, chainHash, legacyChainHash } from './hash.ts';
import { EVENT_COLUMNS, OUTCOME_COLUMNS, type Row, rowToEvent, rowToOutcome } from './rows.ts';

/** The first entry whose link or content does not verify. */
export interface BrokenLink {
  table: 'audit_events' | 'audit_outcomes';
  seq: number;
  id: string;
  reason: string;
}

/** `count` events and `outcomes` outcome records verified; or the first broken link (lowest seq). */
export type AuditVerification =
  | { ok: true; count: number; outcomes: number }
  | { ok: false; firstBroken: BrokenLink };

export interface VerifyOptions {
  /** Rows per page (default 5000). */
  pageSize?: number;
}

/**
 * Verifies both hash chains (events and outcomes).
 *
 * @example
 * const result = await verifyAuditChain(pool);
 * if (!result.ok) console.error(`broken at seq ${result.firstBroken.seq}: ${result.firstBroken.reason}`);
 */
export async function verifyAuditChain(pool: pg.Pool, options: VerifyOptions = {}): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 5000;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new TypeError('verifyAuditChain: pageSize must be a positive integer');
  const [events, outcomes] = await Promise.all([
    verifyChain<AuditEvent>(pool, 'audit_events', EVENT_COLUMNS, rowToEvent, pageSize),
    verifyChain<AuditOutcomeRecord>(pool, 'audit_outcomes', OUTCOME_COLUMNS, rowToOutcome, pageSize),
  ]);
  const broken = [events, outcomes]
    .map((r) => r.broken)
    .filter((b): b is BrokenLink => b !== undefined)
    .sort((a, b) => a.seq - b.seq);
  if (broken[0]) return { ok: false, firstBroken: broken[0] };
  return { ok: true, count: events.count, outcomes: outcomes.count };
}

async function verifyChain<E extends { seq: number; id: string; prevHash: string; hash: string }>(
  pool: pg.Pool,
  table: BrokenLink['table'],
  columns: string,
  toEntry: (row: Row) => E,
  pageSize: number,
): Promise<{ count: number; broken?: BrokenLink }> {
  let prev = GENESIS_HASH;
  let after = 0;
  let count = 0;
  for (;;) {
    const { rows } = await pool.query(`SELECT ${columns} FROM ${table} WHERE seq > $1 ORDER BY seq LIMIT $2`, [after, pageSize]);
    for (const row of rows) {
      const entry = toEntry(row);
      const broken = (reason: string) => ({ count, broken: { table, seq: entry.seq, id: entry.id, reason } });
      if (entry.prevHash !== prev) {
        return broken('prev_hash does not match the previous entry: an entry was removed, inserted or reordered before this one');
      }
      // Rows appended before migration 004 carry the legacy hash form (see hash.ts).
      if (chainHash(entry) !== entry.hash && legacyChainHash(entry) !== entry.hash) {
        return broken("hash does not match the entry's content: the entry was altered");
      }
      prev = entry.hash;
      after = entry.seq;
      count++;
    }
    if (rows.length < pageSize) return { count };
  }
}
