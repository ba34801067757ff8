/**
 * The live-session registry (issue 16): each proxy process publishes the client sessions it holds
 * open to the shared PostgreSQL (`proxy_sessions`, migration 010) and the broker reads them for
 * `GET /v1/sessions` and the console. Proxies may be processes of their own (`baton proxy`), so the
 * registry is a table every process can reach, kept current by a heartbeat: a proxy refreshes its
 * one row of `proxy_heartbeats` every `flushMs` (sessions are written only when they open, change or
 * close), and a reader ignores (and prunes) the sessions of proxies whose heartbeat is older than
 * {@link STALE_AFTER_MS} — proxies that died.
 *
 * Observability only: enforcement never reads this table, so writes are batched and best effort
 * (a failed flush is logged and retried by the next one). Never a token or SQL text: lineage (ids,
 * subjects, purposes) and counts.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { z } from 'zod';
import { auditLineageSchema, type LineageLink } from '../audit/event.ts';

/** Shared-state channel on which the broker announces a session to end (its id). */
export const SESSION_END_CHANNEL = 'sessions.end';
/** How often a proxy writes its sessions' changes and heartbeat. */
export const FLUSH_MS = 2_000;
/** A row not refreshed for this long belongs to a proxy that is gone. */
export const STALE_AFTER_MS = 15_000;

/** One open proxy session as `GET /v1/sessions` returns it (the single source of its shape). */
export const liveSessionSchema = z.strictObject({
  /** `ses_…`, random, assigned by the proxy. */
  id: z.string(),
  /** The proxy process holding it (`host/pid/…`). */
  proxy: z.string(),
  kind: z.enum(['pg']),
  /** The upstream (database name) the session is connected to. */
  upstream: z.string(),
  /** The client's address. */
  remote: z.string(),
  /** The authority token id of the session token's lineage. */
  tokenId: z.string().optional(),
  /** The session token's last block: revoking it ends the session (and nothing above it). */
  revocationId: z.string(),
  lineage: auditLineageSchema,
  startedAt: z.string(),
  lastActivityAt: z.string(),
  /** Statements allowed (and run) so far. */
  statements: z.number().int(),
  /** Statements refused so far. */
  denied: z.number().int(),
  /** Seconds since the last statement (or the start). */
  idleSeconds: z.number().int(),
});
export type LiveSession = z.infer<typeof liveSessionSchema>;

/** What a proxy knows of a session when it opens. */
export interface SessionOpening {
  kind: 'pg';
  upstream: string;
  remote: string;
  tokenId?: string;
  revocationId: string;
  lineage: LineageLink[];
}

/** A published session: count its statements, and close it when it ends. */
export interface PublishedSession {
  readonly id: string;
  statement(allowed: boolean): void;
  close(): void;
}

export interface SessionRegistry {
  open(session: SessionOpening): PublishedSession;
  /** Writes what is pending now (tests, shutdown). */
  flush(): Promise<void>;
  /** Stops the heartbeat and removes this proxy's rows. */
  close(): Promise<void>;
}

interface Entry extends SessionOpening {
  id: string;
  startedAt: Date;
  lastActivityAt: Date;
  statements: number;
  denied: number;
  /** 'new' = not inserted yet; 'dirty' = counts changed since the last flush. */
  state: 'new' | 'dirty' | 'clean';
}

/**
 * A registry writing to `pool` for this proxy process.
 *
 * @example
 * const registry = createSessionRegistry(db.pool, { log: (m) => logger.warn(m) });
 * startPgProxy(config, { …, wrapGate: (gate) => publishedSessions(gate, registry) });
 */
