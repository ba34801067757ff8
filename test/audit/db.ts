/**
 * A throw-away PostgreSQL database per test file with the audit migrations applied (twice: they
 * must be idempotent). Real server from DATABASE_URL or 127.0.0.1:5432.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';

export const BASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const migration = (file: string) => readFileSync(new URL(`../../migrations/${file}`, import.meta.url), 'utf8');
/** The audit table definitions (002), the fast-append functions (004), per-writer chains (005), masking/approval fields (006), HTTP request fields (008). */
export const MIGRATIONS = [migration('002_audit.sql'), migration('004_audit_fast_append.sql'), migration('005_audit_chains.sql'), migration('006_audit_masking_approvals.sql'), migration('008_audit_http.sql')];

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool on the test database; `application_name` identifies its backends. */
  pool: pg.Pool;
  applicationName: string;
  /** Opens another pool on the same database (e.g. a second writer "process"). */
  newPool(config?: pg.PoolConfig): pg.Pool;
  drop(): Promise<void>;
}

export function urlFor(database: string, base = BASE_URL): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

export async function createTestDatabase(area: string): Promise<TestDatabase> {
  const name = `baton_t_audit_${area}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: BASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  const applicationName = `${name}_writer`;
  const pools: pg.Pool[] = [];
  const newPool = (config: pg.PoolConfig = {}) => {
    const pool = new pg.Pool({ connectionString: url, max: 4, ...config });
    pool.on('error', () => {}); // terminated idle backends are expected in outage tests
    pools.push(pool);
    return pool;
  };
  const pool = newPool({ application_name: applicationName });
  for (const sql of [...MIGRATIONS, ...MIGRATIONS]) await pool.query(sql);
  return {
    name,
    url,
    pool,
    applicationName,
    newPool,
    async drop() {
      await Promise.all(pools.map((p) => p.end().catch(() => {})));
      const c = new pg.Client({ connectionString: BASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
