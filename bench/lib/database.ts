/** Benchmark databases: created fresh on the shared server (DATABASE_URL or the local default), dropped after. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const BENCH_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Creates `baton_bench_<area>_<random>` (empty: the caller migrates or initialises it). */
export async function createBenchDatabase(area: string): Promise<BenchDatabase> {
  const name = `baton_bench_${area}_${randomBytes(4).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  return { name, url: withDatabase(BENCH_DATABASE_URL, name), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** `server_version`, `fsync` and `synchronous_commit` of the benchmark server, for the report header. */
export async function serverInfo(): Promise<string> {
  const c = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await c.connect();
  try {
    const { rows } = await c.query("SELECT current_setting('server_version') AS v, current_setting('fsync') AS f, current_setting('synchronous_commit') AS s");
    return `PostgreSQL ${rows[0].v} (fsync=${rows[0].f}, synchronous_commit=${rows[0].s})`;
  } finally {
    await c.end();
  }
}
