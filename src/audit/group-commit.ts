/**
 * Group commit for one hash chain: entries submitted while a batch is being written queue up and go
 * together in the next batch, so throughput grows with concurrency while each promise still resolves
 * only after its row is committed and flushed to disk.
 *
 * A batch is ONE round trip: a single autocommit call of `audit_append(chain, contents, …)`
 * (migrations/004_audit_fast_append.sql), which takes the chain's advisory lock, reads the head, allocates seqs, hashes each entry with
 * PostgreSQL's `sha256()` over the canonical JSON computed here, inserts the batch and commits with
 * synchronous_commit = on. When the call returns, the batch is durable. The chain order is decided
 * inside the database under the lock, so several writer processes keep one valid chain, and up to
 * {@link MAX_IN_FLIGHT} batches may be on the wire at once: the next one waits for the lock on the
 * server instead of waiting for a client round trip.
 *
 * Failure never leaves the committer broken: every batch takes a fresh pooled connection, a failed
 * connection is destroyed, and the next batch simply tries again. Memory is bounded: past
 * `maxQueue` entries or `maxQueueBytes`, `submit` rejects at once (backpressure).
 */
import type pg from 'pg';
import { BatonError, describe } from '../errors.ts';
import { contentJson } from './hash.ts';

/**
 * Batches of one chain on the wire at once. The second one's statement is already at the server,
 * queued on the chain lock, when the first commits; more would only split groups into smaller ones.
 */
const MAX_IN_FLIGHT = 2;

/** Named: parsed once per connection; then each batch is Bind/Execute/Sync, one round trip. */
const APPEND = {
  name: 'baton_audit_append',
  text: 'SELECT first_prev, seqs, hashes FROM audit_append($1::integer, $2::text[], $3::integer)',
};

/** Of a batch's remaining budget, kept for insert, commit and flush after the lock wait (at most a quarter). */
const LOCK_MARGIN_MS = 500;

/** An entry completed with its chain position, predecessor and hash. */
export type Sealed<I> = I & { seq: number; prevHash: string; hash: string };

/** How one chain is stored. */
export interface ChainSpec {
  /** Table holding the chain (for messages). */
  table: 'audit_events' | 'audit_outcomes';
  /** Its chain number in `audit_append` (migration 004): 1 = events, 2 = outcomes. */
  chain: 1 | 2;
}

export interface GroupCommitLimits {
  maxQueue: number;
  maxQueueBytes: number;
  maxBatch: number;
  timeoutMs: number;
}

/** A snapshot of one chain's committer. */
export interface ChainHealth {
  /** The last batch committed (or none has been tried yet). */
  ok: boolean;
  /** Entries queued or in flight. */
  pending: number;
  pendingBytes: number;
  committed: number;
  /** Transactions committed (committed / batches = mean group size). */
  batches: number;
  /** Entries rejected because the store failed. */
  failed: number;
  /** Entries rejected at once because the queue was full. */
  shed: number;
  lastCommitAt?: string;
  lastError?: { at: string; detail: string };
}

/** An entry with its hashed content already serialised (outside any lock, before it queues). */
interface Pending<I> {
  item: I;
  /** Canonical JSON of the entry without seq/prevHash/hash: what PostgreSQL hashes and stores. */
  content: string;
  resolve(entry: Sealed<I>): void;
  reject(err: BatonError): void;
}

/** What the append function returns for a batch. */
interface AppendResult {
  first_prev: string;
  seqs: string[];
  hashes: string[];
}

/**
 * One chain's bounded, group-committing queue.
 *
 * @example
 * const chain = new GroupCommitter(pool, { table: 'audit_events', chain: 1 }, limits, log);
 * const sealed = await chain.submit(event); // committed and durable
 */
export class GroupCommitter<I extends object> {
  readonly #pool: pg.Pool;
  readonly #spec: ChainSpec;
  readonly #limits: GroupCommitLimits;
  readonly #onError: (err: BatonError) => void;
  #queue: Pending<I>[] = [];
  #pending = 0;
  #pendingBytes = 0;
  #inFlight = 0;
  #scheduled = false;
  #closed = false;
  #drained: (() => void)[] = [];
  #health: Omit<ChainHealth, 'pending' | 'pendingBytes'> = { ok: true, committed: 0, batches: 0, failed: 0, shed: 0 };

  constructor(pool: pg.Pool, spec: ChainSpec, limits: GroupCommitLimits, onError: (err: BatonError) => void) {
    this.#pool = pool;
    this.#spec = spec;
    this.#limits = limits;
    this.#onError = onError;
  }

