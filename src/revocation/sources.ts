/**
 * Where a RevocationSet pulls from: the broker reads its own database; a proxy asks the broker over
 * HTTP (`GET /v1/revocations?since=`), so it needs no database credentials.
 */
import type pg from 'pg';
import { z } from 'zod';
import type { RevocationSource } from './set.ts';
import { listSince } from './store.ts';

/**
 * @example new RevocationSet({ source: databaseRevocationSource(db.pool), state })
 */
export function databaseRevocationSource(pool: pg.Pool): RevocationSource {
  return (cursor) => listSince(pool, cursor);
}

/** The body of `GET /v1/revocations`. */
export const RevocationListBody = z.object({
  // a malformed entry fails the whole sync (→ stale → fail closed), never a silently skipped id
  entries: z.array(z.object({ revocation_id: z.string().min(1), expires_at: z.string().refine((s) => !Number.isNaN(Date.parse(s))) })),
  cursor: z.string(),
  more: z.boolean().default(false),
});

/**
 * @param brokerUrl the broker's base URL (config `proxy.brokerUrl`)
 * @example new RevocationSet({ source: httpRevocationSource('https://broker.internal'), state })
 */
export function httpRevocationSource(brokerUrl: string, opts: { timeoutMs?: number } = {}): RevocationSource {
  const base = new URL('/v1/revocations', brokerUrl);
  return async (cursor) => {
    const url = new URL(base);
    if (cursor) url.searchParams.set('since', cursor);
    const res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 2000), headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`GET ${url.pathname} answered ${res.status}`);
    const body = RevocationListBody.parse(await res.json());
    return {
      entries: body.entries.map((e) => ({ revocationId: e.revocation_id, expiresAt: new Date(e.expires_at) })),
      cursor: body.cursor,
      more: body.more,
    };
  };
}