export function createSessionRegistry(
  pool: pg.Pool,
  opts: { proxy?: string; flushMs?: number; log?: (message: string) => void; now?: () => Date } = {},
): SessionRegistry {
  const proxy = opts.proxy ?? `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  const now = opts.now ?? (() => new Date());
  const open = new Map<string, Entry>();
  const ended = new Set<string>();
  let flushing: Promise<void> | undefined;
  let closed = false;

  async function write(): Promise<void> {
    const fresh = [...open.values()].filter((e) => e.state === 'new');
    const dirty = [...open.values()].filter((e) => e.state === 'dirty');
    const gone = [...ended];
    for (const e of [...fresh, ...dirty]) e.state = 'clean';
    ended.clear();
    try {
      // first: a reader never sees a session of a proxy without a heartbeat
      await pool.query('INSERT INTO proxy_heartbeats (proxy) VALUES ($1) ON CONFLICT (proxy) DO UPDATE SET heartbeat_at = now()', [proxy]);
      if (fresh.length) {
        await pool.query(
          `INSERT INTO proxy_sessions (id, proxy, kind, upstream, remote, token_id, revocation_id, lineage, started_at, last_activity_at, statements, denied)
           SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(id text, proxy text, kind text, upstream text, remote text, token_id text,
                  revocation_id text, lineage jsonb, started_at timestamptz, last_activity_at timestamptz, statements int, denied int)
           ON CONFLICT (id) DO NOTHING`,
          [JSON.stringify(fresh.map((e) => row(e, proxy)))],
        );
      }
      if (dirty.length) {
        await pool.query(
          `UPDATE proxy_sessions AS s SET last_activity_at = r.last_activity_at, statements = r.statements, denied = r.denied
             FROM jsonb_to_recordset($1::jsonb) AS r(id text, last_activity_at timestamptz, statements int, denied int)
            WHERE s.id = r.id`,
          [JSON.stringify(dirty.map((e) => ({ id: e.id, last_activity_at: e.lastActivityAt.toISOString(), statements: e.statements, denied: e.denied })))],
        );
      }
      if (gone.length) await pool.query('DELETE FROM proxy_sessions WHERE id = ANY($1::text[])', [gone]);
    } catch (err) {
      // retried by the next flush: put back what did not land
      for (const e of fresh) if (open.has(e.id)) e.state = 'new';
      for (const e of dirty) if (open.has(e.id) && e.state === 'clean') e.state = 'dirty';
      for (const id of gone) ended.add(id);
      opts.log?.(`live-session registry not written (retrying): ${(err as Error).message}`);
    }
  }

  function flush(): Promise<void> {
    flushing ??= write().finally(() => (flushing = undefined));
    return flushing;
  }

  const timer = setInterval(() => void flush(), opts.flushMs ?? FLUSH_MS);
  timer.unref();

  return {
    open(opening) {
      const id = `ses_${randomBytes(12).toString('base64url')}`;
      const at = now();
      const entry: Entry = { ...opening, id, startedAt: at, lastActivityAt: at, statements: 0, denied: 0, state: 'new' };
      if (!closed) open.set(id, entry);
      return {
        id,
        statement(allowed) {
          if (allowed) entry.statements++;
          else entry.denied++;
          entry.lastActivityAt = now();
          if (entry.state === 'clean') entry.state = 'dirty';
        },
        close() {
          if (!open.delete(id)) return;
          // never written: nothing to delete
          if (entry.state !== 'new') ended.add(id);
        },
      };
    },
    flush,
    async close() {
      closed = true;
      clearInterval(timer);
      await flushing;
      open.clear();
      ended.clear();
      await pool
        .query('WITH s AS (DELETE FROM proxy_sessions WHERE proxy = $1) DELETE FROM proxy_heartbeats WHERE proxy = $1', [proxy])
        .catch((err: Error) => opts.log?.(`live-session registry not cleared: ${err.message}`));
    },
  };
}

function row(e: Entry, proxy: string) {
  return {
    id: e.id,
    proxy,
    kind: e.kind,
    upstream: e.upstream,
    remote: e.remote,
    token_id: e.tokenId ?? null,
    revocation_id: e.revocationId,
    lineage: e.lineage,
    started_at: e.startedAt.toISOString(),
    last_activity_at: e.lastActivityAt.toISOString(),
    statements: e.statements,
    denied: e.denied,
  };
}

/**
 * The open sessions of every live proxy, most recently active first; rows of proxies whose
 * heartbeat stopped are pruned on the way.
 *
 * @example
 * const sessions = await listLiveSessions(pool, { limit: 200 });
 */
export async function listLiveSessions(pool: pg.Pool, opts: { limit?: number; staleAfterMs?: number } = {}): Promise<LiveSession[]> {
  const staleMs = opts.staleAfterMs ?? STALE_AFTER_MS;
  await pool.query(
    `WITH stale AS (DELETE FROM proxy_heartbeats WHERE heartbeat_at < now() - make_interval(secs => $1::float8 / 1000) RETURNING proxy)
     DELETE FROM proxy_sessions s WHERE s.proxy IN (SELECT proxy FROM stale)
        OR NOT EXISTS (SELECT 1 FROM proxy_heartbeats h WHERE h.proxy = s.proxy)`,
    [staleMs],
  );
  const { rows } = await pool.query<{
    id: string;
    proxy: string;
    kind: 'pg';
    upstream: string;
    remote: string;
    token_id: string | null;
    revocation_id: string;
    lineage: LineageLink[];
    started_at: Date;
    last_activity_at: Date;
    statements: number;
    denied: number;
    idle: number;
  }>(
    `SELECT *, floor(extract(epoch FROM now() - last_activity_at))::int AS idle FROM proxy_sessions
      ORDER BY last_activity_at DESC LIMIT $1`,
    [opts.limit ?? 500],
  );
  return rows.map((r) => ({
    id: r.id,
    proxy: r.proxy,
    kind: r.kind,
    upstream: r.upstream,
    remote: r.remote,
    ...(r.token_id ? { tokenId: r.token_id } : {}),
    revocationId: r.revocation_id,
    lineage: r.lineage,
    startedAt: r.started_at.toISOString(),
    lastActivityAt: r.last_activity_at.toISOString(),
    statements: r.statements,
    denied: r.denied,
    idleSeconds: Math.max(0, r.idle),
  }));
}
