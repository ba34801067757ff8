/**
 * Scale-out numbers (issue 15 point 6), separate processes on this machine:
 *
 * - token exchanges/s with 1 and with 2 broker processes (`baton serve`, production mode, shared
 *   PostgreSQL + Redis + key file), callers spreading round-robin, same run; with 2 cores the
 *   scaling per core is the ratio;
 * - time for a new `baton proxy` to be ready (listening, revocation set loaded) with 100,000 live
 *   revocations in the store.
 *
 * Subject tokens come from a real OIDC provider, minted before the clock starts (and reused: an
 * exchange does not consume its subject token), so the provider is not what is measured.
 *
 *   npm run bench -- scale        # ~1 min
 *
 * Env: BENCH_SECONDS (default 8 per setting), BENCH_CONCURRENCY (default 16), BENCH_REVOCATIONS (100000).
 */
import { type Cluster, startCluster } from '../test/helpers/cluster.ts';
import { fmt, printTable } from './lib/report.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const REVOCATIONS = Number(process.env.BENCH_REVOCATIONS ?? 100_000);

async function exchangesPerSecond(cluster: Cluster, brokers: { url: string }[], subjects: string[]): Promise<{ rate: number; failed: number }> {
  let done = 0;
  let failed = 0;
  let next = 0;
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        const i = next++;
        const r = await cluster.exchange(brokers[i % brokers.length]!, subjects[i % subjects.length]);
        if (r.status === 200) done++;
        else failed++;
      }
    }),
  );
  return { rate: done / SECONDS, failed };
}

async function main(): Promise<void> {
  const cluster = await startCluster('benchscale');
  try {
    const a = await cluster.startBroker('broker-a');
    const b = await cluster.startBroker('broker-b');
    const subjects = await Promise.all(Array.from({ length: 64 }, () => cluster.idp.token()));
    await exchangesPerSecond(cluster, [a, b], subjects); // warm-up: JIT, pools, JWKS caches
    const one = await exchangesPerSecond(cluster, [a], subjects);
    const two = await exchangesPerSecond(cluster, [a, b], subjects);
    printTable(
      `token exchanges, ${CONCURRENCY} concurrent callers, ${SECONDS} s each (brokers: own processes; PostgreSQL, Redis and the callers share the same two cores)`,
      ['brokers', 'exchanges/s', '× one broker', 'failed'],
      [
        ['1', fmt(one.rate, 0), '1.00', String(one.failed)],
        ['2 (round robin)', fmt(two.rate, 0), fmt(two.rate / one.rate, 2), String(two.failed)],
      ],
    );

    // 100,000 live revocations, then a new proxy: how long until it serves
    await cluster.store.pool.query(
      `INSERT INTO revocations (revocation_id, token_id, expires_at, revoked_by, reason)
       SELECT md5('bench-' || g), 'tok_bench', now() + interval '1 hour', 'possession', 'bench' FROM generate_series(1, $1) g`,
      [REVOCATIONS],
    );
    const t0 = performance.now();
    const proxy = await cluster.startProxy('proxy-fresh', a);
    const ready = performance.now() - t0;
    const { token } = await cluster.exchange(a, subjects[0]);
    const t1 = performance.now();
    const pg = await import('pg');
    const c = new pg.default.Client({ host: '127.0.0.1', port: proxy.port, user: 'agent', database: 'appdb', password: token });
    await c.connect();
    await c.query('SELECT 1 FROM orders LIMIT 1');
    await c.end();
    printTable(
      `a new proxy with ${REVOCATIONS.toLocaleString('en')} live revocations in the store`,
      ['step', 'ms'],
      [
        ['process start → listening (revocation set loaded from the broker)', fmt(ready, 0)],
        ['first session: connect + SELECT', fmt(performance.now() - t1, 0)],
      ],
    );
  } finally {
    await cluster.stop();
  }
}

await main();
process.exit(0);
