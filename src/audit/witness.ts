/**
 * Checkpoints kept outside the audit database. Writers publish every checkpoint on the shared-state
 * channel ({@link checkpointPublisher} as the writer's `onCheckpoint`); the broker runs a witness
 * ({@link startAnchorWitness}) that keeps the newest checkpoint of each chain — in memory and, if given
 * a file, on disk in its data dir — and passes them to `verifyAuditChain(pool, { anchors })`. Someone who
 * deletes a chain's newest rows *and* its newest checkpoints in the database is then still caught.
 *
 * Whatever arrives on the channel is only a claim: verification checks each one's signature against the
 * chain's key. A forged message makes verify report a forged checkpoint (a false alarm, never a silent
 * pass); a replayed older one never replaces a newer one.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type pg from 'pg';
import { z } from 'zod';
import type { SharedState } from '../store/shared-state.ts';
import type { AuditCheckpoint } from './anchor.ts';

/** The shared-state channel checkpoints are published on (per audit database: see `checkpointChannel`). */
export const CHECKPOINT_CHANNEL = 'audit-checkpoints';

/**
 * The channel of ONE audit database: chain ids are only unique within a database, so deployments (or
 * test runs) that share a Redis must never witness each other's chains. Named by the cluster's system
 * identifier and the database name, which every writer and the witness read from the database itself.
 */
export async function checkpointChannel(pool: Pick<pg.Pool, 'query'>): Promise<string> {
  const { rows } = await pool.query<{ id: string }>('SELECT (SELECT system_identifier FROM pg_control_system())::text || \'/\' || current_database() AS id');
  return `${CHECKPOINT_CHANNEL}:${rows[0]!.id}`;
}

const checkpointSchema = z.strictObject({
  chainId: z.number().int().positive(),
  chainSeq: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  signedAt: z.iso.datetime({ precision: 3 }),
  signature: z.string().regex(/^[0-9a-f]{128}$/),
});

/**
 * An `onCheckpoint` for the audit writer that publishes each checkpoint (fire and forget: a publish
 * failure is reported to `onError`, the checkpoint is in the database anyway).
 *
 * @example
 * const audit = createAuditWriter(pool, { onCheckpoint: checkpointPublisher(state, await checkpointChannel(pool), (e) => log.warn(e.message)) });
 */
export function checkpointPublisher(state: Pick<SharedState, 'publish'>, channel: string, onError: (err: Error) => void = () => {}): (cp: AuditCheckpoint) => void {
  return (cp) => {
    state.publish(channel, JSON.stringify(cp)).catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))));
  };
}

export interface AnchorWitness {
  /** The newest checkpoint seen per chain. */
  anchors(): AuditCheckpoint[];
  /** Records one (also what the channel delivers); ignores anything malformed or older than known. */
  witness(cp: unknown): void;
  close(): Promise<void>;
}

/**
 * Subscribes to published checkpoints and keeps the newest per chain; with `file`, loads it at start
 * and rewrites it (atomically, at most every `flushMs`) when something newer arrives.
 *
 * @example
 * const witness = await startAnchorWitness(state, { channel: await checkpointChannel(pool), file: join(dataDir, 'audit-anchors.json') });
 * const result = await verifyAuditChain(pool, { anchors: witness.anchors() });
 */
export async function startAnchorWitness(
  state: Pick<SharedState, 'subscribe'>,
  opts: { channel?: string; file?: string; flushMs?: number; onError?: (err: Error) => void } = {},
): Promise<AnchorWitness> {
  const latest = new Map<number, AuditCheckpoint>();
  const witness = (raw: unknown): boolean => {
    const parsed = checkpointSchema.safeParse(raw);
    if (!parsed.success) return false;
    const cp = parsed.data;
    const known = latest.get(cp.chainId);
    if (known && known.chainSeq >= cp.chainSeq) return false;
    latest.set(cp.chainId, cp);
    return true;
  };
  if (opts.file) {
    mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
    try {
      for (const cp of JSON.parse(readFileSync(opts.file, 'utf8')) as unknown[]) witness(cp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  let dirty = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (!opts.file || !dirty) return;
    dirty = false;
    try {
      writeFileSync(`${opts.file}.tmp`, `${JSON.stringify([...latest.values()])}\n`, { mode: 0o600 });
      renameSync(`${opts.file}.tmp`, opts.file);
    } catch (err) {
      // a timer callback must never take the process down: keep the anchors in memory, retry later
      dirty = true;
      if (!closed) timer ??= setTimeout(flush, opts.flushMs ?? 1000).unref();
      opts.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  };
  const record = (raw: unknown) => {
    if (!witness(raw) || !opts.file) return;
    dirty = true;
    timer ??= setTimeout(flush, opts.flushMs ?? 1000).unref();
  };
  const unsubscribe = await state.subscribe(opts.channel ?? CHECKPOINT_CHANNEL, (message) => {
    try {
      record(JSON.parse(message));
    } catch {
      // not JSON: ignored like any other malformed claim
    }
  });
  return {
    anchors: () => [...latest.values()],
    witness: record,
    async close() {
      closed = true;
      await unsubscribe();
      clearTimeout(timer);
      flush();
    },
  };
}
