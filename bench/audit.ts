/**
 * Audit writer throughput: sustained durable appends (group commit) for ~5 s at concurrency 1, 8
 * and 64, against DATABASE_URL or postgres://postgres@127.0.0.1:5432/test, in a database of its own
 * (created and dropped). Also times, in the same run and interleaved with the levels, the floor: a
 * bare durable single-row INSERT round trip, which one append at concurrency 1 cannot beat; and a
 * full verification of every chain written.
 *
 *   npx tsx bench/audit.ts            # BENCH_SECONDS=5 BENCH_CONCURRENCY=1,8,64 BENCH_LANES=2 to change
 *
 * BENCH_OUTCOMES=1 records an outcome after each append (not awaited, as the Postgres proxy does):
 * the proxy's per-statement audit work. `commits` then counts event and outcome transactions.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import pg from 'pg';
import { verifyAuditChain } from '../src/audit/verify.ts';
import { AUDIT_WRITER_DEFAULTS, createAuditWriter } from '../src/audit/writer.ts';
import type { AuditEventInput } from '../src/audit/event.ts';
import { createBenchDatabase } from './lib/database.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const LEVELS = (process.env.BENCH_CONCURRENCY ?? '1,8,64').split(',').map(Number);
const LANES = Number(process.env.BENCH_LANES ?? AUDIT_WRITER_DEFAULTS.lanes);
const OUTCOMES = process.env.BENCH_OUTCOMES === '1';

const rid = (s: string) => s.repeat(128 / s.length);
const event: AuditEventInput = {
  source: 'proxy-pg',
  action: 'statement',
  decision: 'allow',
  lineage: [
    {
      depth: 0,
      subject: 'alice@example.com',
      issuer: 'https://idp.example.com',
      agent: 'planner',
      constraints: { resources: ['pg:appdb/public.*'], operations: ['read'], expiresAt: '2026-11-23T13:00:00Z' },
      revocationId: rid('ab'),
    },
    {
      depth: 1,
      delegatedTo: 'helper-7',
      purpose: "summarise yesterday's orders",
      constraints: { resources: ['pg:appdb/public.orders'], operations: ['read'], expiresAt: '2026-11-23T12:35:00Z' },
      revocationId: rid('cd'),
    },
  ],
  tokenId: 'tok_01HZX3K9J5B7Q2W8E4R6T1Y0UA',
  resource: 'pg:appdb/public.orders',
  operation: 'read',
  accesses: [{ resource: 'pg:appdb/public.orders', operation: 'read' }],
  fingerprint: '5c2f0e9a61b4d378',
  normalized: 'SELECT id, total FROM public.orders WHERE created_at > $1 AND status = $2',
};

/** CPU ticks (user + system, 1/100 s) of the given processes, from /proc; 0 for one that is gone or not local. */
const ticks = (pids: number[]): number =>
  pids.reduce((sum, pid) => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return sum + Number(fields[11]) + Number(fields[12]);
    } catch {
      return sum;
    }
  }, 0);

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

