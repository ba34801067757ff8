/**
 * Group commit for one hash chain: entries submitted while a batch is committing queue up and go
 * together in the next transaction (one multi-row INSERT), so throughput grows with concurrency
 * while each promise still resolves only after its row is committed and flushed to disk.
 *
 * Per batch, inside one transaction:
 *   1. `pg_advisory_xact_lock(chain)` — serialises batches across every writer process;
 *   2. read the chain head (last hash) and allocate the batch's seqs, both under the lock, so chain
 *      order = seq order even with several brokers/proxies writing;
 *   3. seal (hash) each entry in order, INSERT them all, COMMIT without waiting for the disk;
 *   4. outside the lock, wait for the WAL flush (see `#makeDurable`), then resolve the entries.
 *
 * Failure never leaves the committer broken: every batch takes a fresh pooled connection, a failed
 * connection is destroyed, and the next batch simply tries again. Memory is bounded: past
 * `maxQueue` entries or `maxQueueBytes`, `submit` rejects at once (backpressure).
 */
import type pg from 'pg';
import { BatonError, describe } from '../errors.ts';
import { type CanonicalMembers, GENESIS_HASH, canonicalMembers, hashMembers } from './hash.ts';
import type { Row } from './rows.ts';

/** First key of every audit advisory lock ("audi"); the second names the chain. */
const LOCK_CLASS = 0x61756469;

/** An entry completed with its chain position, predecessor and hash. */
export type Sealed<I> = I & { seq: number; prevHash: string; hash: string };

/** How one chain is stored. */
export interface ChainSpec<I extends object> {
  /** Table holding the chain. */
  table: 'audit_events' | 'audit_outcomes';
  /** Second advisory-lock key, unique per chain. */
  lockKey: number;
  /** Column definition list for `jsonb_to_recordset` (also gives the INSERT column names). */
  recordset: string;
  /** The row for an entry, without `seq`, `prev_hash` and `hash` (added when sealing). */
  toRow(item: I): Row;
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

/**
 * An entry with everything that does not depend on its chain position already serialised, so the
 * work done while holding the chain lock is a string join and one SHA-256 per entry.
 */
interface Pending<I> {
  item: I;
  members: CanonicalMembers;
  /** The row's JSON members (no braces) minus seq/prev_hash/hash. */
  rowBody: string;
  bytes: number;
  resolve(entry: Sealed<I>): void;
  reject(err: BatonError): void;
}

/**
 * One chain's bounded, group-committing queue.
 *
 * @example
 * const chain = new GroupCommitter(pool, { table: 'audit_events', lockKey: 1, recordset: EVENT_RECORDSET, toRow: eventToRow }, limits, log);
 * const sealed = await chain.submit(event); // committed and durable
 */
export class GroupCommitter<I extends object> {
  readonly #pool: pg.Pool;
  readonly #spec: ChainSpec<I>;
  readonly #limits: GroupCommitLimits;
  readonly #onError: (err: BatonError) => void;
  readonly #insertSql: string;
  #queue: Pending<I>[] = [];
  #pending = 0;
  #pendingBytes = 0;
  #running = false;
  #scheduled = false;
  #closed = false;
  #drained: (() => void)[] = [];
  /** Batches committed and waiting for their WAL flush (at most 2). */
  #durable: Promise<void>[] = [];
  #health: Omit<ChainHealth, 'pending' | 'pendingBytes'> = { ok: true, committed: 0, batches: 0, failed: 0, shed: 0 };

  constructor(pool: pg.Pool, spec: ChainSpec<I>, limits: GroupCommitLimits, onError: (err: BatonError) => void) {
    this.#pool = pool;
    this.#spec = spec;
    this.#limits = limits;
    this.#onError = onError;
    const columns = spec.recordset.split(',').map((c) => c.trim().split(' ')[0]).join(', ');
    this.#insertSql = `INSERT INTO ${spec.table} (${columns}) SELECT ${columns} FROM jsonb_to_recordset($1::jsonb) AS t(${spec.recordset})`;
  }

