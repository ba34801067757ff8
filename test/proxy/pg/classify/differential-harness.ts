/**
 * Differential check of the SQL classifier against PostgreSQL itself.
 *
 * A scratch PostgreSQL cluster (own initdb, own port, the distribution's binaries) runs with
 * `pgaudit` and the server's own parse-tree dumps. Every statement is classified by
 * `classifySql` and then executed as a superuser inside a transaction that is rolled back. What the
 * server touched is read back from its csvlog:
 *
 * - `debug_print_parse` (the analyzed tree of the statement itself, before the rewriter): every
 *   relation it names (with the privileges PostgreSQL requires: SELECT/INSERT/UPDATE/DELETE), every
 *   function it calls — plain calls, attribute notation `(x).fn` / `alias.fn`, casts, operators'
 *   functions, aggregates, window functions — and types whose input function runs for a literal or
 *   an I/O cast. This is the only source for `pg_catalog` functions: pgaudit never logs those.
 * - `debug_print_rewritten`: what the rewriter added (defaults, view bodies, rules). Those run
 *   under their own object's name (docs/sql-classification.md, "Known limits"): not findings.
 * - pgaudit (`log = read, write, function, ddl`, `log_relation`, `log_catalog`): every relation the
 *   executor checked and every non-`pg_catalog` function it initialised, at any depth. Events of the
 *   statement itself (not of a nested query inside a function body) that the parse tree does not
 *   explain are function calls the text never spells: domain CHECKs, user-defined type I/O, …
 *
 * Coverage rule (a finding is anything not covered): the classifier refused the statement (fail
 * closed) — covered; an `admin` access — covers everything; a relation needs an access on
 * `pg:<up>/<schema>.<rel>` with each operation PostgreSQL required (free catalog reads excepted);
 * a function needs `judgeFunction` = free, or `execute` on `pg:<up>/<schema>.<fn>()`. A
 * `pg_catalog` function reached through a built-in operator or cast (int4pl, regclass(text)) is a
 * finding only when `judgeFunction` says `admin`/`sequence`: those are not spelled as calls and
 * built-in casts and operators are side-effect free.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, openSync, readSync, closeSync, readdirSync, rmSync, statSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { classifySql, initClassifier, quoteIdent, type Classification, type ClassifyContext } from '../../../../src/proxy/pg/classify/index.ts';
import * as functions from '../../../../src/proxy/pg/classify/functions.ts';
import { isFreeCatalogRead } from '../../../../src/proxy/pg/classify/catalog.ts';
import { loadUpstreamObjects } from '../../../../src/proxy/pg/upstream-objects.ts';
import type { UpstreamTarget } from '../../../../src/proxy/pg/gate.ts';

export const UPSTREAM = 'appdb';
const PAD = 'bd';

// ---------------------------------------------------------------------------------------------
// Scratch cluster
// ---------------------------------------------------------------------------------------------

export type Availability = { ok: true; binDir: string } | { ok: false; reason: string };

/** The newest installed PostgreSQL whose lib directory has pgaudit.so. */
export function scratchAvailability(): Availability {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return { ok: false, reason: `${root} missing (no PostgreSQL server binaries)` };
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (!existsSync(join(bin, 'initdb'))) continue;
    if (!existsSync(join(root, v, 'lib', 'pgaudit.so'))) {
      return { ok: false, reason: `pgaudit not installed for PostgreSQL ${v} (apt-get install postgresql-${v}-pgaudit)` };
    }
    return { ok: true, binDir: bin };
  }
  return { ok: false, reason: 'initdb not found under /usr/lib/postgresql/*/bin' };
}

export interface Scratch {
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  url(db?: string): string;
  stop(): void;
}

const asRoot = userInfo().uid === 0;

