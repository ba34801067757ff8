/** A fresh database per test file on the test PostgreSQL (real server in CI, embedded elsewhere). */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../../src/store/migrate.ts';

export const TEST_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates `baton_t_<area>_<random>`, applies the migrations, and returns a pool on it. */
export async function createTestDatabase(area: string, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `baton_t_${area}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = withDatabase(TEST_DATABASE_URL, name);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => {});
  if (opts.migrate !== false) await applyMigrations(pool);
  return {
    url,
    pool,
    async drop() {
      await pool.end().catch(() => {});
      const a = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}
