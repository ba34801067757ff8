/**
 * The Postgres proxy against its ceilings: `pgbench -S` (select-only) at 1 and 8 clients in the
 * simple, extended and prepared protocols, in ONE run against
 *   direct — PostgreSQL itself (own database, `pgbench -i -s 5`),
 *   relay  — a bare Node TCP relay (bench/lib/relay.ts, own process): the ceiling for a Node proxy,
 *   proxy  — Baton's proxy (own process, with its broker): token verified per connection, every
 *            statement classified, authorized and durably audited before it runs,
 *   proxy-noaudit — DIAGNOSTIC: the same proxy with an audit writer that records nothing
 *            (bench/lib/memory-audit.ts), to separate the audit trail's cost from the proxy's own.
 * The client's token is the real thing: dev OIDC token → exchange → attenuate to read on
 * pg:appdb/public.*. Targets are interleaved per (mode, clients) so background load hits all three.
 *
 *   npm run bench -- pgproxy        # BENCH_PGBENCH_SECONDS=8; BENCH_PROXY_CPU_PROF=<dir> profiles the proxy
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
const ALL_TARGETS = ['direct', 'relay', 'proxy', 'proxy-noaudit'] as const;
type Target = (typeof ALL_TARGETS)[number];
/** Narrowing for profiling one case: BENCH_PGBENCH_MODES=extended BENCH_PGBENCH_CLIENTS=1 BENCH_PGBENCH_TARGETS=proxy-noaudit */
const list = (name: string, all: readonly string[]) => (process.env[name] ? process.env[name]!.split(',').filter((x) => all.includes(x)) : [...all]);
const MODES = list('BENCH_PGBENCH_MODES', ['simple', 'extended', 'prepared']);
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
async function pgbench(env: Record<string, string>, mode: string, clients: number, logDir: string, tag: string, seconds: number): Promise<RunResult> {
  const prefix = join(logDir, tag);
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-l', `--log-prefix=${prefix}`];
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

/** dev OIDC token → exchange → attenuate to read-only on pg:appdb/public.* (what pgbench -S needs). */
async function proxyToken(brokerUrl: string): Promise<string> {
  const jwtRes = await fetch(`${brokerUrl}/dev/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'bench@example.com', groups: ['analysts'], client_id: 'bench-planner' }),
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
  return attenuate(body.access_token, { resources: ['pg:appdb/public.*'], operations: ['read'], ttl: '10m', delegateTo: 'pgbench', purpose: 'benchmark' });
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
    const startProxy = async (audit: 'durable' | 'memory') => {
      const child = await startChild<{ brokerUrl: string; proxyPort: number }>(
        './baton-child.ts',
        { BENCH_DATABASE_URL: brokerDb.url, BENCH_DATA_DIR: dataDir, BENCH_UPSTREAM_URL: appdb.url, BENCH_AUDIT: audit },
        profDir ? ['--cpu-prof', '--cpu-prof-dir', join(profDir, `proxy-audit-${audit}`)] : [],
      );
      children.push(child);
      return child;
    };
    const baton = await startProxy('durable');
    const noAudit = await startProxy('memory');
    const token = await proxyToken(baton.info.brokerUrl);
    const proxyEnv = (port: number) => ({ PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'agent', PGPASSWORD: token, PGDATABASE: 'appdb', PGSSLMODE: 'disable' });

    const envs: Record<Target, Record<string, string>> = {
      direct: { ...pgEnv, PGDATABASE: appdb.name },
      relay: { ...pgEnv, PGHOST: '127.0.0.1', PGPORT: String(relay.info.port), PGDATABASE: appdb.name },
      proxy: proxyEnv(baton.info.proxyPort),
      'proxy-noaudit': proxyEnv(noAudit.info.proxyPort),
    };
    // warm-up: JIT in both Node processes, classifier cache, shared buffers
    for (const t of TARGETS) await pgbench(envs[t], 'simple', 2, logDir, `warmup-${t}`, WARMUP_SECONDS).catch((e: Error) => Promise.reject(new Error(`${t}: ${e.message}`)));

    const results = new Map<string, RunResult>();
    for (const mode of MODES) {
      for (const c of CLIENTS) {
        for (const t of TARGETS) results.set(`${t}/${mode}/${c}`, await pgbench(envs[t], mode, c, logDir, `${t}-${mode}-${c}`, t === 'proxy-noaudit' ? DIAGNOSTIC_SECONDS : SECONDS));
      }
    }

    const get = (t: Target, mode: string, c: number) => results.get(`${t}/${mode}/${c}`);
    const rows: string[][] = [];
    const ratioRows: string[][] = [];
    for (const mode of MODES) {
      for (const c of CLIENTS) {
        for (const t of TARGETS) {
          const r = get(t, mode, c)!;
          rows.push([mode, String(c), t, fmt(r.tps), fmt(r.p50), fmt(r.p99)]);
        }
        const [d, r, p, n] = ALL_TARGETS.map((t) => get(t, mode, c));
        if (!d || !r || !p || !n) continue; // a narrowed run: no ratios
        ratioRows.push([
          mode,
          String(c),
          fmt(p.tps / r.tps, 2),
          fmt(p.tps / d.tps, 2),
          fmt(r.tps / d.tps, 2),
          fmt(p.p50 - r.p50),
          p.tps / r.tps >= 0.9 ? 'yes' : 'NO',
          fmt(n.tps / r.tps, 2),
          fmt(n.p50 - r.p50),
        ]);
      }
    }
    console.log(`\nPostgres proxy — pgbench -S (select-only, scale 5), -T ${SECONDS} s per run (diagnostic proxy-noaudit ${DIAGNOSTIC_SECONDS} s), -j min(clients, 2); ${await serverInfo()}; proxy with authorization + durable audit, relay and proxy each in their own Node process`);
    printTable('pgbench -S: throughput and latency (latency from per-transaction logs)', ['mode', 'clients', 'target', 'TPS', 'p50 µs', 'p99 µs'], rows);
    printTable('Ratios (goal: proxy ≥ 0.9 × relay TPS everywhere; ≤ 50 µs added p50 over the relay at 1 client)', ['mode', 'clients', 'proxy/relay', 'proxy/direct', 'relay/direct', 'proxy − relay p50 µs', 'proxy ≥ 0.9 × relay', 'no-audit/relay (diag.)', 'no-audit − relay p50 µs (diag.)'], ratioRows);
  } finally {
    for (const c of children.reverse()) await c.stop();
    for (const d of dbs) await d.drop().catch(() => {});
    rmSync(logDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
