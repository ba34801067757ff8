/**
 * The demo upstream `appdb` that `baton dev` puts behind the proxy: orders, customers (with e-mail and
 * card numbers, the kind of data masking exists for) and audit_notes, a few hundred rows — and the
 * least-privileged role the proxy logs in as (DESIGN rule 8: the upstream's own privileges are the
 * second lock, so a classifier miss is contained by the database itself).
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';

/** The demo tables; deploy/upstream-init/10-appdb.sql (the compose upstream) carries the same text, pinned by test/deploy. */
export const DEMO_SCHEMA = `
CREATE TABLE IF NOT EXISTS public.customers (
  id serial PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  card_number text NOT NULL
);
CREATE TABLE IF NOT EXISTS public.orders (
  id serial PRIMARY KEY,
  customer_id integer NOT NULL,
  amount_cents integer NOT NULL,
  currency text NOT NULL DEFAULT 'EUR',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.audit_notes (
  id serial PRIMARY KEY,
  note text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);`;

/**
 * Functions a plain role may call by default that reach beyond its own tables: signalling other
 * backends of the same role (pg_cancel_backend/pg_terminate_backend need no privilege against one's
 * own role — other proxy sessions log in as the same role) and creating large objects (storage
 * outside any table the proxy fronts). Revoked from PUBLIC in the demo database.
 */
const REVOKED_FUNCTIONS = ['pg_cancel_backend', 'pg_terminate_backend', 'lo_creat', 'lo_create', 'lo_from_bytea', 'lo_import', 'lo_export'];

/** The name of the proxy's login role for a demo database (≤ 63 bytes, a plain identifier). */
export function demoProxyRole(database: string): string {
  const name = `baton_proxy_${database.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
  if (name.length <= 63) return name;
  return `${name.slice(0, 50)}_${createHash('sha256').update(database).digest('hex').slice(0, 12)}`;
}

/**
 * Creates `database` on the server at `adminUrl` (if missing), seeds it once, and (re)creates the
 * proxy's least-privileged login role for it. Returns the URL the PROXY should use: that role, with
 * a fresh random password (set each call), on that database.
 *
 * The role: LOGIN, no superuser/createdb/createrole/replication/bypassrls, no predefined roles;
 * CONNECT on this database only (PUBLIC loses CONNECT and TEMPORARY there); USAGE on schema public
 * (PUBLIC loses CREATE); SELECT/INSERT/UPDATE/DELETE/TRUNCATE on the demo tables and
 * USAGE/SELECT/UPDATE on their sequences — nothing it could use to create objects, read files, run
 * programs, signal backends or store large objects.
 */
export async function ensureDemoUpstream(adminUrl: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  const role = demoProxyRole(database);
  const password = randomBytes(18).toString('base64url');
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    const r = pg.escapeIdentifier(role);
    const hasRole = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (hasRole.rowCount === 0) {
      await admin
        .query(`CREATE ROLE ${r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT`)
        .catch((err: { code?: string }) => {
          if (err.code !== '42710') throw err; // created concurrently
        });
    }
    // Also strips anything a previous run (or a person) may have added.
    await admin.query(`ALTER ROLE ${r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD ${pg.escapeLiteral(password)}`);
    const memberships = await admin.query<{ rolname: string }>(
      'SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1',
      [role],
    );
    for (const { rolname } of memberships.rows) await admin.query(`REVOKE ${pg.escapeIdentifier(rolname)} FROM ${r}`);
    const d = pg.escapeIdentifier(database);
    await admin.query(`REVOKE ALL ON DATABASE ${d} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE ${d} TO ${r}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(DEMO_SCHEMA);
    const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM public.customers');
    if (Number(rows[0]!.n) === 0) {
      await db.query(`
        INSERT INTO public.customers (name, email, card_number)
          SELECT 'Customer ' || i, 'customer' || i || '@example.com', '4000 0000 0000 ' || lpad(i::text, 4, '0')
          FROM generate_series(1, 50) AS i;
        INSERT INTO public.orders (customer_id, amount_cents, created_at)
          SELECT 1 + (i % 50), 100 + (i * 37) % 9900, now() - (i || ' hours')::interval
          FROM generate_series(1, 300) AS i;
        INSERT INTO public.audit_notes (note) VALUES ('demo data seeded by baton dev'), ('orders are synthetic');`);
    }
    const r = pg.escapeIdentifier(role);
    await db.query(`
      REVOKE CREATE ON SCHEMA public FROM PUBLIC;
      GRANT USAGE ON SCHEMA public TO ${r};
      GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON public.customers, public.orders, public.audit_notes TO ${r};
      GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.customers_id_seq, public.orders_id_seq, public.audit_notes_id_seq TO ${r};
      -- tables the database's owner adds to public later (e.g. pgbench -i) are fronted too; still
      -- only row privileges: the role can create, alter or drop nothing
      ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO ${r};
      ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${r};`);
    const fns = await db.query<{ sig: string }>(
      "SELECT p.oid::regprocedure::text AS sig FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY($1)",
      [REVOKED_FUNCTIONS],
    );
    for (const { sig } of fns.rows) await db.query(`REVOKE EXECUTE ON FUNCTION ${sig} FROM PUBLIC`);
  } finally {
    await db.end();
  }
  const proxyUrl = new URL(url);
  proxyUrl.username = role;
  proxyUrl.password = password;
  return proxyUrl.toString();
}

/** Drops a demo database and its proxy role (tests, clean-up). */
export async function dropDemoUpstream(adminUrl: string, database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(demoProxyRole(database))}`).catch(() => {});
  } finally {
    await admin.end();
  }
}
