/**
 * Scale-out numbers (issue 15 point 6), separate processes on this machine:
 *
 * - token exchanges/s with 1 and with 2 broker processes (`baton serve`, production mode, shared
 *   PostgreSQL + Redis + key file), callers spreading round-robin, same run; with 2 cores the
 *   scaling per core is the ratio;
 * - time for a new `baton proxy` to be ready (listening, revocation set loaded) with 100,000 live
 *   revocations in the store;
 * - transaction pooling (`proxy.pooling: transaction`): 10,000 idle client sessions on one `baton
 *   proxy` process — upstream connections it holds, memory per idle session (the process's RSS), and
 *   every session then running a statement through the ≤ 50 shared connections;
 * - pgbench through the pooled proxy beside pgbouncer (transaction mode, the Debian package) and
 *   PostgreSQL itself, same run, more clients than pooled connections (read workloads: the bench's
 *   OIDC identity holds read rights).
 *
 * Subject tokens come from a real OIDC provider, minted before the clock starts (and reused: an
 * exchange does not consume its subject token), so the provider is not what is measured.
 *
 *   npm run bench -- scale        # ~3 min
 *
 * Env: BENCH_SECONDS (default 8 per setting), BENCH_CONCURRENCY (default 16), BENCH_REVOCATIONS (100000),
 * BENCH_IDLE_SESSIONS (10000), BENCH_PARTS (comma list of exchanges,ready,idle,pgbench; default all).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { type Cluster, type ClusterBroker, type ClusterProxy, startCluster } from '../test/helpers/cluster.ts';
import { freePort } from '../src/util/free-port.ts';
import { fmt, printTable } from './lib/report.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const REVOCATIONS = Number(process.env.BENCH_REVOCATIONS ?? 100_000);
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 10_000);
const PARTS = new Set((process.env.BENCH_PARTS ?? 'exchanges,ready,idle,pgbench').split(','));
/** Upstream connections of the pooled proxy (the bound: ≤ 50). */
const POOL_SIZE = 50;

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
    const subjects = await Promise.all(Array.from({ length: 64 }, () => cluster.idp.token()));
    if (PARTS.has('exchanges')) await brokersBench(cluster, a, subjects);
    if (PARTS.has('ready')) await readyBench(cluster, a, subjects);
    if (PARTS.has('idle')) await idleSessionsBench(cluster, a, subjects);
    if (PARTS.has('pgbench')) await pgbenchBench(cluster, a, subjects);
  } finally {
    await cluster.stop();
  }
}

async function brokersBench(cluster: Cluster, a: ClusterBroker, subjects: string[]): Promise<void> {
  const b = await cluster.startBroker('broker-b');
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
  await b.stop();
}

async function readyBench(cluster: Cluster, a: ClusterBroker, subjects: string[]): Promise<void> {
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
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'agent', database: 'appdb', password: token });
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
  await proxy.stop();
  await cluster.store.pool.query("DELETE FROM revocations WHERE token_id = 'tok_bench'");
}

/** A pooled `baton proxy` that admits thousands of sessions from one address and one token. */
function pooledProxy(cluster: Cluster, broker: ClusterBroker, name: string, size: number): Promise<ClusterProxy> {
  return cluster.startProxy(name, broker, { BATON_LOG_LEVEL: 'warn' }, {
    pooling: 'transaction',
    pool: { size },
    limits: { maxConnections: 20_000, maxConnectionsPerAddress: 20_000, maxSessionsPerToken: 20_000, maxStartingConnections: 256, idleSessionTimeoutMs: 0 },
  });
}

/** The resident set of a process, KiB. */
function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** A client session that authenticates and then says nothing (a raw socket: no client library state). */
function openIdleSession(port: number, token: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const type = buf[0]!;
        const total = buf.readInt32BE(1) + 1;
        if (buf.length < total) return;
        const body = buf.subarray(5, total);
        buf = buf.subarray(total);
        if (type === 0x52 /* R */ && body.readInt32BE(0) === 3) socket.write(serialize.password(token));
        else if (type === 0x45 /* E */) return fail(new Error(`session refused: ${body.toString('latin1').replace(/\0/g, ' ')}`));
        else if (type === 0x5a /* Z */) {
          socket.off('data', onData);
          socket.off('error', fail);
          socket.on('error', () => {});
          return resolve(socket);
        }
      }
    };
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('connect', () => socket.write(serialize.startup({ user: 'agent', database: 'appdb' })));
  });
}

/** One simple query on an open raw session; resolves at its ReadyForQuery. */
function queryOn(socket: Socket, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const total = buf.readInt32BE(1) + 1;
        if (buf.length < total) return;
        const type = buf[0]!;
        buf = buf.subarray(total);
        if (type === 0x45) {
          socket.off('data', onData);
          return reject(new Error('statement failed'));
        }
        if (type === 0x5a) {
          socket.off('data', onData);
          return resolve();
        }
      }
    };
    socket.on('data', onData);
    socket.write(serialize.query(sql));
  });
}