function pgBin(binDir: string, cmd: string, args: string[]): string {
  const full = join(binDir, cmd);
  return asRoot
    ? execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', [full, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    : execFileSync(full, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** initdb + start a throw-away cluster with pgaudit preloaded and csvlog into `<dir>/log/pg.csv`. */
export async function startScratch(binDir: string): Promise<Scratch> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-differential-'));
  if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), 0);
  const data = join(dir, 'data');
  pgBin(binDir, 'initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const logDir = join(dir, 'log');
  appendFileSync(
    join(data, 'postgresql.conf'),
    [
      '',
      "shared_preload_libraries = 'pgaudit'",
      'logging_collector = on',
      "log_destination = 'csvlog'",
      `log_directory = '${logDir}'`,
      "log_filename = 'pg.log'",
      'log_rotation_age = 0',
      'log_rotation_size = 0',
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      "pgaudit.log = 'read, write, function, ddl'",
      'pgaudit.log_relation = on',
      'pgaudit.log_catalog = on',
      'pgaudit.log_parameter = off',
      'pgaudit.log_statement_once = on',
      'debug_pretty_print = off',
      'max_connections = 20',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  pgBin(binDir, 'pg_ctl', ['-D', data, '-w', '-t', '60', '-l', join(dir, 'server.log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
  return {
    port,
    dir,
    logFile: join(logDir, 'pg.csv'),
    url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
    stop() {
      try {
        pgBin(binDir, 'pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The scratch database: the demo schema plus one object per known bypass class
// ---------------------------------------------------------------------------------------------

/** src/dev/demo-upstream.ts's tables, then the objects the mutation corpus uses. */
export const SCHEMA_SQL = `
CREATE EXTENSION IF NOT EXISTS pgaudit;
CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, card_number text NOT NULL);
CREATE TABLE public.orders (id serial PRIMARY KEY, customer_id integer NOT NULL, amount_cents integer NOT NULL,
  currency text NOT NULL DEFAULT 'EUR', created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE public.audit_notes (id serial PRIMARY KEY, note text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO public.customers (name, email, card_number)
  SELECT 'Customer ' || i, 'customer' || i || '@example.com', '4000 0000 0000 ' || lpad(i::text, 4, '0') FROM generate_series(1, 5) AS i;
INSERT INTO public.orders (customer_id, amount_cents) SELECT 1 + (i % 5), 100 + i FROM generate_series(1, 10) AS i;
INSERT INTO public.audit_notes (note) VALUES ('seeded');

CREATE SCHEMA ext;
CREATE SEQUENCE public.s;
-- user functions: PL/pgSQL reading a table, a side-effect one, an inlinable SQL one, a row function
CREATE FUNCTION public.evil(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM 1 FROM public.customers; RETURN $1; END $$;
CREATE FUNCTION public.evil_int(integer) RETURNS integer LANGUAGE plpgsql AS $$ BEGIN RETURN $1; END $$;
CREATE FUNCTION public.evil_bool(text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN true; END $$;
CREATE FUNCTION public.evil_cmp(text, text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN true; END $$;
CREATE FUNCTION public.evil_sql(text) RETURNS text LANGUAGE sql AS $$ SELECT upper($1) $$;
CREATE FUNCTION public.order_total(public.orders) RETURNS integer LANGUAGE sql AS $$ SELECT $1.amount_cents $$;
CREATE FUNCTION public.cust_secret(public.customers) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN $1.card_number; END $$;
CREATE FUNCTION ext.hidden(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN $1; END $$;
CREATE FUNCTION public.evil_rec(record) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'x'; END $$;
CREATE FUNCTION public.evil_any(anyelement) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'x'; END $$;
CREATE FUNCTION public.evil_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
-- operators: user functions, and pg_catalog functions that need admin
CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_cmp);
CREATE OPERATOR public.@@@ (RIGHTARG = text, FUNCTION = pg_catalog.pg_read_file);
CREATE OPERATOR public.### (LEFTARG = regclass, RIGHTARG = bigint, FUNCTION = pg_catalog.setval);
-- casts and types: a cast function, a domain CHECK, a composite type
CREATE TYPE public.mt AS (x text);
CREATE FUNCTION public.to_mt(integer) RETURNS public.mt LANGUAGE plpgsql AS $$ BEGIN RETURN ROW($1::text)::public.mt; END $$;
CREATE CAST (integer AS public.mt) WITH FUNCTION public.to_mt(integer);
CREATE FUNCTION public.evil_dom_check(text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN true; END $$;
CREATE DOMAIN public.dom AS text CHECK (public.evil_dom_check(VALUE));
CREATE TYPE public.mt2 AS (y text);
CREATE FUNCTION public.to_mt2(text) RETURNS public.mt2 LANGUAGE plpgsql AS $$ BEGIN RETURN ROW($1)::public.mt2; END $$;
CREATE CAST (text AS public.mt2) WITH FUNCTION public.to_mt2(text) AS ASSIGNMENT;
CREATE TABLE public.with_mt2 (m public.mt2, d public.dom);
CREATE FUNCTION public.evil_sfunc(integer, integer) RETURNS integer LANGUAGE plpgsql AS $$ BEGIN RETURN coalesce($1, 0) + $2; END $$;
CREATE AGGREGATE public.evil_agg(integer) (SFUNC = public.evil_sfunc, STYPE = integer);
CREATE PROCEDURE public.evil_proc() LANGUAGE plpgsql AS $$ BEGIN PERFORM 1 FROM public.customers; END $$;
CREATE FUNCTION public.evil_set() RETURNS SETOF public.customers LANGUAGE sql AS $$ SELECT * FROM public.customers $$;
CREATE DOMAIN public.dom_file AS text CHECK (pg_catalog.length(pg_catalog.pg_read_file('/etc/hostname')) > 0);
-- objects whose bodies run code under their own name
CREATE TABLE public.with_default (a text DEFAULT public.evil('d'), b integer);
CREATE TABLE public.with_check (a text CHECK (public.evil_bool(a)));
CREATE TABLE public.with_trigger (a text);
CREATE TRIGGER t BEFORE INSERT ON public.with_trigger FOR EACH ROW EXECUTE FUNCTION public.evil_trg();
CREATE VIEW public.v_orders AS SELECT o.*, public.evil(o.currency) AS e FROM public.orders o;
CREATE MATERIALIZED VIEW public.mv AS SELECT 1 AS one;
CREATE TABLE public.parted (k integer, v text) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
CREATE TABLE public.with_rule (a text);
CREATE RULE r AS ON INSERT TO public.with_rule DO ALSO INSERT INTO public.audit_notes (note) VALUES (NEW.a);
SELECT lo_from_bytea(4242, 'x');
ANALYZE;
`;

// ---------------------------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------------------------

/** One statement to check; `source` names the generator (the findings are grouped by it). */
export interface Case {
  readonly source: string;
  readonly sql: string;
  /** Classify it, but do not run it (it would end the session or the transaction). */
  readonly classifyOnly?: boolean;
  /** Use this instead of the classifier's answer (the harness's self-check: it must report these). */
  readonly pretend?: Classification;
}

const NOTHING: Classification = Object.freeze({ ok: true, statements: Object.freeze([Object.freeze({ kind: 'select', accesses: Object.freeze([]), fingerprint: '', normalized: '' })]) });

/**
 * Self-check: statements paired with a pretend classification that needs nothing. The harness must
 * report each (source `canary`, kind as named), or it has gone blind.
 */
export const CANARIES: readonly (Case & { expect: string })[] = [
  { source: 'canary', sql: "SELECT pg_read_file('/etc/hostname')", pretend: NOTHING, expect: 'call' },
  { source: 'canary', sql: "SELECT ('/etc/hostname'::text).pg_read_file", pretend: NOTHING, expect: 'call' },
  { source: 'canary', sql: 'SELECT o.order_total FROM orders o', pretend: NOTHING, expect: 'relation' },
  { source: 'canary', sql: "SELECT 'a' === 'b'", pretend: NOTHING, expect: 'operator' },
  { source: 'canary', sql: 'SELECT 1::mt', pretend: NOTHING, expect: 'cast' },
  { source: 'canary', sql: "SELECT 'x'::dom", pretend: NOTHING, expect: 'implicit' },
  { source: 'canary', sql: 'SELECT public.evil_agg(1)', pretend: NOTHING, expect: 'aggregate' },
  { source: 'canary', sql: 'UPDATE orders SET amount_cents = 1 WHERE id = 0', pretend: NOTHING, expect: 'relation' },
  { source: 'canary', sql: 'EXPLAIN ANALYZE SELECT evil(name) FROM customers', pretend: NOTHING, expect: 'call' },
];

/** Hand-written mutations of each known bypass class. */
export function mutationCorpus(): Case[] {
  const c = (source: string, ...sqls: string[]): Case[] => sqls.map((sql) => ({ source: `mutation:${source}`, sql }));
  return [
    ...c('attribute-notation',
      "SELECT ('/etc/hostname'::text).pg_read_file",
      "SELECT ('/etc/hostname'::text).pg_catalog.pg_read_file",
      'SELECT (pg_backend_pid()).pg_terminate_backend',
      "SELECT ('x'::text).evil",
      "SELECT ('x'::text).public.evil",
      "SELECT ('x'::text).ext.hidden",
      "SELECT ('public.s'::regclass).nextval",
      "SELECT ('public.s'::text).nextval",
      "SELECT (42::oid).lo_get",
      "SELECT ((SELECT 'x'::text)).evil",
      "SELECT (ARRAY['/etc/hostname'])[1].pg_read_file",
      "SELECT ('select 1'::text).ts_stat",
      "SELECT ('x'::text).evil_sql"),
    ...c('alias-notation',
      'SELECT o.order_total FROM orders o',
      'SELECT c.cust_secret FROM customers c',
      'SELECT orders.order_total FROM orders',
      "SELECT t.pg_read_file FROM (SELECT '/etc/hostname'::text) AS t(f)",
      'SELECT t.evil_rec FROM (SELECT 1) AS t',
      'SELECT t.evil_any FROM orders t',
      'SELECT t.row_to_json FROM customers t',
      'SELECT o.order_total, o.amount_cents FROM orders o WHERE o.order_total > 0',
      'SELECT x.evil_rec FROM (VALUES (1)) x',
      'WITH w AS (SELECT 1 AS a) SELECT w.evil_rec FROM w'),
    ...c('whole-row',
      'SELECT order_total(o) FROM orders o',
      'SELECT cust_secret(c) FROM customers c',
      'SELECT evil_rec(c) FROM customers c',
      'SELECT row_to_json(c) FROM customers c',
      'SELECT to_jsonb(c.*) FROM customers c',
      'SELECT evil_any(o.*) FROM orders o'),
    ...c('operator',
      "SELECT 'a' === 'b'",
      "SELECT 'a' OPERATOR(public.===) 'b'",
      "SELECT @@@ '/etc/hostname'",
      "SELECT OPERATOR(public.@@@) '/etc/hostname'",
      "SELECT 'public.s'::regclass ### 5",
      "SELECT * FROM customers WHERE name === 'x'",
      "SELECT 1 WHERE 'a' === ANY (ARRAY['b'])",
      "SELECT NULLIF('a'::text, 'b')",
      'SELECT 1 + 2, 2 * 3, 10 / 2, 1 < 2',
      "SELECT name || email FROM customers WHERE id = 1 AND name LIKE 'C%'",
      "SELECT 'a' IS DISTINCT FROM 'b'"),
    ...c('cast',
      'SELECT 1::mt',
      'SELECT CAST(1 AS public.mt)',
      'SELECT amount_cents::mt FROM orders',
      "SELECT 'x'::dom",
      "SELECT CAST('x' AS public.dom)",
      "SELECT 'x'::dom_file",
      "SELECT name::dom FROM customers",
      "SELECT 'orders'::regclass",
      "SELECT 'orders'::text::regclass",
      "SELECT '1'::text::int4",
      "SELECT pg_read_file::text FROM (SELECT 1) pg_read_file",
      "SELECT ROW('x')::mt",
      "INSERT INTO with_mt2 (m) VALUES ('x'::text)",
      "UPDATE with_mt2 SET m = 'x'::text",
      "INSERT INTO with_mt2 (d) VALUES ('x')",
      "SELECT ARRAY['x']::dom[]",
      "SELECT '{x}'::text[]::dom[]"),
    ...c('functions-elsewhere',
      'SELECT public.evil_agg(amount_cents) FROM orders',
      'SELECT evil_agg(amount_cents) OVER () FROM orders',
      'CALL evil_proc()',
      'SELECT * FROM evil_set()',
      "SELECT * FROM ROWS FROM (evil('x'), evil_set())",
      "SELECT * FROM customers WHERE name = ANY (SELECT evil(name) FROM customers)",
      "SELECT * FROM orders ORDER BY evil(currency)",
      "SELECT count(*) FILTER (WHERE evil_bool(currency)) FROM orders",
      "SELECT ((('/etc/hostname'::text).pg_read_file)::text).length",
      "SELECT (o).order_total FROM orders o",
      "SELECT (c.*).cust_secret FROM customers c",
      "SELECT (ROW(1, 2, 3, 'EUR', now())::orders).order_total",
      "VALUES (evil('x'))",
      "SELECT 1 FROM orders GROUP BY evil(currency) HAVING evil_bool('x')"),
    ...c('defaults-checks-views-triggers-rules',
      'INSERT INTO with_default (b) VALUES (1)',
      "INSERT INTO with_default VALUES (DEFAULT, 1)",
      "INSERT INTO with_check VALUES ('x')",
      "UPDATE with_check SET a = 'y'",
      "INSERT INTO with_trigger VALUES ('x')",
      "INSERT INTO with_rule VALUES ('x')",
      'SELECT * FROM v_orders',
      'SELECT e FROM v_orders',
      'SELECT * FROM mv',
      'SELECT * FROM parted',
      "INSERT INTO parted VALUES (1, 'a')",
      'SELECT * FROM parted_1'),
    ...c('sql-from-a-string',
      "SELECT ts_stat('SELECT to_tsvector(name) FROM customers')",
      "SELECT * FROM ts_stat('SELECT to_tsvector(card_number) FROM customers')",
      "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
      "SELECT query_to_xml('SELECT * FROM customers', true, false, '')",
      "SELECT table_to_xml('customers', true, false, '')",
      "SELECT query_to_xml_and_xmlschema('SELECT 1', true, false, '')",
      "SELECT xpath('/a', '<a/>')",
      "SELECT database_to_xml(true, false, '')",
      "SELECT schema_to_xml('public', true, false, '')",
      "SELECT cursor_to_xml('c', 1, true, false, '')"),
    ...c('settings',
      "SELECT set_config('search_path', 'ext', false)",
      "SELECT set_config('role', 'postgres', true)",
      "SELECT current_setting('search_path')",
      "SELECT pg_catalog.set_config('app.tenant', '1', true)",
      "SELECT * FROM pg_settings WHERE name = 'search_path'",
      "UPDATE pg_settings SET setting = 'ext' WHERE name = 'search_path'"),
    ...c('sequences',
      "SELECT nextval('s')",
      "SELECT nextval('public.s'::regclass)",
      "SELECT setval('s', 5)",
      "SELECT currval('s')",
      "SELECT nextval(n) FROM (VALUES ('s')) v(n)",
      'SELECT lastval()',
      'SELECT * FROM s',
      "SELECT nextval('orders_id_seq')",
      "SELECT pg_sequence_last_value('s')"),
    ...c('large-objects',
      'SELECT lo_get(4242)',
      "SELECT lo_import('/etc/hostname')",
      'SELECT lo_unlink(4242)',
      "SELECT lo_from_bytea(0, 'x')",
      'SELECT loread(lo_open(4242, 262144), 10)',
      'SELECT * FROM pg_largeobject',
      'SELECT * FROM pg_largeobject_metadata'),
    ...c('sleep-locks-signals',
      'SELECT pg_sleep(0)',
      'SELECT pg_sleep_for(interval \'0 s\')',
      'SELECT pg_advisory_lock(1)',
      'SELECT pg_try_advisory_xact_lock(1)',
      'SELECT pg_advisory_unlock_all()',
      'SELECT pg_cancel_backend(0)',
      'SELECT pg_terminate_backend(0)',
      'SELECT pg_reload_conf()',
      "SELECT pg_notify('c', 'x')",
      'SELECT pg_backend_pid()'),
    ...c('files',
      "SELECT pg_read_file('/etc/hostname')",
      "SELECT pg_read_binary_file('/etc/hostname')",
      "SELECT pg_stat_file('/etc/hostname')",
      "SELECT * FROM pg_ls_dir('/')",
      'SELECT * FROM pg_ls_logdir()',
      'SELECT pg_current_logfile()'),
    ...c('catalog',
      'SELECT * FROM pg_authid',
      'SELECT rolpassword FROM pg_shadow',
      'SELECT * FROM pg_stat_activity',
      'SELECT * FROM pg_statistic',
      'SELECT * FROM pg_stats',
      'SELECT * FROM pg_class',
      'SELECT * FROM information_schema.tables',
      'SELECT * FROM pg_user_mappings',
      'SELECT * FROM pg_file_settings',
      'SELECT * FROM pg_hba_file_rules',
      'SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace'),
    ...c('dml',
      "INSERT INTO customers (name, email, card_number) VALUES ('a', 'b', 'c') RETURNING card_number",
      "INSERT INTO customers (id, name, email, card_number) VALUES (1, 'a', 'b', 'c') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
      "INSERT INTO customers (id, name, email, card_number) VALUES (1, 'a', 'b', 'c') ON CONFLICT (id) DO NOTHING",
      'UPDATE orders SET amount_cents = 1',
      'UPDATE orders SET amount_cents = amount_cents + 1',
      'UPDATE orders SET amount_cents = 1 WHERE id = 1',
      'UPDATE orders SET amount_cents = (SELECT count(*) FROM customers)',
      'DELETE FROM audit_notes',
      'DELETE FROM audit_notes WHERE id = 1',
      'DELETE FROM orders USING customers c WHERE c.id = orders.customer_id',
      'SELECT * FROM orders FOR UPDATE',
      'SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id FOR SHARE OF o',
      'WITH d AS (DELETE FROM audit_notes RETURNING *) SELECT count(*) FROM d',
      'MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET amount_cents = 0',
      "MERGE INTO audit_notes a USING (VALUES (1)) v(x) ON false WHEN NOT MATCHED THEN INSERT (note) VALUES ('x')",
      'TABLE customers',
      'SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)'),
    ...c('utility',
      'EXPLAIN ANALYZE SELECT * FROM customers',
      "EXPLAIN ANALYZE SELECT pg_read_file('/etc/hostname')",
      'EXPLAIN ANALYZE SELECT evil(name) FROM customers',
      'CREATE TEMP TABLE tt AS SELECT * FROM customers',
      'CREATE TABLE public.copy_of AS SELECT card_number FROM customers',
      'SELECT * INTO TEMP tt2 FROM customers',
      'COPY customers TO STDOUT',
      "COPY (SELECT pg_read_file('/etc/hostname')) TO STDOUT",
      'COPY (SELECT evil(name) FROM customers) TO STDOUT',
      'DECLARE c CURSOR FOR SELECT card_number FROM customers',
      'CREATE VIEW public.vv AS SELECT card_number FROM customers',
      'CREATE TABLE public.td (a text DEFAULT evil(\'x\'))',
      'TRUNCATE audit_notes',
      'LOCK TABLE orders IN ACCESS SHARE MODE',
      'REFRESH MATERIALIZED VIEW mv',
      "PREPARE p AS SELECT pg_read_file('/etc/hostname')"),
  ];
}

/** A literal of each argument type for the per-function sweep: NULL cast to it (strict functions do nothing). */
function literalFor(typeName: string): string | undefined {
  switch (typeName) {
    case 'internal': case 'trigger': case 'event_trigger': case 'language_handler': case 'fdw_handler':
    case 'index_am_handler': case 'tsm_handler': case 'table_am_handler': case 'anyenum': case 'anymultirange':
    case 'anycompatiblemultirange': case 'pg_ddl_command': case 'void': case 'unknown':
      return undefined;
    case '"any"': case 'anyelement': case 'anynonarray': case 'anycompatible': case 'anycompatiblenonarray':
      return "'x'::text";
    case 'anyarray': case 'anycompatiblearray':
      return "ARRAY['x'::text]";
    case 'anyrange': case 'anycompatiblerange':
      return 'int4range(1, 2)';
    case 'record':
      return "ROW(1, 'x')";
    case 'cstring':
      return "'x'::cstring";
    default:
      return `NULL::${typeName}`;
  }
}

/** Functions that would end the test's own session or server even with a NULL argument: classified only. */
const DO_NOT_RUN = /^(pg_terminate_backend|pg_cancel_backend|pg_promote|pg_reload_conf|pg_rotate_logfile|pg_ctl|pg_switch_wal|pg_sleep.*|pg_stop_backup|pg_backup_stop)$/;

/**
 * For every one-argument function in the scratch server's pg_proc: `SELECT fn(x)`, `SELECT (x).fn`
 * and `SELECT t.fn FROM (SELECT x) t` (attribute notation on a row: resolves for record/any args).
 */
export async function sweepCorpus(client: pg.Client, limit = Infinity): Promise<Case[]> {
  const { rows } = await client.query<{ nsp: string; name: string; arg: string }>(`
    SELECT DISTINCT n.nspname AS nsp, p.proname AS name, format_type(p.proargtypes[0], NULL) AS arg
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1 AND p.prokind IN ('f', 'a', 'w') AND p.provariadic = 0
      AND n.nspname NOT IN ('information_schema') AND p.proname !~ '^_'
    ORDER BY 1, 2, 3`);
  const out: Case[] = [];
  for (const r of rows.slice(0, Math.min(rows.length, limit))) {
    const lit = literalFor(r.arg);
    if (lit === undefined) continue;
    const fn = quoteIdent(r.name);
    const classifyOnly = DO_NOT_RUN.test(r.name);
    out.push({ source: 'sweep:call', sql: `SELECT ${fn}(${lit})`, classifyOnly });
    out.push({ source: 'sweep:attribute', sql: `SELECT (${lit}).${fn}`, classifyOnly });
    if (/^(record|"any"|anyelement|anycompatible)$/.test(r.arg)) {
      out.push({ source: 'sweep:alias', sql: `SELECT t.${fn} FROM (SELECT ${lit} AS c) t`, classifyOnly });
      out.push({ source: 'sweep:alias', sql: `SELECT t.${fn} FROM public.customers t`, classifyOnly });
    }
  }
  return out;
}

/** Runs sqlsmith (`--dry-run`: it only prints) against the scratch database; deterministic for a seed. */
export function sqlsmithCorpus(url: string, count: number, seed: number): Case[] {
  const u = new URL(url);
  let text: string;
  try {
    text = execFileSync('sqlsmith', [`--target=host=${u.hostname} port=${u.port} user=${u.username} dbname=${u.pathname.slice(1)}`, '--dry-run', `--max-queries=${count}`, `--seed=${seed}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 512 * 1024 * 1024,
      timeout: 120_000,
    });
  } catch (err) {
    throw new Error(`sqlsmith failed: ${(err as Error).message}`);
  }
  return text
    .split(/;\s*\n(?=\S|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((sql) => ({ source: 'sqlsmith', sql }));
}

export function sqlsmithInstalled(): boolean {
  try {
    execFileSync('sqlsmith', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Running statements and reading the log
// ---------------------------------------------------------------------------------------------

interface Ran {
  readonly case: Case;
  readonly marker: string;
  readonly classification: Classification;
  /** The ROLLBACK after it ran: its own parse trees close the segment. */
  rolledBack: boolean;
  ran: boolean;
  error?: string;
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  await c.query("SET statement_timeout = '3s'; SET lock_timeout = '1s'; SET client_min_messages = error");
  await c.query('SET debug_print_parse = on; SET debug_print_rewritten = on');
  return c;
}

/** Executes every case once (rolled back) and classifies it. */
async function execute(url: string, cases: readonly Case[], first: number, endMarker: string, ctx: ClassifyContext): Promise<Ran[]> {
  let client = await connect(url);
  const out: Ran[] = [];
  try {
    for (let i = 0; i < cases.length; i++) {
      const kase = cases[i]!;
      const marker = `${PAD}${first + i}`;
      const ran: Ran = { case: kase, marker, classification: kase.pretend ?? classifySql(kase.sql, ctx), rolledBack: false, ran: false };
      out.push(ran);
      if (kase.classifyOnly || isTransactionControl(kase.sql)) continue;
      try {
        await client.query(`BEGIN; SET LOCAL application_name = '${marker}'`);
        ran.ran = true;
        try {
          await client.query(kase.sql);
        } catch (err) {
          ran.error = (err as Error).message;
        }
        await client.query('ROLLBACK');
        ran.rolledBack = true;
      } catch {
        // the session ended (or the protocol broke): start a new one
        await client.end().catch(() => {});
        client = await connect(url);
      }
    }
    await client.query(`SET application_name = '${endMarker}'; SELECT 1`);
  } finally {
    await client.end().catch(() => {});
  }
  return out;
}

function isTransactionControl(sql: string): boolean {
  return /^\s*(begin|start|commit|end|rollback|abort|savepoint|release|prepare\s+transaction|set\s+(session\s+)?(role|session|application_name|debug_|client_min|statement_timeout))\b/i.test(sql);
}

/** A csvlog record: the columns we use. */
interface LogRecord {
  readonly app: string;
  readonly message: string;
  readonly detail: string;
  readonly context: string;
}

/** Parses PostgreSQL csvlog text (RFC 4180 quoting, newlines inside quotes). */
export function parseCsv(text: string, onRecord: (fields: string[]) => void): void {
  let fields: string[] = [];
  let field = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i]!;
    if (ch === '"' && field === '') {
      // quoted field
      i++;
      let start = i;
      let buf = '';
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) { buf += text.slice(start); i = n; break; }
        if (text[q + 1] === '"') { buf += text.slice(start, q + 1); i = q + 2; start = i; continue; }
        buf += text.slice(start, q);
        i = q + 1;
        break;
      }
      field = buf;
      // field continues until , or newline (nothing else expected)
      continue;
    }
    if (ch === ',') { fields.push(field); field = ''; i++; continue; }
    if (ch === '\n') { fields.push(field); onRecord(fields); fields = []; field = ''; i++; continue; }
    field += ch;
    i++;
  }
  if (field !== '' || fields.length) { fields.push(field); onRecord(fields); }
}

function readFrom(file: string, offset: number): string {
  const size = statSync(file).size;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, offset);
  } finally {
    closeSync(fd);
  }
  return buf.toString('utf8');
}

async function waitForMarker(file: string, offset: number, marker: string): Promise<string> {
  const needle = `,"${marker}",`;
  const plain = `,${marker},`;
  for (let i = 0; i < 600; i++) {
    const text = readFrom(file, offset);
    if (text.includes(needle) || text.includes(plain)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the scratch server log never showed the end marker');
}

// ---------------------------------------------------------------------------------------------
// What the server saw
// ---------------------------------------------------------------------------------------------

interface ProcInfo { schema: string; name: string; lang: string; signature: string }
interface Catalog {
  procs: Map<number, ProcInfo>;
  operators: Map<number, { schema: string; name: string; fn: number }>;
  relations: Map<number, { schema: string; name: string; kind: string }>;
  /** type oid → its input function oid when that function is outside pg_catalog. */
  userInput: Map<number, number>;
  /** Functions used by a table's CHECK constraint or its columns' domains: they run under the table's name (by design). */
  checkFns: Set<number>;
  /** Functions used by each domain's CHECK constraints. */
  domainFns: Map<number, Set<number>>;
}

async function loadCatalog(client: pg.Client): Promise<Catalog> {
  const procs = new Map<number, ProcInfo>();
  for (const r of (await client.query(`SELECT p.oid::int AS oid, n.nspname, p.proname, l.lanname, pg_get_function_identity_arguments(p.oid) AS args
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang`)).rows) {
    procs.set(r.oid, { schema: r.nspname, name: r.proname, lang: r.lanname, signature: `${r.nspname}.${r.proname}(${r.args})` });
  }
  const operators = new Map<number, { schema: string; name: string; fn: number }>();
  for (const r of (await client.query(`SELECT o.oid::int AS oid, n.nspname, o.oprname, o.oprcode::oid::int AS fn FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace`)).rows) {
    operators.set(r.oid, { schema: r.nspname, name: r.oprname, fn: r.fn });
  }
  const relations = new Map<number, { schema: string; name: string; kind: string }>();
  for (const r of (await client.query(`SELECT c.oid::int AS oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace`)).rows) {
    relations.set(r.oid, { schema: r.nspname, name: r.relname, kind: r.relkind });
  }
  const userInput = new Map<number, number>();
  for (const r of (await client.query(`SELECT t.oid::int AS oid, t.typinput::oid::int AS fn FROM pg_type t JOIN pg_proc p ON p.oid = t.typinput
      WHERE p.pronamespace <> 'pg_catalog'::regnamespace`)).rows) {
    userInput.set(r.oid, r.fn);
  }
  const checkFns = new Set<number>();
  for (const r of (await client.query(`SELECT DISTINCT d.refobjid::int AS fn FROM pg_constraint k
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid AND d.refclassid = 'pg_proc'::regclass
      WHERE k.contype = 'c' AND k.conrelid <> 0`)).rows) {
    checkFns.add(r.fn);
  }
  // a column's domain CHECK runs for every row written to the table (even for omitted columns: the
  // planner fills them with NULL coerced to the domain), so it too runs under the table's name
  for (const r of (await client.query(`SELECT DISTINCT d.refobjid::int AS fn FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'f')
      JOIN pg_constraint k ON k.contypid = a.atttypid
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid AND d.refclassid = 'pg_proc'::regclass
      WHERE a.attnum > 0 AND NOT a.attisdropped`)).rows) {
    checkFns.add(r.fn);
  }
  const domainFns = new Map<number, Set<number>>();
  for (const r of (await client.query(`SELECT DISTINCT k.contypid::int AS type, d.refobjid::int AS fn FROM pg_constraint k
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid AND d.refclassid = 'pg_proc'::regclass
      WHERE k.contypid <> 0`)).rows) {
    let set = domainFns.get(r.type);
    if (set === undefined) domainFns.set(r.type, (set = new Set()));
    set.add(r.fn);
  }
  return { procs, operators, relations, userInput, checkFns, domainFns };
}

/** How the server reached a function. */
export type CallKind = 'call' | 'cast' | 'operator' | 'aggregate' | 'window' | 'type-input' | 'implicit';

interface Tree {
  rels: { oid: number; perms: number }[];
  calls: { oid: number; kind: CallKind; via?: string; literal?: string }[];
  /** Domains the expression coerces to (their CHECKs run at execution). */
  domains: number[];
  utility: boolean;
}

function readTree(text: string, cat: Catalog): Tree {
  const t = text.replace(/\s+/g, ' ');
  const rels: Tree['rels'] = [];
  const calls: Tree['calls'] = [];
  for (const m of t.matchAll(/:rtekind 0 :relid (\d+) :relkind \S+ :rellockmode \d+ :tablesample .*?:lateral \w+ :inh \w+ :inFromCl \w+ :requiredPerms (\d+)/g)) {
    rels.push({ oid: Number(m[1]), perms: Number(m[2]) });
  }
  for (const m of t.matchAll(/\{FUNCEXPR :funcid (\d+) :funcresulttype \d+ :funcretset \w+ :funcvariadic \w+ :funcformat (\d+) :funccollid \d+ :inputcollid \d+ :args \((?:\{CONST :consttype (?:25|1043) :consttypmod -?\d+ :constcollid \d+ :constlen -?\d+ :constbyval \w+ :constisnull false :location -?\d+ :constvalue \d+ \[ ([-\d ]+) \])?/g)) {
    calls.push({ oid: Number(m[1]), kind: m[2] === '0' ? 'call' : 'cast', literal: m[3] === undefined ? undefined : datumText(m[3]) });
  }
  for (const m of t.matchAll(/\{(?:OPEXPR|DISTINCTEXPR|NULLIFEXPR|SCALARARRAYOPEXPR) :opno (\d+) :opfuncid (\d+)/g)) {
    const op = cat.operators.get(Number(m[1]));
    calls.push({ oid: Number(m[2]), kind: 'operator', via: op ? `operator ${op.schema}.${op.name}` : undefined });
  }
  for (const m of t.matchAll(/\{ROWCOMPARE :rctype \d+ :opnos \(o ([\d ]+)\)/g)) {
    for (const o of m[1]!.trim().split(' ')) {
      const op = cat.operators.get(Number(o));
      if (op) calls.push({ oid: op.fn, kind: 'operator', via: `operator ${op.schema}.${op.name}` });
    }
  }
  for (const m of t.matchAll(/\{AGGREF :aggfnoid (\d+)/g)) calls.push({ oid: Number(m[1]), kind: 'aggregate' });
  for (const m of t.matchAll(/\{WINDOWFUNC :winfnoid (\d+)/g)) calls.push({ oid: Number(m[1]), kind: 'window' });
  const inputTypes = [...t.matchAll(/\{CONST :consttype (\d+)/g)].map((m) => Number(m[1])).concat(afterArg(t, 'COERCEVIAIO'));
  for (const type of inputTypes) {
    const fn = cat.userInput.get(type);
    if (fn !== undefined) calls.push({ oid: fn, kind: 'type-input' });
  }
  return { rels, calls, domains: afterArg(t, 'COERCETODOMAIN'), utility: /^\{QUERY :commandType 6 /.test(t.trim()) };
}

/** `:resulttype` of every `{NODE :arg <node> :resulttype N` (skipping the balanced argument). */
function afterArg(t: string, node: string): number[] {
  const out: number[] = [];
  const head = `{${node} :arg `;
  for (let i = t.indexOf(head); i >= 0; i = t.indexOf(head, i + 1)) {
    let j = i + head.length;
    if (t.startsWith('<>', j)) j += 2;
    else {
      let depth = 0;
      for (; j < t.length; j++) {
        const ch = t[j];
        if (ch === '{' || ch === '(') depth++;
        else if (ch === '}' || ch === ')') { depth--; if (depth === 0) { j++; break; } }
        else if (ch === '"') j = t.indexOf('"', j + 1);
      }
    }
    const m = /^ :resulttype (\d+)/.exec(t.slice(j, j + 30));
    if (m) out.push(Number(m[1]));
  }
  return out;
}

/** The text of a varlena datum as nodeToString prints it (`[ b0 b1 … ]`, signed bytes). */
function datumText(bytes: string): string {
  const b = Buffer.from(bytes.trim().split(/\s+/).map((x) => Number(x) & 0xff));
  const body = (b[0]! & 1) === 1 ? b.subarray(1) : b.subarray(4);
  return body.toString('utf8').replace(/\0.*$/s, '');
}

interface AuditEvent { cls: string; objectType: string; objectName: string; statement: string }

/** Per statement marker: its top-level parse/rewritten trees and its pgaudit events. */
interface Segment { parse: string[]; rewritten: string[]; audit: AuditEvent[] }

function segment(text: string): Map<string, Segment> {
  const out = new Map<string, Segment>();
  const texts = new Map<string, string>(); // "stmt,sub" → statement text (log_statement_once)
  parseCsv(text, (f) => {
    const app = f[22] ?? '';
    if (!app.startsWith(PAD)) return;
    let seg = out.get(app);
    if (seg === undefined) out.set(app, (seg = { parse: [], rewritten: [], audit: [] }));
    const message = f[13] ?? '';
    const context = f[18] ?? '';
    if (message === 'parse tree:' && context === '') seg.parse.push(f[14] ?? '');
    else if (message === 'rewritten parse tree:' && context === '') seg.rewritten.push(f[14] ?? '');
    else if (message.startsWith('AUDIT: ')) {
      let fields: string[] = [];
      parseCsv(message.slice(7), (r) => { fields = r; });
      const [, stmtId, subId, cls, , objectType, objectName, statement] = fields;
      const key = `${stmtId},${subId}`;
      if (statement !== undefined && statement !== '<previously logged>') texts.set(key, statement);
      seg.audit.push({ cls: cls ?? '', objectType: objectType ?? '', objectName: objectName ?? '', statement: texts.get(key) ?? '' });
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/** One thing the server touched that the classifier's accesses do not cover. */
export interface Finding {
  /** The generator of the statement (`mutation:operator`, `sweep:attribute`, `sqlsmith`, …). */
  readonly source: string;
  /** How the server reached it: `relation`, `relation-op`, or a function CallKind. */
  readonly kind: string;
  /** `schema.name(args)` for functions, `schema.rel (op)` for relations. */
  readonly object: string;
  readonly sql: string;
  /** What the classifier said. */
  readonly classifier: string;
  /** What the server saw (short). */
  readonly saw: string;
}

export interface Report {
  statements: number;
  executed: number;
  /** Statements PostgreSQL analyzed (a parse tree or pgaudit events exist). */
  observed: number;
  refused: number;
  findings: Finding[];
  /** Things explained by design (view bodies, defaults, function bodies): counts per kind. */
  indirect: Record<string, number>;
  bySource: Record<string, { statements: number; observed: number; refused: number; findings: number }>;
  seconds: number;
}

const ACL = { insert: 1, read: 2, update: 4, delete: 8 } as const;

function describeClassification(c: Classification): string {
  if (!c.ok) return `refused (${c.code})`;
  const acc = c.statements.flatMap((s) => s.accesses.map((a) => `${a.operation} ${a.resource.replace(`pg:${UPSTREAM}/`, '')}`));
  return acc.length ? acc.join(', ') : 'no accesses';
}

class Coverage {
  private readonly ops = new Map<string, Set<string>>();
  private readonly admin: boolean;
  constructor(readonly c: Classification) {
    if (c.ok) for (const s of c.statements) for (const a of s.accesses) {
      let set = this.ops.get(a.resource);
      if (set === undefined) this.ops.set(a.resource, (set = new Set()));
      set.add(a.operation);
    }
    this.admin = this.ops.get(`pg:${UPSTREAM}/*`)?.has('admin') ?? false;
  }
  get refused(): boolean { return !this.c.ok; }
  all(): boolean { return this.refused || this.admin; }
  has(resource: string, op?: string): boolean {
    const s = this.ops.get(resource);
    return s !== undefined && (op === undefined || s.has(op));
  }
  anyOp(op: string): boolean {
    for (const [res, s] of this.ops) if (!res.endsWith('()') && s.has(op)) return true;
    return false;
  }
}

function relResource(schema: string, name: string): string {
  return `pg:${UPSTREAM}/${quoteIdent(schema)}.${quoteIdent(name)}`;
}
function fnResource(schema: string, name: string): string {
  return `pg:${UPSTREAM}/${quoteIdent(schema)}.${quoteIdent(name)}()`;
}

/** Is a call of `p` (reached as `kind`) covered by the classification? */
function functionCovered(p: ProcInfo, kind: CallKind, cov: Coverage, literal?: string): boolean {
  if (cov.all()) return true;
  const verdict = functions.judgeFunction(p.schema, p.name) as { kind: string; operation?: string };
  if (verdict.kind === 'free') return true;
  if (verdict.kind === 'admin') return false;
  if (verdict.kind === 'sequence') return cov.anyOp(verdict.operation!);
  if (verdict.kind === 'setting') {
    // current_setting(name): free for a literal name on SAFE_SETTINGS, else admin
    const safe = (functions as { SAFE_SETTINGS?: ReadonlySet<string> }).SAFE_SETTINGS;
    return literal !== undefined && safe !== undefined && safe.has(literal.toLowerCase());
  }
  // 'execute': a built-in reached through a built-in operator/cast/type is not a call the text spells
  if (p.schema === 'pg_catalog' && kind !== 'call' && kind !== 'aggregate' && kind !== 'window') return true;
  return cov.has(fnResource(p.schema, p.name), 'execute');
}

function compare(r: Ran, seg: Segment | undefined, cat: Catalog, report: Report): void {
  const src = (report.bySource[r.case.source] ??= { statements: 0, observed: 0, refused: 0, findings: 0 });
  src.statements++;
  const cov = new Coverage(r.classification);
  if (cov.refused) { report.refused++; src.refused++; }
  if (seg === undefined) return;
  // A statement that succeeded leaves the ROLLBACK's own (utility) trees at the end of its segment;
  // after an error the transaction's SET LOCAL application_name is already undone when ROLLBACK runs.
  const closing = r.rolledBack && r.error === undefined ? 1 : 0;
  const parse = seg.parse.slice(0, seg.parse.length - closing);
  const rewritten = seg.rewritten.slice(0, seg.rewritten.length - closing);
  const direct = seg.audit.filter((e) => e.statement === r.case.sql);
  if (parse.length === 0 && direct.length === 0) return;
  report.observed++;
  src.observed++;
  const trees = parse.map((t) => readTree(t, cat));
  const rtrees = rewritten.map((t) => readTree(t, cat));
  const utility = trees.length > 0 && trees[0]!.utility;
  const found = new Map<string, Finding>();
  const finding = (kind: string, object: string, saw: string) => {
    const key = `${kind}|${object}`;
    if (!found.has(key)) found.set(key, { source: r.case.source, kind, object, sql: r.case.sql, classifier: describeClassification(r.classification), saw });
  };
  const indirect = (what: string) => { report.indirect[what] = (report.indirect[what] ?? 0) + 1; };

  // Relations named by the statement, with the privileges PostgreSQL checks.
  const named = new Set<number>();
  for (const rel of trees.flatMap((t) => t.rels)) {
    named.add(rel.oid);
    const info = cat.relations.get(rel.oid);
    if (info === undefined) continue; // created and rolled back inside the statement
    const res = relResource(info.schema, info.name);
    const ops = (Object.keys(ACL) as (keyof typeof ACL)[]).filter((op) => (rel.perms & ACL[op]) !== 0);
    if (cov.all()) continue;
    for (const op of ops) {
      if (op === 'read' && isFreeCatalogRead(info.schema, info.name)) continue;
      if (cov.has(res, op)) continue;
      finding(cov.has(res) ? 'relation-op' : 'relation', `${info.schema}.${info.name} (${op})`, `${op} ${info.schema}.${info.name} (parse tree)`);
    }
  }
  // Functions the statement calls (any notation), its operators, casts and literal types.
  const calledUser = new Set<number>();
  const calledInTrees = new Set<number>();
  for (const call of trees.flatMap((t) => t.calls)) {
    calledInTrees.add(call.oid);
    const p = cat.procs.get(call.oid);
    if (p === undefined) continue;
    if (p.schema !== 'pg_catalog') calledUser.add(call.oid);
    if (!functionCovered(p, call.kind, cov, call.literal)) finding(call.kind, p.signature, `${call.kind} ${p.signature}${call.via ? ` via ${call.via}` : ''} (parse tree)`);
  }
  const rewrittenCalls = new Set(rtrees.flatMap((t) => t.calls.map((c) => c.oid)));
  const rewrittenRels = new Set(rtrees.flatMap((t) => t.rels.map((x) => x.oid)));
  for (const oid of rewrittenCalls) if (!calledInTrees.has(oid) && cat.procs.get(oid)?.schema !== 'pg_catalog') calledUser.add(oid);
  const runsUserCode = calledUser.size > 0;
  const writes = trees.some((t) => t.rels.some((x) => (x.perms & (ACL.insert | ACL.update)) !== 0));

  // pgaudit: the statement's own level (not queries inside function bodies).
  for (const e of direct) {
    if (e.cls === 'FUNCTION') {
      const [schema, name] = splitQualified(e.objectName);
      const procs = [...cat.procs.entries()].filter(([, p]) => p.schema === schema && p.name === name);
      if (procs.some(([oid]) => calledInTrees.has(oid))) continue; // already judged above
      if (!utility && procs.some(([oid]) => rewrittenCalls.has(oid))) { indirect('function added by the rewriter (default, view, rule)'); continue; }
      if (!utility && runsUserCode) { indirect('function called from user code'); continue; }
      if (writes && procs.some(([oid]) => cat.checkFns.has(oid))) { indirect("function in a table's CHECK constraint or column domain"); continue; }
      const inDomain = (domains: number[]) => domains.some((d) => procs.some(([oid]) => cat.domainFns.get(d)?.has(oid)));
      if (!utility && !inDomain(trees.flatMap((x) => x.domains)) && inDomain(rtrees.flatMap((x) => x.domains))) {
        indirect('domain CHECK of a default added by the rewriter');
        continue;
      }
      const p = procs[0]?.[1] ?? { schema, name, lang: '?', signature: `${schema}.${name}` };
      if (!functionCovered(p, 'implicit', cov)) finding(utility ? 'call' : 'implicit', p.signature, `FUNCTION ${e.objectName} (pgaudit)`);
    } else if (e.objectName !== '' && (e.cls === 'READ' || e.cls === 'WRITE')) {
      const [schema, name] = splitQualified(e.objectName);
      const oid = [...cat.relations.entries()].find(([, x]) => x.schema === schema && x.name === name)?.[0];
      if (oid !== undefined && named.has(oid)) continue;
      if (!utility && oid !== undefined && rewrittenRels.has(oid)) { indirect('relation reached through a view or rule'); continue; }
      if (!utility && runsUserCode) { indirect('relation read by user code'); continue; }
      if (schema === 'pg_temp' || schema.startsWith('pg_temp_')) continue;
      if (cov.all() || cov.has(relResource(schema, name)) || (e.cls === 'READ' && isFreeCatalogRead(schema, name))) continue;
      finding(utility ? 'relation' : 'relation-implicit', `${schema}.${name} (${e.cls.toLowerCase()})`, `${e.cls} ${e.objectType} ${e.objectName} (pgaudit)`);
    }
  }
  for (const f of found.values()) {
    report.findings.push(f);
    src.findings++;
  }
}

function splitQualified(name: string): [string, string] {
  const m = /^("(?:[^"]|"")*"|[^.]*)\.(.*)$/.exec(name);
  if (!m) return ['', name];
  const unq = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);
  return [unq(m[1]!), unq(m[2]!)];
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

export interface RunOptions {
  /** sqlsmith queries (0: none). */
  sqlsmith: number;
  seed: number;
  /** Cap on one-argument functions swept (Infinity: all). */
  sweepLimit?: number;
  log?: (line: string) => void;
  /** Only these statements (debugging): no sweep, no sqlsmith. */
  only?: readonly string[];
}

/** Sets up the scratch database, runs all cases, compares. The caller owns the scratch cluster. */
export async function runDifferential(scratch: Scratch, opts: RunOptions): Promise<Report> {
  const started = performance.now();
  await initClassifier();
  const admin = new pg.Client({ connectionString: scratch.url() });
  await admin.connect();
  await admin.query('CREATE DATABASE appdb');
  await admin.end();
  const url = scratch.url('appdb');
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  let cases: Case[];
  let cat: Catalog;
  let ctx: ClassifyContext;
  try {
    await setup.query(SCHEMA_SQL);
    // the snapshot of user-defined functions, operators and types, loaded as the proxy loads it
    const objects = await loadUpstreamObjects({ host: '127.0.0.1', port: scratch.port, user: 'postgres', database: 'appdb' } as UpstreamTarget);
    ctx = { upstream: UPSTREAM, searchPath: ['public'], objects };
    cases = opts.only ? opts.only.map((sql) => ({ source: 'only', sql })) : [...CANARIES, ...mutationCorpus(), ...(await sweepCorpus(setup, opts.sweepLimit))];
    if (opts.sqlsmith > 0 && !opts.only) cases.push(...sqlsmithCorpus(url, opts.sqlsmith, opts.seed));
    cat = await loadCatalog(setup);
  } finally {
    await setup.end();
  }
  opts.log?.(`differential: ${cases.length} statements (setup ${((performance.now() - started) / 1000).toFixed(1)} s)`);
  const report: Report = { statements: 0, executed: 0, observed: 0, refused: 0, findings: [], indirect: {}, bySource: {}, seconds: 0 };
  // In batches: the server's log of one batch (parse trees of sqlsmith queries are large) is read,
  // compared and dropped before the next.
  const BATCH = 1000;
  for (let first = 0; first < cases.length; first += BATCH) {
    const offset = existsSync(scratch.logFile) ? statSync(scratch.logFile).size : 0;
    const endMarker = `${PAD}end${first}`;
    const ran = await execute(url, cases.slice(first, first + BATCH), first, endMarker, ctx);
    const segs = segment(await waitForMarker(scratch.logFile, offset, endMarker));
    report.statements += ran.length;
    report.executed += ran.filter((r) => r.ran).length;
    for (const r of ran) {
      if (opts.only) opts.log?.(JSON.stringify({ ran: { ...r, classification: describeClassification(r.classification) }, seg: segs.get(r.marker) }, null, 1).slice(0, 20000));
      compare(r, segs.get(r.marker), cat, report);
    }
    if (first > 0 && first % 2000 === 0) opts.log?.(`  … ${first} statements checked`);
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

// ---------------------------------------------------------------------------------------------
// Known findings
// ---------------------------------------------------------------------------------------------

/** A known finding: one (source, kind, object) triple with one example statement. */
export interface KnownFinding { source: string; kind: string; object: string; example: string; statements: number }

export function groupFindings(findings: readonly Finding[]): KnownFinding[] {
  const map = new Map<string, KnownFinding>();
  for (const f of findings) {
    const key = `${f.source}|${f.kind}|${f.object}`;
    const k = map.get(key);
    if (k) k.statements++;
    else map.set(key, { source: f.source, kind: f.kind, object: f.object, example: f.sql.length > 300 ? `${f.sql.slice(0, 300)}…` : f.sql, statements: 1 });
  }
  return [...map.values()].sort((a, b) => `${a.source}|${a.kind}|${a.object}`.localeCompare(`${b.source}|${b.kind}|${b.object}`));
}

export const knownKey = (k: { source: string; kind: string; object: string }) => `${k.source}|${k.kind}|${k.object}`;

export function formatFinding(f: Finding): string {
  const sql = f.sql.replace(/\s+/g, ' ');
  return `[${f.source}] ${f.kind} ${f.object}\n    sql:        ${sql.length > 400 ? `${sql.slice(0, 400)}…` : sql}\n    server saw: ${f.saw}\n    classifier: ${f.classifier}`;
}
