/**
 * The demo upstream `appdb` that `baton dev` puts behind the proxy: orders, customers (with e-mail and
 * card numbers, the kind of data masking exists for) and audit_notes, a few hundred rows.
 */
import pg from 'pg';

const SCHEMA = `
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

/** Creates `database` on the server at `adminUrl` (if missing) and seeds it once. Returns its URL. */
export async function ensureDemoUpstream(adminUrl: string, database: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(SCHEMA);
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
  } finally {
    await db.end();
  }
  return url.toString();
}
