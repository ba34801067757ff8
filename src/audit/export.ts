/**
 * JSON-lines export for SIEMs: every matching record, oldest first, one JSON object per line,
 * streamed page by page with backpressure (constant memory).
 */
import { once } from 'node:events';
import type pg from 'pg';
import { type AuditFilters, auditCursor, queryAudit } from './query.ts';

/** Filters for an export: those of `queryAudit` without paging and order (a `cursor` resumes). */
export type AuditExportFilters = Omit<AuditFilters, 'limit' | 'order'>;

/**
 * Writes matching records to `out` as JSON lines. Resolves with how many were written and the cursor
 * to resume from next time (pass it back as `filters.cursor` for an incremental export). Does not
 * end `out` (the caller owns it).
 *
 * @example
 * await exportJsonLines(pool, { since: '2026-01-01T00:00:00Z' }, createWriteStream('audit.jsonl'));
 */
export async function exportJsonLines(
  pool: pg.Pool,
  filters: AuditExportFilters,
  out: NodeJS.WritableStream,
): Promise<{ count: number; resumeCursor: string | null }> {
  let cursor = filters.cursor;
  let resumeCursor = filters.cursor ?? null;
  let count = 0;
  for (;;) {
    const page = await queryAudit(pool, { ...filters, cursor, order: 'asc', limit: 1000 });
    for (const record of page.events) {
      count++;
      resumeCursor = auditCursor(record.seq, 'asc');
      if (!out.write(`${JSON.stringify(record)}\n`)) await once(out, 'drain');
    }
    if (page.nextCursor === null) return { count, resumeCursor };
    cursor = page.nextCursor;
  }
}