  /** Queues an entry; resolves with the sealed entry once committed, rejects otherwise. */
  submit(item: I): Promise<Sealed<I>> {
    if (this.#closed) return Promise.reject(unavailable('the audit writer is closed'));
    const members = canonicalMembers(item as Record<string, unknown>);
    const rowBody = JSON.stringify(this.#spec.toRow(item)).slice(1, -1);
    const bytes = rowBody.length;
    if (this.#pending >= this.#limits.maxQueue || this.#pendingBytes + bytes > this.#limits.maxQueueBytes) {
      this.#health.shed++;
      return Promise.reject(
        new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit trail overloaded: request refused until it catches up', {
          detail: `${this.#spec.table} queue full: ${this.#pending} entries, ${this.#pendingBytes} bytes pending`,
        }),
      );
    }
    this.#pending++;
    this.#pendingBytes += bytes;
    return new Promise<Sealed<I>>((resolve, reject) => {
      this.#queue.push({ item, members, rowBody, bytes, resolve, reject });
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

  // A microtask lets every append issued in the same tick join the first batch.
  #schedule(): void {
    if (this.#scheduled || this.#running) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        this.#durable.push((await this.#commit(this.#queue.splice(0, this.#limits.maxBatch))).durable);
        // Pipeline depth 2: one batch waits for its WAL flush while the next one is inserted.
        if (this.#durable.length >= 2) await this.#durable.shift();
      }
    } finally {
      this.#running = false;
    }
  }

  /**
   * Commits one batch under the chain lock with synchronous_commit = off, so the lock is not held
   * across the disk flush; returns a promise that settles every entry once the batch is durable
   * (see `#makeDurable`). Never rejects.
   */
  async #commit(batch: Pending<I>[]): Promise<{ durable: Promise<void> }> {
    const deadline = Date.now() + this.#limits.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient | undefined;
      let commitSent = false;
      try {
        client = await connect(this.#pool, remaining(deadline));
        client.on('error', ignore); // reported through the failing query instead
        const { lockKey, table } = this.#spec;
        const ms = remaining(deadline);
        // One round trip (simple protocol; every value inlined is an integer we computed). The head
        // is read by a later statement than the lock, so under READ COMMITTED its snapshot is taken
        // after the lock is held and sees the previous batch's rows.
        const results = (await query(client, deadline, {
          text:
            `BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL statement_timeout = ${ms}; ` +
            `SET LOCAL lock_timeout = ${ms}; SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${lockKey}); ` +
            `SELECT (SELECT hash FROM ${table} ORDER BY seq DESC LIMIT 1) AS head, ` +
            `ARRAY(SELECT nextval('audit_seq') FROM generate_series(1, ${batch.length})) AS seqs`,
        })) as unknown as pg.QueryResult[];
        const first = results.at(-1)!.rows[0] as { head: string | null; seqs: string[] };
        const seqs = first.seqs.map(Number).sort((a, b) => a - b);
        let prev = first.head ?? GENESIS_HASH;
        const rows: string[] = [];
        const entries = batch.map((p, i) => {
          const seq = seqs[i]!;
          const hash = hashMembers([...p.members, ['seq', String(seq)], ['prevHash', JSON.stringify(prev)]]);
          const entry = { seq, ...p.item, prevHash: prev, hash } as Sealed<I>;
          rows.push(`{"seq":${seq},"prev_hash":"${prev}","hash":"${hash}"${p.rowBody ? `,${p.rowBody}` : ''}}`);
          prev = hash;
          return entry;
        });
        await query(client, deadline, { text: this.#insertSql, values: [`[${rows.join(',')}]`] });
        commitSent = true;
        await query(client, deadline, { text: 'COMMIT' });
        return { durable: this.#makeDurable(client, batch, entries) };
      } catch (err) {
        if (client) release(client, err);
        // A stale pooled connection (server restarted, backend terminated) fails before anything
        // was committed: one immediate retry on a fresh connection is safe and hides the blip.
        if (!commitSent && attempt === 0 && isConnectionError(err) && Date.now() < deadline) continue;
        const detail =
          `${this.#spec.table}: ${describe(err)}` +
          (commitSent ? ' (COMMIT sent; its result is unknown, the batch may be recorded)' : '');
        this.#fail(batch, detail, err);
        return { durable: Promise.resolve() };
      }
    }
  }

  /**
   * Waits until the committed batch is on disk, then resolves its entries. A later transaction
   * that commits with synchronous_commit = on waits for the WAL to be flushed up to its own commit
   * record, which lies after the batch's (WAL is sequential), so once it returns the batch is
   * durable. Batches from other writers chained on top of this one are flushed in the same order,
   * so a crash can only cut the chain's tail, never a middle link.
   */
  async #makeDurable(client: pg.PoolClient, batch: Pending<I>[], entries: Sealed<I>[]): Promise<void> {
    try {
      await query(client, Date.now() + this.#limits.timeoutMs, {
        text: 'BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT',
      });
      release(client);
    } catch (err) {
      release(client, err);
      this.#fail(batch, `${this.#spec.table}: ${describe(err)} (batch committed, durability unconfirmed)`, err);
      return;
    }
    this.#health.ok = true;
    this.#health.committed += batch.length;
    this.#health.batches++;
    this.#health.lastCommitAt = new Date().toISOString();
    batch.forEach((p, i) => this.#settle(p, () => p.resolve(entries[i]!)));
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
    this.#pendingBytes -= p.bytes;
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
function query(client: pg.PoolClient, deadline: number, config: { text: string; values?: unknown[] }): Promise<pg.QueryResult> {
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
