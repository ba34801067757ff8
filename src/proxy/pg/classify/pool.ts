/**
 * Classification of large statements off the main thread: a small pool of worker threads, each
 * running `analyseSql` after `initClassifier()`. A 1 MB statement costs the parser and the lexer
 * about two seconds (see docs/pg-proxy.md); on the main thread that would stall every session of
 * the proxy. Each job has a time budget: past it the worker is terminated (the wasm parser cannot be
 * interrupted otherwise) and replaced, and the statement is refused. Small statements keep the
 * synchronous cached path (`cache.ts`).
 *
 * This file is also the worker's entry point: loaded in a worker thread started by the pool, it
 * serves classification requests instead of exporting a pool.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { analyseSql } from './classify.ts';
import { initClassifier } from './parser.ts';
import type { Classification, ClassifyContext } from './types.ts';

/** Pool options; all have defaults. */
export interface ClassifierPoolOptions {
  /** Worker threads (started on first use). Default 2. */
  readonly workers?: number;
  /** Budget per statement once a worker runs it, ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Statements waiting for a worker; beyond it a statement is refused at once. Default 64. */
  readonly maxQueued?: number;
  /** A worker that has not loaded the classifier after this long is given up on, ms. Default 30000. */
  readonly startTimeoutMs?: number;
  /** Structured events (worker replaced, budget exceeded); never given SQL. */
  readonly log?: (event: Record<string, unknown>) => void;
}

/** The pool's counters since it was created. */
export interface ClassifierPoolStats {
  readonly classified: number;
  /** Statements refused because their budget ran out (their worker was replaced). */
  readonly timedOut: number;
  /** Statements refused because the queue was full or no worker could start. */
  readonly refused: number;
}

export interface ClassifierPool {
  /** Classifies in a worker; never rejects (a failure is a refusing classification). */
  classify(sql: string, ctx: ClassifyContext): Promise<Classification>;
  readonly stats: ClassifierPoolStats;
  /** Terminates the workers; pending statements are refused. */
  close(): Promise<void>;
}

interface Job {
  readonly sql: string;
  readonly ctx: ClassifyContext;
  readonly resolve: (c: Classification) => void;
}

interface Slot {
  readonly worker: Worker;
  ready: boolean;
  job: Job | undefined;
  timer: NodeJS.Timeout | undefined;
}

type FromWorker = { type: 'ready' } | { type: 'result'; result: Classification } | { type: 'failed'; reason: string };

const WORKER_FLAG = 'batonClassifierWorker';

/**
 * Boot script (CommonJS eval): load this file — compiled JavaScript as installed, or TypeScript
 * source (tests, bench) through the tsx loader, a dev dependency an installed package does not have.
 */
const BOOT = `
const { workerData, parentPort } = require('node:worker_threads');
(workerData.tsx ? import(workerData.tsx).then((m) => m.register()) : Promise.resolve())
  .then(() => import(workerData.entry))
  .catch((err) => parentPort.postMessage({ type: 'failed', reason: String(err && err.message || err) }));
`;

/** The ESM entry of `tsx/esm/api` when this module runs from TypeScript source, else undefined. */
function tsxLoaderUrl(): string | undefined {
  if (!import.meta.url.endsWith('.ts')) return undefined;
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import?: { default?: string } }> };
  const entry = pkg.exports['./esm/api']?.import?.default ?? './dist/esm/api/index.mjs';
  return pathToFileURL(join(dirname(manifest), entry)).href;
}

