-- The demo upstream `appdb` behind the proxy, and the least-privileged role the proxy logs in as.
--
-- Run once by the postgres image's entrypoint on a fresh data volume, connected to POSTGRES_DB
-- (appdb) as the image's superuser; test/deploy/compose.test.ts runs this file the same way (psql,
-- ON_ERROR_STOP) against a scratch database and checks what the role can and cannot do. The same
-- tables and privileges as `baton dev`'s demo upstream (src/dev/demo-upstream.ts).
--
-- DESIGN rule 8: the upstream's own privileges are the second lock. The role may read and change
-- rows of these tables — what the grant policy may allow — and nothing else: it cannot create,
-- alter or drop objects, read server files, run programs, signal other backends or keep large
-- objects. `baton proxy` checks this at start and refuses a more privileged login.
--
-- The password is the one in deploy/config/proxy.yaml (the upstream is reachable only on the
-- compose network). For a real database, create your own role like this one and write its URL into
-- your own proxy config.

\set ON_ERROR_STOP on

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
);

-- Seed once: 50 customers (synthetic e-mail and card numbers, the kind of data masking exists for),
-- 300 orders, two notes.
INSERT INTO public.customers (name, email, card_number)
  SELECT 'Customer ' || i, 'customer' || i || '@example.com', '4000 0000 0000 ' || lpad(i::text, 4, '0')
  FROM generate_series(1, 50) AS i
  WHERE NOT EXISTS (SELECT 1 FROM public.customers);
INSERT INTO public.orders (customer_id, amount_cents, created_at)
  SELECT 1 + (i % 50), 100 + (i * 37) % 9900, now() - (i || ' hours')::interval
  FROM generate_series(1, 300) AS i
  WHERE NOT EXISTS (SELECT 1 FROM public.orders);
INSERT INTO public.audit_notes (note)
  SELECT n FROM (VALUES ('demo data seeded by deploy/upstream-init'), ('orders are synthetic')) AS v(n)
  WHERE NOT EXISTS (SELECT 1 FROM public.audit_notes);

-- The proxy's login: no superuser, createdb, createrole, replication or bypassrls; member of nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'baton_proxy') THEN
    CREATE ROLE baton_proxy LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
  END IF;
END
$$;
ALTER ROLE baton_proxy LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
  PASSWORD 'baton-demo-proxy';

-- This database only: PUBLIC loses CONNECT and TEMPORARY here, the proxy's role gets CONNECT.
DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO baton_proxy', current_database());
END
$$;

-- Schema public: usable, but nobody but its owner creates objects in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO baton_proxy;

-- Row privileges on the tables and their sequences, nothing more.
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON public.customers, public.orders, public.audit_notes TO baton_proxy;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.customers_id_seq, public.orders_id_seq, public.audit_notes_id_seq TO baton_proxy;
-- Tables the owner adds to public later are fronted too, still with row privileges only.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO baton_proxy;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO baton_proxy;

-- Functions a plain role may call by default that reach beyond its own tables: signalling other
-- backends of the same role (every proxy session logs in as baton_proxy) and large objects.
DO $$
DECLARE
  fn regprocedure;
BEGIN
  FOR fn IN
    SELECT p.oid::regprocedure FROM pg_proc p
    WHERE p.pronamespace = 'pg_catalog'::regnamespace
      AND p.proname IN ('pg_cancel_backend', 'pg_terminate_backend', 'lo_creat', 'lo_create', 'lo_from_bytea', 'lo_import', 'lo_export')
  LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
  END LOOP;
END
$$;
