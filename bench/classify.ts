/**
 * The SQL classifier's per-statement cost, as the proxy pays it: an exact-text cache hit, a
 * statement that differs from a cached one only in its literals (pgbench -S simple mode, ORMs that
 * inline values), and an uncached classification (`classifySql`). One process, no I/O.
 *
 *   npx tsx bench/classify.ts       # BENCH_ITERATIONS=20000 to change
 */
import { classifySql, createClassifierCache, initClassifier } from '../src/proxy/pg/classify/index.ts';
import type { ClassifyContext } from '../src/proxy/pg/classify/index.ts';
import { fmt, printTable, summarize, timeSync } from './lib/report.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 20_000);
const CTX: ClassifyContext = { upstream: 'appdb', searchPath: ['public'] };

/** Each workload builds its i-th statement; only literal values change with i. */
const WORKLOADS: readonly { name: string; sql: (i: number) => string }[] = [
  { name: 'pgbench -S', sql: (i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${(i * 7919) % 500_000};` },
  {
    name: 'ORM insert',
    sql: (i) =>
      `INSERT INTO "orders" ("customer_id", "total_cents", "note", "created_at") VALUES (${i}, ${i * 13}, 'order #${i}', '2026-11-${(i % 28) + 1}') RETURNING "id"`,
  },
  {
    name: '3-way join, GROUP BY',
    sql: (i) =>
      `SELECT c.name, count(*), sum(o.total_cents) FROM orders o JOIN customers c ON c.id = o.customer_id ` +
      `JOIN regions r ON r.id = c.region_id WHERE o.created_at > '2026-01-${(i % 28) + 1}' AND r.code = 'R${i}' ` +
      `GROUP BY c.name ORDER BY 2 DESC LIMIT ${10 + (i % 5)}`,
  },
];

async function main(): Promise<void> {
  await initClassifier();
  const rows: string[][] = [];
  const add = (name: string, us: number[]) => {
    const s = summarize(us);
    rows.push([name, fmt(s.p50, 1), fmt(s.p99, 1), fmt(s.mean, 1)]);
  };
  for (const w of WORKLOADS) {
    const exact = createClassifierCache({ maxEntries: 10_000 });
    const fixed = w.sql(1);
    add(`${w.name}: cache hit, same text`, timeSync(() => exact.classify(fixed, CTX), ITERATIONS));

    // Fresh literal values every call (offset past the warm-up's values): the proxy's steady state.
    const variants = createClassifierCache({ maxEntries: 10_000 });
    add(`${w.name}: cache, new literals each call`, timeSync((i) => variants.classify(w.sql(i + 1_000_000), CTX), ITERATIONS));

    add(`${w.name}: classifySql (uncached)`, timeSync((i) => classifySql(w.sql(i), CTX), Math.min(ITERATIONS, 5000)));
  }
  printTable(`classifier cost (µs per statement, ${ITERATIONS} calls; Node ${process.version})`, ['case', 'p50 µs', 'p99 µs', 'mean µs'], rows);
}

await main();
