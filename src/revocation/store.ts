/**
 * The durable revocation list in PostgreSQL: the source of truth that the Redis fan-out only speeds
 * up. A cursor (`<epoch>:<seq>`) lets any reader fetch exactly what it has not seen yet.
 */
import type pg from 'pg';

/** One revoked id, as every reader needs it. */
export interface RevocationEntry {
  revocationId: string;
  /** When every token carrying this id has expired; the entry may be dropped after that. */
  expiresAt: Date;
}

export interface RevokeInput {
  /** Ids to revoke (usually one: a token's last block). */
  revocationIds: readonly string[];
  /** The revoked token's id (authority `token_id`), when known. */
  tokenId?: string;
  expiresAt: Date;
  /** The revoking token's id, or `'possession'`. */
  revokedBy: string;
  reason?: string;
}

export interface RevocationPage {
  entries: RevocationEntry[];
  /** Pass back as `since` to get only later entries. */
  cursor: string;
  /** More entries are waiting: ask again with `cursor`. */
  more: boolean;
}

/** Entries per page of `listSince`. */
export const PAGE_SIZE = 1000;
/** Serialises revocations so `seq` order is commit order ("revo"). */
const LOCK_KEY = 0x7265766f;

/**
 * Persists revocations. Idempotent: revoking an id again keeps one row, and only a later `expiresAt`
 * changes it (with a new `seq`, so readers learn the longer lifetime).
 *
 * @returns the entries as stored
 * @example await revoke(pool, { revocationIds: [id], expiresAt, revokedBy: 'possession' });
 */
export async function revoke(pool: pg.Pool, input: RevokeInput): Promise<RevocationEntry[]> {
  if (input.revocationIds.length === 0) throw new TypeError('revoke: no revocation ids');
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // A transaction-scoped lock is released only after the commit is visible, so a reader that sees
    // seq N has already been able to see every seq < N: a `since` cursor can never skip a row.
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    const entries: RevocationEntry[] = [];
    for (const id of input.revocationIds) {
      const res = await client.query<{ revocation_id: string; expires_at: Date }>(
        `INSERT INTO revocations (revocation_id, token_id, expires_at, revoked_by, reason)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (revocation_id) DO UPDATE
           SET expires_at = EXCLUDED.expires_at, seq = nextval('revocations_seq')
           WHERE revocations.expires_at < EXCLUDED.expires_at
         RETURNING revocation_id, expires_at`,
        [id, input.tokenId ?? null, input.expiresAt, input.revokedBy, input.reason ?? null],
      );
      const row = res.rows[0] ?? (await client.query<{ revocation_id: string; expires_at: Date }>('SELECT revocation_id, expires_at FROM revocations WHERE revocation_id = $1', [id])).rows[0]!;
      entries.push({ revocationId: row.revocation_id, expiresAt: row.expires_at });
    }
    await client.query('COMMIT');
    return entries;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Entries stored after `cursor` (all live entries when `cursor` is absent, malformed, or from another
 * database), oldest first, at most `limit`. Entries already expired at `now` are left out.
 *
 * @example let page = await listSince(pool); … page = await listSince(pool, page.cursor);
 */
export async function listSince(pool: pg.Pool, cursor?: string, opts: { limit?: number; now?: Date } = {}): Promise<RevocationPage> {
  const limit = Math.min(Math.max(opts.limit ?? PAGE_SIZE, 1), PAGE_SIZE);
  const epoch = (await pool.query<{ epoch: string }>('SELECT epoch FROM revocation_epoch')).rows[0]!.epoch;
  const parsed = parseCursor(cursor);
  const after = parsed && parsed.epoch === epoch ? parsed.seq : 0n;
  const res = await pool.query<{ revocation_id: string; expires_at: Date; seq: string }>(
    `SELECT revocation_id, expires_at, seq FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2`,
    [after.toString(), limit + 1],
  );
  const rows = res.rows.slice(0, limit);
  const last = rows.at(-1);
  const now = opts.now ?? new Date();
  return {
    // expired rows still advance the cursor; they are just not worth sending
    entries: rows.filter((r) => r.expires_at > now).map((r) => ({ revocationId: r.revocation_id, expiresAt: r.expires_at })),
    cursor: `${epoch}:${last ? last.seq : after.toString()}`,
    more: res.rows.length > limit,
  };
}

/**
 * Deletes entries whose `expiresAt` is more than `graceMs` before `now` (the grace covers clock skew
 * between broker and proxies). @returns how many were deleted
 * @example await purgeExpired(pool, new Date());
 */
export async function purgeExpired(pool: pg.Pool, now: Date, graceMs = 60_000): Promise<number> {
  const res = await pool.query('DELETE FROM revocations WHERE expires_at < $1', [new Date(now.getTime() - graceMs)]);
  return res.rowCount ?? 0;
}

/**
 * Runs `purgeExpired` every `everyMs` until the returned function is called. Failures are reported
 * to `log` and retried next time (a purge is never urgent).
 */
export function schedulePurge(pool: pg.Pool, opts: { everyMs?: number; graceMs?: number; log?: (msg: string) => void } = {}): () => void {
  const timer = setInterval(() => {
    purgeExpired(pool, new Date(), opts.graceMs).catch((err: Error) => opts.log?.(`revocation purge failed: ${err.message}`));
  }, opts.everyMs ?? 60_000);
  timer.unref();
  return () => clearInterval(timer);
}

/** The issued token whose authority block has `revocationId`: its id and (exact) expiry. */
export async function issuedToken(pool: pg.Pool, revocationId: string): Promise<{ tokenId: string; expiresAt: Date } | undefined> {
  const res = await pool.query<{ token_id: string; expires_at: Date }>('SELECT token_id, expires_at FROM issued_tokens WHERE revocation_id = $1', [revocationId]);
  const row = res.rows[0];
  return row ? { tokenId: row.token_id, expiresAt: row.expires_at } : undefined;
}

/**
 * The latest expiry of any token this broker issued (at least `now`). Every live token descends from
 * an issued one and cannot outlive it, so this bounds the lifetime of any id the broker cannot place.
 */
export async function latestIssuedExpiry(pool: pg.Pool, now: Date): Promise<Date> {
  const res = await pool.query<{ latest: Date | null }>('SELECT max(expires_at) AS latest FROM issued_tokens');
  const latest = res.rows[0]?.latest;
  return latest && latest > now ? latest : now;
}

function parseCursor(cursor: string | undefined): { epoch: string; seq: bigint } | undefined {
  const m = cursor ? /^([0-9a-f]{1,64}):(\d{1,19})$/.exec(cursor) : null;
  return m ? { epoch: m[1]!, seq: BigInt(m[2]!) } : undefined;
}