async function main(): Promise<void> {
  const db = await createBenchDatabase('audit');
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  pool.on('error', () => {});
  try {
    for (const file of ['002_audit.sql', '004_audit_fast_append.sql', '005_audit_chains.sql']) {
      await pool.query(readFileSync(new URL(`../migrations/${file}`, import.meta.url), 'utf8'));
    }
    const writer = createAuditWriter(pool, { lanes: LANES, description: 'bench/audit.ts' });
    await Promise.all(Array.from({ length: 200 }, () => writer.append(event))); // warm up JIT and pool

    // The floor: one bare durable single-row INSERT (autocommit, synchronous_commit on) per round
    // trip, on a connection of its own. Measured before each level, so it sees the same machine load.
    await pool.query('CREATE TABLE bench_floor (x int)');
    const floorClient = new pg.Client({ connectionString: db.url });
    await floorClient.connect();
    await floorClient.query('SET synchronous_commit = on');
    const floor: number[] = [];
    const measureFloor = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await floorClient.query({ name: 'floor', text: 'INSERT INTO bench_floor VALUES (1)' });
        floor.push(performance.now() - t);
      }
    };

    const rows: string[][] = [];
    let p50At1: number | undefined;
    for (const concurrency of LEVELS) {
      await measureFloor(1000);
      const backends = (await pool.query('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')).rows.map((r) => Number(r.pid));
      const cpuBefore = process.cpuUsage();
      const pgBefore = ticks(backends);
      const before = writer.health().events;
      const beforeOutcomes = writer.health().outcomes;
      const latencies: number[] = [];
      const outcomes: Promise<unknown>[] = [];
      const end = performance.now() + SECONDS * 1000;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            const t = performance.now();
            const receipt = await writer.append(event);
            latencies.push(performance.now() - t);
            if (OUTCOMES) outcomes.push(writer.recordOutcome(receipt, { rowCount: 1, tag: 'SELECT 1', durationMs: 0.25 }));
          }
        }),
      );
      await Promise.all(outcomes);
      const elapsed = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      const pgCpu = (ticks(backends) - pgBefore) * 10_000; // µs
      const after = writer.health().events;
      const afterOutcomes = writer.health().outcomes;
      const n = after.committed - before.committed;
      const batches = after.batches - before.batches + (afterOutcomes.batches - beforeOutcomes.batches);
      latencies.sort((a, b) => a - b);
      if (concurrency === 1) p50At1 = quantile(latencies, 0.5);
      rows.push([
        String(concurrency),
        String(n),
        String(Math.round(n / elapsed)),
        (n / batches).toFixed(1),
        quantile(latencies, 0.5).toFixed(2),
        quantile(latencies, 0.99).toFixed(2),
        ((cpu.user + cpu.system) / n).toFixed(1),
        (pgCpu / n).toFixed(1),
      ]);
    }
    await writer.close();
    await measureFloor(1000);
    await floorClient.end();
    floor.sort((a, b) => a - b);

    const { rows: settings } = await pool.query("SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc, version() AS v");
    const t = performance.now();
    const verified = await verifyAuditChain(pool);
    const verifySeconds = (performance.now() - t) / 1000;

    const header = ['concurrency', 'events', 'events/s', OUTCOMES ? 'events/commit (with outcomes)' : 'events/commit', 'p50 ms', 'p99 ms', 'Node CPU µs/event', 'PG backends CPU µs/event'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
    const [load1] = loadavg();
    console.log(
      `\nAudit writer, durable group commit, one chain per lane (${LANES} lane${LANES > 1 ? 's' : ''}), ${SECONDS} s per level${OUTCOMES ? ', an outcome after each append' : ''} — ` +
        `${String(settings[0].v).split(' on ')[0]} (fsync=${settings[0].fsync}); ${cpus().length} CPUs, load average ${load1!.toFixed(1)} at the end`,
    );
    console.log(line(header));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows) console.log(line(r));
    const count = verified.count;
    const floorP50 = quantile(floor, 0.5);
    console.log(`\nfloor: a bare durable single-row INSERT (same run, ${floor.length} samples interleaved with the levels), p50 ${floorP50.toFixed(2)} ms, p99 ${quantile(floor, 0.99).toFixed(2)} ms`);
    if (p50At1 !== undefined) console.log(`append p50 at 1 in flight / floor p50 = ${(p50At1 / floorP50).toFixed(2)} (goal ≤ 1.2)`);
    console.log(
      `verifyAuditChain: ${verified.ok ? 'ok' : 'BROKEN'}, ${verified.chains.length} chains, ${count} events + ${verified.outcomes} outcomes in ` +
        `${verifySeconds.toFixed(2)} s (${Math.round(count / verifySeconds)} events/s)`,
    );
  } finally {
    await pool.end();
    await db.drop();
  }
}

await main();
