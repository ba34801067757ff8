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
    const entries = await insertEntries(client, input);
    await client.query('COMMIT');
    return entries;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Bounds on what one revocation may store (see `revokeBounded`). */
export interface RevokeBounds {
  /**
   * Ids of the revoked token's ancestors (its chain without the revoked id). When one of them is
   * already revoked until at least `expiresAt`, the token is already dead: nothing new is stored.
   */
  ancestorIds?: readonly string[];
  /**
   * Most outstanding (unexpired) rows one lineage — rows with the same `tokenId`, the authority token
   * id every attenuated child carries — may hold. Revoking the lineage's root (the issued token
   * itself, `isRoot`) is always accepted, and makes the lineage's other rows redundant (they are
   * deleted). Absent: unbounded.
   */
  maxOutstandingPerLineage?: number;
  /** The revoked id is the lineage's root (depth 0): never refused by the bound. */
  isRoot?: boolean;
  now?: Date;
}

export type RevokeOutcome =
  | { kind: 'stored'; entries: RevocationEntry[] }
  /** Already dead: this ancestor id is revoked (and outlives the token); nothing was stored. */
  | { kind: 'covered'; by: string; entry: RevocationEntry }
  /** The lineage holds `outstanding` rows already; the earliest of them expires in `retryAfterSeconds`. */
  | { kind: 'lineage_full'; outstanding: number; retryAfterSeconds: number };

/**
 * `revoke` with the flood bounds of a public endpoint: nothing is stored for a token whose ancestor is
 * already revoked, and a lineage holds at most `maxOutstandingPerLineage` unexpired rows (checked
 * under the same lock as the insert, so concurrent calls cannot overshoot). Every row still expires
 * with the token it revokes (`expiresAt`), so purge removes it.
 *
 * @example
 * const r = await revokeBounded(pool, { revocationIds: [last], tokenId, expiresAt, revokedBy: 'possession' },
 *   { ancestorIds: chain.slice(0, -1), maxOutstandingPerLineage: 100 });
 */
export async function revokeBounded(pool: pg.Pool, input: RevokeInput, bounds: RevokeBounds): Promise<RevokeOutcome> {
  if (input.revocationIds.length === 0) throw new TypeError('revoke: no revocation ids');
  const now = bounds.now ?? new Date();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    if (bounds.ancestorIds?.length) {
      const covered = await client.query<{ revocation_id: string; expires_at: Date }>(
        'SELECT revocation_id, expires_at FROM revocations WHERE revocation_id = ANY($1) AND expires_at >= $2 ORDER BY seq LIMIT 1',
        [bounds.ancestorIds, input.expiresAt],
      );
      const row = covered.rows[0];
      if (row) {
        await client.query('COMMIT');
        return { kind: 'covered', by: row.revocation_id, entry: { revocationId: row.revocation_id, expiresAt: row.expires_at } };
      }
    }
    if (bounds.maxOutstandingPerLineage !== undefined && input.tokenId && !bounds.isRoot) {
      // re-revoking an id already stored is not a new row
      const res = await client.query<{ n: number; earliest: Date | null }>(
        `SELECT count(*)::int AS n, min(expires_at) AS earliest FROM revocations
          WHERE token_id = $1 AND expires_at > $2 AND NOT (revocation_id = ANY($3))`,
        [input.tokenId, now, input.revocationIds],
      );
      const { n, earliest } = res.rows[0]!;
      const fresh = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM revocations WHERE revocation_id = ANY($1)', [input.revocationIds]);
      const adding = input.revocationIds.length - fresh.rows[0]!.n;
      if (adding > 0 && n + adding > bounds.maxOutstandingPerLineage) {
        await client.query('COMMIT');
        const retryAfterSeconds = Math.max(1, Math.ceil(((earliest ?? now).getTime() - now.getTime()) / 1000));
        return { kind: 'lineage_full', outstanding: n, retryAfterSeconds };
      }
    }
    const entries = await insertEntries(client, input);
    if (bounds.isRoot && input.tokenId) {
      // the root's row kills every token of the lineage: the others are redundant (and never outlive it)
      await client.query('DELETE FROM revocations WHERE token_id = $1 AND NOT (revocation_id = ANY($2)) AND expires_at <= $3', [
        input.tokenId,
        input.revocationIds,
        entries.reduce((min, e) => (e.expiresAt < min ? e.expiresAt : min), entries[0]!.expiresAt),
      ]);
    }
    await client.query('COMMIT');
    return { kind: 'stored', entries };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function insertEntries(client: pg.PoolClient, input: RevokeInput): Promise<RevocationEntry[]> {
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
  return entries;
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