async function inBatches<T>(n: number, width: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let i = next++; i < n; i = next++) out[i] = await one(i);
    }),
  );
  return out;
}

async function pooledBackends(cluster: Cluster): Promise<number> {
  const r = await cluster.store.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'baton (pooled)'",
    [new URL(cluster.appdbUrl).pathname.slice(1)],
  );
  return r.rows[0]!.n;
}

async function idleSessionsBench(cluster: Cluster, a: ClusterBroker, subjects: string[]): Promise<void> {
  const proxy = await pooledProxy(cluster, a, 'proxy-pooled', POOL_SIZE);
  const { token } = await cluster.exchange(a, subjects[1]);
  const pid = proxy.child.pid!;
  // warm: JIT, classifier, the first pooled connections
  const warm = await inBatches(20, 20, () => openIdleSession(proxy.port, token!));
  await Promise.all(warm.map((s) => queryOn(s, 'SELECT count(*) FROM orders')));
  for (const s of warm) s.destroy();
  await new Promise((r) => setTimeout(r, 1_000));
  const before = rssKiB(pid);
  const t0 = performance.now();
  const sessions = await inBatches(IDLE_SESSIONS, 64, () => openIdleSession(proxy.port, token!));
  const openMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 3_000)); // let the heap settle
  const after = rssKiB(pid);
  const upstreamIdle = await pooledBackends(cluster);
  const t1 = performance.now();
  await inBatches(sessions.length, 500, (i) => queryOn(sessions[i]!, 'SELECT count(*) FROM orders'));
  const everyOneMs = performance.now() - t1;
  const upstreamAfter = await pooledBackends(cluster);
  const t2 = performance.now();
  await inBatches(sessions.length, 500, (i) => queryOn(sessions[i]!, 'SELECT count(*) FROM orders'));
  const againMs = performance.now() - t2;
  for (const s of sessions) s.destroy();
  printTable(
    `transaction pooling: ${IDLE_SESSIONS.toLocaleString('en')} idle client sessions on one \`baton proxy\` process (proxy.pool.size = ${POOL_SIZE}; sessions opened 64 at a time from this process, raw sockets)`,
    ['measure', 'value'],
    [
      ['sessions authenticated (one token: its chain verified once, shared)', `${sessions.length.toLocaleString('en')} in ${fmt(openMs / 1000, 1)} s`],
      ['upstream connections held with every session idle', String(upstreamIdle)],
      ['proxy RSS before → after', `${fmt(before / 1024, 0)} MiB → ${fmt(after / 1024, 0)} MiB`],
      ['memory per idle session (RSS growth / sessions)', `${fmt((after - before) / sessions.length, 1)} KiB`],
      ['then every session runs SELECT count(*) FROM orders (500 at a time)', `${fmt(everyOneMs / 1000, 1)} s, ${fmt(sessions.length / (everyOneMs / 1000), 0)} statements/s`],
      ['and again (second statement of every session)', `${fmt(againMs / 1000, 1)} s, ${fmt(sessions.length / (againMs / 1000), 0)} statements/s`],
      ['upstream connections after', String(upstreamAfter)],
    ],
  );
  await proxy.stop();
}

