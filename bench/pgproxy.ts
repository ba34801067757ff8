/**
 * The Postgres proxy against its ceilings, in ONE run: `pgbench -S` (select-only) at 1 and 8 clients
 * in the simple, extended and prepared protocols, and pgbench's default TPC-B script at 8 clients
 * (prepared), against
 *   direct — PostgreSQL itself (own database, `pgbench -i -s 5`),
 *   relay  — a bare Node TCP relay (bench/lib/relay.ts, own process): the ceiling for a Node proxy,
 *   proxy  — Baton's proxy (own process, with its broker): token verified per connection, every
 *            statement classified, authorized and durably audited (default ordering: reads and
 *            writes inside a transaction block overlap their entry, results held until durable),
 *   proxy-strict — the same with `audit.ordering: strict` (every entry durable before forwarding),
 *   proxy-noaudit — DIAGNOSTIC: an audit writer that records nothing (bench/lib/memory-audit.ts), to
 *            separate the audit trail's cost from the proxy's own.
 * Also the floor one client cannot beat with a durable audit: a bare durable single-row INSERT,
 * measured in the same run. Tokens are the real thing: dev OIDC token → exchange → attenuate (read on
 * pg:appdb/public.* for -S; read/insert/update on it for TPC-B). Targets are interleaved per case so
 * background load hits all of them.
 *
 *   npm run bench -- pgproxy        # BENCH_PGBENCH_SECONDS=8; BENCH_PROXY_CPU_PROF=<dir> profiles the proxies
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { applyMigrations } from '../src/store/migrate.ts';
import { attenuate } from '../src/token/attenuate.ts';
import { startChild, type Child } from './lib/child.ts';
import { createBenchDatabase, serverInfo, type BenchDatabase } from './lib/database.ts';
import { fmt, printTable, quantile } from './lib/report.ts';

const SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 8);
/** The diagnostic target runs shorter so the whole suite stays near 5 minutes. */
const DIAGNOSTIC_SECONDS = Math.min(SECONDS, 5);
const WARMUP_SECONDS = 2;
const ALL_TARGETS = ['direct', 'relay', 'proxy', 'proxy-strict', 'proxy-noaudit'] as const;
type Target = (typeof ALL_TARGETS)[number];
/** Narrowing for profiling one case: BENCH_PGBENCH_MODES=extended BENCH_PGBENCH_CLIENTS=1 BENCH_PGBENCH_TARGETS=proxy-noaudit */
const list = (name: string, all: readonly string[]) => (process.env[name] ? process.env[name]!.split(',').filter((x) => all.includes(x)) : [...all]);
const MODES = list('BENCH_PGBENCH_MODES', ['simple', 'extended', 'prepared']);
/** TPC-B (pgbench's default script) runs prepared at 8 clients unless BENCH_PGBENCH_TPCB=0. */
const TPCB = process.env.BENCH_PGBENCH_TPCB !== '0';
const CLIENTS = list('BENCH_PGBENCH_CLIENTS', ['1', '8']).map(Number);
const TARGETS = list('BENCH_PGBENCH_TARGETS', ALL_TARGETS) as Target[];

interface RunResult {
  tps: number;
  p50: number;
  p99: number;
  transactions: number;
}