  /** Queues an entry; resolves with the sealed entry once committed and durable, rejects otherwise. */
  submit(item: I): Promise<Sealed<I>> {
    if (this.#closed) return Promise.reject(unavailable('the audit writer is closed'));
    const content = contentJson(item as Record<string, unknown>);
    if (this.#pending >= this.#limits.maxQueue || this.#pendingBytes + content.length > this.#limits.maxQueueBytes) {
      this.#health.shed++;
      return Promise.reject(
        new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit trail overloaded: request refused until it catches up', {
          detail: `${this.#spec.table} queue full: ${this.#pending} entries, ${this.#pendingBytes} bytes pending`,
        }),
      );
    }
    this.#pending++;
    this.#pendingBytes += content.length;
    return new Promise<Sealed<I>>((resolve, reject) => {
      this.#queue.push({ item, content, resolve, reject });
      this.#schedule();
    });
  }

  health(): ChainHealth {
    return { ...this.#health, pending: this.#pending, pendingBytes: this.#pendingBytes };
  }

  /** Stops accepting entries and waits until every queued one has committed or been rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pending > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  // A microtask lets every append issued in the same tick join the batch; while the wire is full
  // (MAX_IN_FLIGHT batches), new entries accumulate for the next one.
  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= MAX_IN_FLIGHT) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      while (this.#queue.length > 0 && this.#inFlight < MAX_IN_FLIGHT) {
        this.#inFlight++;
        void this.#commit(this.#queue.splice(0, this.#limits.maxBatch)).finally(() => {
          this.#inFlight--;
          if (this.#queue.length > 0) this.#schedule();
        });
      }
    });
  }

  /** Appends one batch in one call and settles every entry. Never rejects. */
  async #commit(batch: Pending<I>[]): Promise<void> {
    const deadline = Date.now() + this.#limits.timeoutMs;
    const contents = batch.map((p) => p.content);
    let unknown = false;
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient | undefined;
      try {
        client = await connect(this.#pool, remaining(deadline));
        client.on('error', ignore); // reported through the failing query instead
        // The server gives up waiting for the chain lock (lock_timeout) well before the client-side
        // deadline does: a client that stopped waiting cannot stop the statement, which would then
        // commit, once the lock frees up, a batch whose appends were already refused. The client
        // deadline bounds everything else (a black-holed server never answers).
        const left = remaining(deadline);
        const lockMs = Math.max(1, left - Math.min(LOCK_MARGIN_MS, Math.floor(left / 4)));
        const { rows } = await query(client, deadline, { ...APPEND, values: [this.#spec.chain, contents, lockMs] });
        release(client);
        this.#settled(batch, rows[0] as AppendResult);
        return;
      } catch (err) {
        if (client) release(client, err);
        // A connection error once the call was sent leaves its outcome unknown. Retrying once, at
        // once, on a fresh connection is still safe: ids are UNIQUE, so if the first attempt did
        // commit, the retry fails (23505) instead of recording the batch twice. This hides a stale
        // pooled connection (server restarted, backend terminated) from the caller.
        const connectionLost = isConnectionError(err);
        unknown ||= client !== undefined && connectionLost;
        if (connectionLost && attempt === 0 && Date.now() < deadline) {
          // Whatever killed this connection (a restart, pg_terminate_backend) usually killed the idle
          // pooled ones too: one turn of the event loop lets the pool see their errors and evict
          // them, so the retry gets a live connection.
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        const detail = `${this.#spec.table}: ${describe(err)}` + (unknown ? ' (connection lost after sending: the batch may be recorded)' : '');
        this.#fail(batch, detail, err);
        return;
      }
    }
  }

  #settled(batch: Pending<I>[], result: AppendResult): void {
    this.#health.ok = true;
    this.#health.committed += batch.length;
    this.#health.batches++;
    this.#health.lastCommitAt = new Date().toISOString();
    let prevHash = result.first_prev;
    batch.forEach((p, i) => {
      const hash = result.hashes[i]!;
      const entry = { seq: Number(result.seqs[i]), ...p.item, prevHash, hash } as Sealed<I>;
      prevHash = hash;
      this.#settle(p, () => p.resolve(entry));
    });
  }

  #fail(batch: Pending<I>[], detail: string, cause: unknown): void {
    const failure = unavailable('audit store unavailable: request refused until the audit trail can record it', detail, cause);
    this.#health.ok = false;
    this.#health.failed += batch.length;
    this.#health.lastError = { at: new Date().toISOString(), detail };
    this.#onError(failure);
    for (const p of batch) this.#settle(p, () => p.reject(failure));
  }

  #settle(p: Pending<I>, fn: () => void): void {
    this.#pending--;
    this.#pendingBytes -= p.content.length;
    fn();
    if (this.#pending === 0) for (const resolve of this.#drained.splice(0)) resolve();
  }
}

function unavailable(message: string, detail?: string, cause?: unknown): BatonError {
  return new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', message, { detail, cause });
}

function ignore(): void {}

function remaining(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - Date.now()));
}

/** Releases a client to the pool, or destroys it when it failed (never reuse a broken session). */
function release(client: pg.PoolClient, err?: unknown): void {
  client.removeListener('error', ignore);
  client.release(err === undefined ? undefined : err instanceof Error ? err : new Error(describe(err)));
  if (err !== undefined) client.on('error', ignore); // a destroyed socket may still emit
}

/** `pool.connect()` bounded in time even when the pool itself has no connection timeout. */
async function connect(pool: pg.Pool, ms: number): Promise<pg.PoolClient> {
  let timer: NodeJS.Timeout | undefined;
  const pending = pool.connect();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no database connection within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([pending, timeout]);
  } catch (err) {
    // If the connection arrives after we gave up, hand it back rather than leak it.
    pending.then((c) => c.release(), ignore);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A query with a client-side deadline too: a black-holed server never answers statement_timeout. */
function query(client: pg.PoolClient, deadline: number, config: { name?: string; text: string; values?: unknown[] }): Promise<pg.QueryResult> {
  return client.query({ ...config, query_timeout: remaining(deadline) } as pg.QueryConfig);
}

/**
 * Errors about the connection rather than the SQL: no SQLSTATE (socket errors carry Node's `E…`
 * codes; no SQLSTATE class starts with E), or class 08 / 57P (connection failure, shutdown).
 */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || code.startsWith('E')) return true;
  return code.startsWith('08') || code.startsWith('57P');
}