function refusal(reason: string): Classification {
  return Object.freeze({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED', reason });
}

/**
 * Create a pool of classifier workers.
 *
 * @example
 * const pool = createClassifierPool({ workers: 2, timeoutMs: 2000 });
 * const c = await pool.classify(hugeSql, { upstream: 'appdb', searchPath: ['public'] });
 * await pool.close();
 */
export function createClassifierPool(options: ClassifierPoolOptions = {}): ClassifierPool {
  const size = options.workers ?? 2;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const maxQueued = options.maxQueued ?? 64;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const log = options.log ?? (() => {});
  if (!Number.isInteger(size) || size < 1) throw new TypeError('workers must be a positive integer');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new TypeError('timeoutMs must be a positive integer');
  const tsx = tsxLoaderUrl();
  const slots = new Set<Slot>();
  const queue: Job[] = [];
  let closed = false;
  const stats = { classified: 0, timedOut: 0, refused: 0 };

  function spawn(): Slot {
    const worker = new Worker(BOOT, { eval: true, workerData: { [WORKER_FLAG]: true, tsx, entry: import.meta.url } });
    worker.unref();
    const slot: Slot = { worker, ready: false, job: undefined, timer: undefined };
    slots.add(slot);
    // Until the worker reports ready, the start-up budget runs.
    slot.timer = setTimeout(() => fail(slot, 'classifier worker did not start'), startTimeoutMs);
    slot.timer.unref();
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        clearTimeout(slot.timer);
        slot.timer = undefined;
        slot.ready = true;
        dispatch();
      } else if (m.type === 'result') {
        const job = slot.job;
        clearTimeout(slot.timer);
        slot.timer = undefined;
        slot.job = undefined;
        if (job) {
          stats.classified++;
          job.resolve(m.result);
        }
        dispatch();
      } else {
        fail(slot, `classifier worker failed: ${m.reason}`);
      }
    });
    worker.on('error', (err) => fail(slot, `classifier worker error: ${err.message}`));
    worker.on('exit', () => fail(slot, 'classifier worker exited'));
    return slot;
  }

  /** Retires a slot: its job (if any) is refused; waiting jobs go to a replacement. */
  function fail(slot: Slot, reason: string): void {
    if (!slots.delete(slot)) return;
    clearTimeout(slot.timer);
    void slot.worker.terminate();
    const job = slot.job;
    slot.job = undefined;
    if (!slot.ready) {
      // Could not start: refuse what waits rather than respawning in a loop.
      log({ event: 'pg.classify.worker_unavailable', reason });
      for (const j of queue.splice(0)) {
        stats.refused++;
        j.resolve(refusal('classifier unavailable for large statements'));
      }
    } else if (!closed) {
      log({ event: 'pg.classify.worker_replaced', reason });
    }
    if (job) {
      stats.refused++;
      job.resolve(refusal('statement could not be classified'));
    }
    dispatch();
  }

  function dispatch(): void {
    if (closed) return;
    for (const slot of slots) {
      if (queue.length === 0) return;
      if (!slot.ready || slot.job) continue;
      const job = queue.shift()!;
      slot.job = job;
      slot.timer = setTimeout(() => {
        // The budget is spent: the parser cannot be interrupted, so the thread goes.
        stats.timedOut++;
        slot.job = undefined;
        job.resolve(refusal(`classification took longer than ${timeoutMs} ms (limit proxy.limits.classifyTimeoutMs)`));
        log({ event: 'pg.classify.timeout', chars: job.sql.length, timeoutMs });
        fail(slot, 'time budget exceeded');
      }, timeoutMs);
      slot.worker.postMessage({ sql: job.sql, ctx: job.ctx });
    }
    // Start workers for what still waits, up to the pool size.
    if (queue.length > 0 && slots.size < size) {
      let starting = 0;
      for (const s of slots) if (!s.ready) starting++;
      for (let i = starting; i < queue.length && slots.size < size; i++) spawn();
    }
  }

  return {
    classify(sql, ctx) {
      if (closed) return Promise.resolve(refusal('proxy shutting down'));
      if (queue.length >= maxQueued) {
        stats.refused++;
        return Promise.resolve(refusal(`too many large statements waiting for classification (${maxQueued})`));
      }
      return new Promise<Classification>((resolve) => {
        queue.push({ sql, ctx, resolve });
        dispatch();
      });
    },
    get stats() {
      return Object.freeze({ ...stats });
    },
    async close() {
      closed = true;
      for (const j of queue.splice(0)) j.resolve(refusal('proxy shutting down'));
      const all = [...slots];
      slots.clear();
      for (const s of all) {
        clearTimeout(s.timer);
        s.job?.resolve(refusal('proxy shutting down'));
      }
      await Promise.all(all.map((s) => s.worker.terminate()));
    },
  };
}

/** Worker side: classify each request with the real classifier. */
async function serveInWorker(): Promise<void> {
  const port = parentPort!;
  try {
    await initClassifier();
  } catch (err) {
    port.postMessage({ type: 'failed', reason: String((err as Error)?.message ?? err) } satisfies FromWorker);
    return;
  }
  port.on('message', ({ sql, ctx }: { sql: string; ctx: ClassifyContext }) => {
    let result: Classification;
    try {
      result = analyseSql(sql, ctx).result;
    } catch {
      result = refusal('statement could not be classified');
    }
    port.postMessage({ type: 'result', result } satisfies FromWorker);
  });
  port.postMessage({ type: 'ready' } satisfies FromWorker);
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_FLAG] === true) void serveInWorker();