function exec(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    p.once('error', reject);
    p.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** One pgbench run; latency percentiles from its per-transaction logs (µs in the third column). */
async function pgbench(env: Record<string, string>, mode: string, clients: number, logDir: string, tag: string, seconds: number, script: '-S' | 'tpcb' = '-S'): Promise<RunResult> {
  const prefix = join(logDir, tag);
  const args = ['-n', ...(script === '-S' ? ['-S'] : []), '-M', mode, '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-l', `--log-prefix=${prefix}`];
  const r = await exec('pgbench', args, env);
  if (r.code !== 0) throw new Error(`pgbench ${tag} failed (${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout)?.[1] ?? NaN);
  const latencies: number[] = [];
  for (const f of readdirSync(logDir).filter((n) => n.startsWith(`${tag}.`))) {
    for (const line of readFileSync(join(logDir, f), 'utf8').split('\n')) {
      const us = Number(line.split(' ')[2]);
      if (line && Number.isFinite(us)) latencies.push(us);
    }
  }
  latencies.sort((a, b) => a - b);
  return { tps, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), transactions: latencies.length };
}

/** dev OIDC token → exchange → attenuate to `operations` on pg:appdb/public.* (-S needs read; TPC-B read, insert, update). */
async function proxyToken(brokerUrl: string, operations: string[], group: string): Promise<string> {
  const jwtRes = await fetch(`${brokerUrl}/dev/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'bench@example.com', groups: [group], client_id: 'bench-planner' }),
  });
  const { access_token: jwt } = (await jwtRes.json()) as { access_token: string };
  const res = await fetch(`${brokerUrl}/v1/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: jwt,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    }),
  });
  const body = (await res.json()) as { access_token: string };
  if (!res.ok) throw new Error(`exchange failed: ${res.status} ${JSON.stringify(body)}`);
  return attenuate(body.access_token, { resources: ['pg:appdb/public.*'], operations, ttl: '10m', delegateTo: 'pgbench', purpose: 'benchmark' });
}

/** p50/p99 µs of a bare durable single-row INSERT (synchronous_commit=on): one client's floor. */
async function durableInsertFloor(url: string, samples = 2000): Promise<{ p50: number; p99: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('SET synchronous_commit = on');
    await c.query('CREATE TABLE IF NOT EXISTS bench_floor (x int)');
    const t: number[] = [];
    for (let i = 0; i < samples; i++) {
      const s0 = performance.now();
      await c.query('INSERT INTO bench_floor VALUES (1)');
      t.push((performance.now() - s0) * 1000);
    }
    t.sort((a, b) => a - b);
    return { p50: quantile(t, 0.5), p99: quantile(t, 0.99) };
  } finally {
    await c.query('DROP TABLE IF EXISTS bench_floor').catch(() => {});
    await c.end();
  }
}

async function main(): Promise<void> {
  const direct = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  const logDir = mkdtempSync(join(tmpdir(), 'baton-bench-pgbench-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-bench-proxy-'));
  const dbs: BenchDatabase[] = [];
  const children: Child<unknown>[] = [];
  try {
    const appdb = await createBenchDatabase('pgbench');
    dbs.push(appdb);
    const pgEnv = { PGHOST: direct.hostname, PGPORT: direct.port || '5432', PGUSER: decodeURIComponent(direct.username) || 'postgres', ...(direct.password ? { PGPASSWORD: decodeURIComponent(direct.password) } : {}) };
    const init = await exec('pgbench', ['-i', '-s', '5', '-q', appdb.name], pgEnv);
    if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);

    const brokerDb = await createBenchDatabase('proxy');
    dbs.push(brokerDb);
    const pool = new pg.Pool({ connectionString: brokerDb.url, max: 1 });
    await applyMigrations(pool);
    await pool.end();

    const relay = await startChild<{ port: number }>('./relay.ts', { BENCH_RELAY_UPSTREAM: `${pgEnv.PGHOST}:${pgEnv.PGPORT}` });
    children.push(relay);
    const profDir = process.env.BENCH_PROXY_CPU_PROF;
    // both proxies share the data dir (same root key, so one token serves both) and the broker database
    const startProxy = async (audit: 'durable' | 'memory', ordering: 'default' | 'strict') => {
      const child = await startChild<{ brokerUrl: string; proxyPort: number }>(
        './baton-child.ts',
        { BENCH_DATABASE_URL: brokerDb.url, BENCH_DATA_DIR: dataDir, BENCH_UPSTREAM_URL: appdb.url, BENCH_AUDIT: audit, BENCH_AUDIT_ORDERING: ordering },
        profDir ? ['--cpu-prof', '--cpu-prof-dir', join(profDir, `proxy-audit-${audit}-${ordering}`)] : [],
      );
      children.push(child);
      return child;
    };
    const baton = await startProxy('durable', 'default');
    const strict = await startProxy('durable', 'strict');
    const noAudit = await startProxy('memory', 'default');
    const readToken = await proxyToken(baton.info.brokerUrl, ['read'], 'analysts');
    const writeToken = await proxyToken(baton.info.brokerUrl, ['read', 'insert', 'update'], 'engineers');
    const proxyEnv = (port: number, token: string) => ({ PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'agent', PGPASSWORD: token, PGDATABASE: 'appdb', PGSSLMODE: 'disable' });
    const envsFor = (token: string): Record<Target, Record<string, string>> => ({
      direct: { ...pgEnv, PGDATABASE: appdb.name },
      relay: { ...pgEnv, PGHOST: '127.0.0.1', PGPORT: String(relay.info.port), PGDATABASE: appdb.name },
      proxy: proxyEnv(baton.info.proxyPort, token),
      'proxy-strict': proxyEnv(strict.info.proxyPort, token),
      'proxy-noaudit': proxyEnv(noAudit.info.proxyPort, token),
    });
    const envs = envsFor(readToken);
    const tpcbEnvs = envsFor(writeToken);
    // warm-up: JIT in every Node process, classifier cache, shared buffers
    for (const t of TARGETS) await pgbench(envs[t], 'simple', 2, logDir, `warmup-${t}`, WARMUP_SECONDS).catch((e: Error) => Promise.reject(new Error(`${t}: ${e.message}`)));

    const floor = await durableInsertFloor(brokerDb.url);
    const results = new Map<string, RunResult>();
    const secondsOf = (t: Target) => (t === 'proxy-noaudit' || t === 'proxy-strict' ? DIAGNOSTIC_SECONDS : SECONDS);
    for (const mode of MODES) {
      for (const c of CLIENTS) {
        for (const t of TARGETS) {
          // strict ordering is measured where its goal is: -S at 8 clients (prepared)
          if (t === 'proxy-strict' && (c !== 8 || mode !== 'prepared')) continue;
          results.set(`${t}/${mode}/${c}`, await pgbench(envs[t], mode, c, logDir, `${t}-${mode}-${c}`, secondsOf(t)));
        }
      }
    }
    if (TPCB) {
      for (const t of TARGETS) {
        if (t === 'proxy-noaudit') continue;
        results.set(`${t}/tpcb/8`, await pgbench(tpcbEnvs[t], 'prepared', 8, logDir, `${t}-tpcb-8`, SECONDS, 'tpcb'));
      }
    }

    const get = (t: Target, mode: string, c: number) => results.get(`${t}/${mode}/${c}`);
    const rows: string[][] = [];
    const ratioRows: string[][] = [];
    const cases = [...MODES.flatMap((mode) => CLIENTS.map((c) => ({ script: '-S', mode, c }))), ...(TPCB ? [{ script: 'TPC-B', mode: 'tpcb', c: 8 }] : [])];
    for (const { script, mode, c } of cases) {
      const shownMode = script === 'TPC-B' ? 'prepared' : mode;
      for (const t of TARGETS) {
        const r = get(t, mode, c);
        if (r) rows.push([script, shownMode, String(c), t, fmt(r.tps), fmt(r.p50), fmt(r.p99)]);
      }
      const [d, r, p, st, n] = ALL_TARGETS.map((t) => get(t, mode, c));
      if (!r || !p) continue; // a narrowed run: no ratios
      ratioRows.push([
        script,
        shownMode,
        String(c),
        fmt(p.tps / r.tps, 2),
        st ? fmt(st.tps / r.tps, 2) : '',
        d ? fmt(p.tps / d.tps, 2) : '',
        fmt(p.p50 - r.p50),
        c === 1 ? fmt(p.p50 - Math.max(r.p50, floor.p50)) : '',
        n ? fmt(n.tps / r.tps, 2) : '',
        n ? fmt(n.p50 - r.p50) : '',
      ]);
    }
    console.log(
      `\nPostgres proxy — pgbench -S (select-only) and TPC-B, scale 5, -T ${SECONDS} s per run (proxy-strict and diagnostic proxy-noaudit ${DIAGNOSTIC_SECONDS} s), -j min(clients, 2); ${await serverInfo()}; each proxy and the relay in its own Node process; proxy = authorization + durable audit (default ordering)`,
    );
    console.log(`durable single-row INSERT (synchronous_commit=on), same run: p50 ${fmt(floor.p50)} µs, p99 ${fmt(floor.p99)} µs — what a durable audit costs one client at least`);
    printTable('throughput and latency (latency from per-transaction logs)', ['script', 'mode', 'clients', 'target', 'TPS', 'p50 µs', 'p99 µs'], rows);
    printTable(
      'Ratios (goals: -S c8 proxy ≥ 0.8 × relay; TPC-B c8 ≥ 0.7 ×; strict -S c8 ≥ 0.4 ×; -S c1 p50 ≤ max(relay p50, durable INSERT p50) + 50 µs)',
      ['script', 'mode', 'clients', 'proxy/relay', 'strict/relay', 'proxy/direct', 'proxy − relay p50 µs', 'proxy − max(relay, floor) p50 µs', 'no-audit/relay (diag.)', 'no-audit − relay p50 µs (diag.)'],
      ratioRows,
    );
  } finally {
    for (const c of children.reverse()) await c.stop();
    for (const d of dbs) await d.drop().catch(() => {});
    rmSync(logDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
