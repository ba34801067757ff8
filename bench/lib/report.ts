/** Shared by every benchmark: percentiles, timing loops and the plain-text tables they print. */

/** The q-quantile (0..1) of an ascending array; 0 when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Median and p99 of unsorted samples (sorts a copy). */
export function summarize(samples: readonly number[]): { p50: number; p99: number; mean: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99), mean, n: s.length };
}

/**
 * Times `fn` `iterations` times after `warmup` untimed calls; returns per-call microseconds.
 * Per-call timing (not one total) so medians and tails are real.
 */
export function timeSync(fn: (i: number) => void, iterations: number, warmup = Math.min(1000, iterations)): number[] {
  for (let i = 0; i < warmup; i++) fn(i);
  const out = new Array<number>(iterations);
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    fn(i);
    out[i] = (performance.now() - t) * 1000;
  }
  return out;
}

/** Async twin of {@link timeSync}: calls run one after another. */
export async function timeAsync(fn: (i: number) => Promise<unknown>, iterations: number, warmup = Math.min(200, iterations)): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const out = new Array<number>(iterations);
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await fn(i);
    out[i] = (performance.now() - t) * 1000;
  }
  return out;
}

/** Runs `fn` from `concurrency` loops for `seconds`; returns completed calls per second. */
export async function throughput(fn: (i: number) => Promise<unknown>, concurrency: number, seconds: number): Promise<number> {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await fn(n++);
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

/** Fixed-point number for a table cell. */
export const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : '—');

/** Prints a markdown table (right-aligned numbers) with a title line. */
export function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}