/** pgbouncer (Debian's) in transaction mode in front of the demo upstream, as the proxy's login. */
async function startPgbouncer(cluster: Cluster, poolSize: number): Promise<{ port: number; stop(): void }> {
  const up = new URL(cluster.appdbUrl);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'baton-pgbouncer-'));
  chmodSync(dir, 0o777);
  const db = up.pathname.slice(1);
  writeFileSync(join(dir, 'users.txt'), `"${decodeURIComponent(up.username)}" "${decodeURIComponent(up.password)}"\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `appdb = host=${up.hostname} port=${up.port || 5432} dbname=${db} user=${decodeURIComponent(up.username)} password=${decodeURIComponent(up.password)}`,
      '[pgbouncer]',
      `listen_addr = 127.0.0.1`,
      `listen_port = ${port}`,
      `unix_socket_dir =`,
      `auth_type = trust`,
      `auth_file = ${join(dir, 'users.txt')}`,
      `pool_mode = transaction`,
      `default_pool_size = ${poolSize}`,
      `max_client_conn = 2000`,
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  for (const f of ['users.txt', 'pgbouncer.ini']) chmodSync(join(dir, f), 0o644);
  // pgbouncer will not run as root: -u drops to the postgres user
  const child = spawn('pgbouncer', process.getuid?.() === 0 ? ['-u', 'postgres', join(dir, 'pgbouncer.ini')] : [join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    stop() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pgbench(args: string[], env: Record<string, string>): { tps: number; failed: string } {
  const r = spawnSync('pgbench', args, { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 120_000 });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout ?? '');
  if (!tps) throw new Error(`pgbench failed: ${r.stderr}`);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout ?? '')?.[1] ?? '?';
  return { tps: Number(tps[1]), failed };
}

async function pgbenchBench(cluster: Cluster, a: ClusterBroker, subjects: string[]): Promise<void> {
  const CLIENTS = 32;
  const POOL = 10;
  const up = new URL(cluster.appdbUrl);
  const direct = { PGHOST: up.hostname, PGPORT: up.port || '5432', PGUSER: 'postgres', PGDATABASE: up.pathname.slice(1) };
  const init = spawnSync('pgbench', ['-i', '-s', '1', '-q'], { env: { PATH: process.env.PATH ?? '', ...direct }, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  const proxy = await pooledProxy(cluster, a, 'proxy-pgbench', POOL);
  // the same proxy without pooling: what pooling itself costs, next to what enforcement costs
  const unpooled = await cluster.startProxy('proxy-pgbench-session', a, { BATON_LOG_LEVEL: 'warn' }, { limits: { maxSessionsPerToken: 1_000 } });
  const bouncer = await startPgbouncer(cluster, POOL);
  const { token } = await cluster.exchange(a, subjects[2]);
  const upstreamUser = { ...direct, PGUSER: decodeURIComponent(up.username), PGPASSWORD: decodeURIComponent(up.password) };
  const through = {
    postgres: upstreamUser,
    pgbouncer: { ...upstreamUser, PGHOST: '127.0.0.1', PGPORT: String(bouncer.port), PGDATABASE: 'appdb' },
    batonSession: { PGHOST: '127.0.0.1', PGPORT: String(unpooled.port), PGUSER: 'agent', PGPASSWORD: token!, PGDATABASE: 'appdb' },
    baton: { PGHOST: '127.0.0.1', PGPORT: String(proxy.port), PGUSER: 'agent', PGPASSWORD: token!, PGDATABASE: 'appdb' },
  };
  const rows: string[][] = [];
  try {
    // a read-only transaction of four statements: the connection is held from BEGIN to END (the
    // bench's OIDC identity is an analyst: read rights only, so TPC-B's writes are not run here)
    const scriptFile = join(mkdtempSync(join(tmpdir(), 'baton-pgbench-')), 'read-tx.sql');
    writeFileSync(
      scriptFile,
      ['\\set aid random(1, 100000)', '\\set bid random(1, 1)', '\\set tid random(1, 10)', 'BEGIN;', 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;', 'SELECT bbalance FROM pgbench_branches WHERE bid = :bid;', 'SELECT tbalance FROM pgbench_tellers WHERE tid = :tid;', 'END;', ''].join('\n'),
    );
    for (const [label, script] of [['select-only (-S)', ['-S']], ['read transaction (BEGIN; 3 SELECTs; END)', ['-f', scriptFile]]] as const) {
      for (const mode of ['simple', 'extended']) {
        const args = ['-n', '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), '-M', mode, ...script];
        pgbench(['-n', '-c', String(CLIENTS), '-j', '2', '-T', '2', '-M', mode, ...script], through.baton); // warm-up
        const results = Object.fromEntries(Object.entries(through).map(([k, env]) => [k, pgbench(args, env)]));
        rows.push([
          `${label}, -M ${mode}`,
          fmt(results.postgres!.tps, 0),
          `${fmt(results.pgbouncer!.tps, 0)} (${fmt(results.pgbouncer!.tps / results.postgres!.tps, 2)} ×)`,
          `${fmt(results.batonSession!.tps, 0)} (${fmt(results.batonSession!.tps / results.postgres!.tps, 2)} ×)`,
          `${fmt(results.baton!.tps, 0)} (${fmt(results.baton!.tps / results.postgres!.tps, 2)} ×, ${fmt(results.baton!.tps / results.batonSession!.tps, 2)} × session mode)`,
          [results.postgres!.failed, results.pgbouncer!.failed, results.batonSession!.failed, results.baton!.failed].join(' / '),
        ]);
      }
    }
  } finally {
    bouncer.stop();
    await proxy.stop();
    await unpooled.stop();
  }
  printTable(
    `pgbench, ${CLIENTS} clients, ${SECONDS} s each, same run: PostgreSQL direct (${CLIENTS} backends) vs pgbouncer ${pgbouncerVersion()} (pool_mode = transaction, pool ${POOL}) vs the Baton proxy without and with proxy.pooling: transaction (pool ${POOL}; every statement verified, authorized and audited durably)`,
    ['workload', 'PostgreSQL tps', 'pgbouncer tps', `Baton, session mode (${CLIENTS} upstream)`, `Baton pooled (${POOL} upstream)`, 'failed (pg/pgb/session/pooled)'],
    rows,
  );
}

function pgbouncerVersion(): string {
  return /PgBouncer ([\d.]+)/.exec(spawnSync('pgbouncer', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '?';
}

await main();
process.exit(0);
