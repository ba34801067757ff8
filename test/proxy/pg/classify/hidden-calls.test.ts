/**
 * Calls without call syntax: attribute notation, operators, casts, TABLESAMPLE, settings. The
 * upstream is a real PostgreSQL database with user-defined functions, an operator and a domain, and
 * its snapshot is loaded by the proxy's own loader, so the classifier sees what the proxy sees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { classifySql, initClassifier, type ClassifyContext } from '../../../../src/proxy/pg/classify/index.ts';
import { loadUpstreamObjects } from '../../../../src/proxy/pg/upstream-objects.ts';
import { createTestDatabase, type TestDatabase } from '../../../helpers/database.ts';
import { ADMIN, op, r } from './helpers.ts';

let db: TestDatabase;
let ctx: ClassifyContext;

/** Sorted `"<op> <resource>"` list, or the refusal code: the whole verdict, for exact comparison. */
function verdict(sql: string, c: ClassifyContext = ctx): string[] | string {
  const res = classifySql(sql, c);
  if (!res.ok) return res.code;
  return res.statements.flatMap((s) => s.accesses.map((a) => `${a.operation} ${a.resource}`)).sort();
}

beforeAll(async () => {
  await initClassifier();
  db = await createTestDatabase('hiddencalls', { migrate: false });
  await db.pool.query(`
    CREATE TABLE public.orders (id int PRIMARY KEY, amount int, name text, width int);
    CREATE TABLE public.customers (id int PRIMARY KEY, card text);
    CREATE FUNCTION public.leak(o public.orders) RETURNS text LANGUAGE sql AS 'SELECT string_agg(card, '','') FROM public.customers';
    CREATE FUNCTION public.leak_text(t text, u text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE FUNCTION public.leak_check(t text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE OPERATOR public.### (LEFTARG = text, RIGHTARG = text, FUNCTION = public.leak_text);
    CREATE DOMAIN public.checked AS text CHECK (public.leak_check(VALUE));
  `);
  const objects = await loadUpstreamObjects({ host: new URL(db.url).hostname, port: Number(new URL(db.url).port || 5432), user: decodeURIComponent(new URL(db.url).username || 'postgres'), database: new URL(db.url).pathname.slice(1) });
  ctx = { upstream: 'appdb', searchPath: ['public'], objects };
});
afterAll(async () => db?.drop());

describe('attribute notation is judged exactly like call syntax', () => {
  it.each([
    ["SELECT ('/etc/passwd'::text).pg_read_file", [ADMIN]],
    ["SELECT ('select card from customers'::text).ts_stat", [ADMIN]],
    ["SELECT x.pg_read_file FROM (SELECT '/etc/passwd'::text) AS x(a)", [ADMIN]],
    ["SELECT (o.id).pg_terminate_backend FROM orders o", [ADMIN, r('public.orders')]],
    ["SELECT ('a'::text).lo_export", [ADMIN]],
    ["SELECT ('search_path'::text).set_config", [ADMIN]],
    ['SELECT (1::bigint).pg_advisory_lock', [ADMIN]],
    ['SELECT o.nextval FROM orders o', [ADMIN, r('public.orders')]],
    ["SELECT ('data_directory'::text).current_setting", [ADMIN]],
    ['SELECT o.leak FROM orders o', [op('execute', 'public.leak()'), r('public.orders')]],
    ['SELECT (o).leak FROM orders o', [op('execute', 'public.leak()'), r('public.orders')]],
    ['SELECT orders.leak FROM orders', [op('execute', 'public.leak()'), r('public.orders')]],
    ['SELECT public.orders.leak FROM public.orders', [op('execute', 'public.leak()'), r('public.orders')]],
    ['SELECT (o.name).pg_read_file FROM orders o', [ADMIN, r('public.orders')]],
    ['SELECT o.id FROM orders o WHERE (o.name).pg_read_file IS NOT NULL', [ADMIN, r('public.orders')]],
  ])('%s', (sql, expected) => {
    expect(verdict(sql)).toEqual([...expected].sort());
  });

  it('ordinary qualified columns stay columns, including ones named like pure built-ins', () => {
    expect(verdict('SELECT o.id, o.amount, o.name, o.width, (o).id FROM orders o ORDER BY o.id')).toEqual([r('public.orders')]);
    expect(verdict('SELECT t.system, t.bernoulli FROM orders t')).toEqual([r('public.orders')]);
  });

  it('for every one-argument function of the real server, (x).fn and alias.fn classify exactly like fn(x)', async () => {
    const { rows } = await db.pool.query<{ name: string; q: string }>(`
      SELECT DISTINCT p.proname AS name, quote_ident(p.proname) AS q
      FROM pg_proc p WHERE p.pronargs = 1 OR (p.pronargs > 1 AND p.pronargdefaults >= p.pronargs - 1)`);
    expect(rows.length).toBeGreaterThan(1000);
    const mismatches: string[] = [];
    for (const { q } of rows) {
      const onRow = verdict(`SELECT ${q}(t) FROM orders t`);
      const onValue = verdict(`SELECT ${q}('x'::text)`);
      const cases: [string, string[] | string][] = [
        [`SELECT t.${q} FROM orders t`, onRow],
        [`SELECT (t).${q} FROM orders t`, onRow],
        [`SELECT orders.${q} FROM orders`, onRow],
        [`SELECT ('x'::text).${q}`, onValue],
      ];
      for (const [sql, want] of cases) {
        const got = verdict(sql);
        // A refusal of the attribute form is fail-closed; anything else must equal the call form.
        if (typeof got !== 'string' && JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`${sql}: ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});

describe('operators, casts and TABLESAMPLE are calls too', () => {
  it('a user-defined operator is judged like a call of its function, qualified or not', () => {
    expect(verdict("SELECT 'a' ### 'b'")).toEqual([op('execute', 'public.leak_text()')]);
    expect(verdict("SELECT 'a' OPERATOR(public.###) 'b'")).toEqual([op('execute', 'public.leak_text()')]);
    expect(verdict("SELECT id FROM orders WHERE name ### 'b'")).toEqual([op('execute', 'public.leak_text()'), r('public.orders')]);
  });
  it('built-in operators need nothing', () => {
    expect(verdict("SELECT 1 + 2, 'a' || 'b', now() - interval '1 day', 2 BETWEEN 1 AND 3, 1 = ANY('{1}'::int[])")).toEqual([]);
  });
  it('a cast to a domain whose CHECK calls a user function is judged like that call', () => {
    expect(verdict("SELECT 'x'::checked")).toEqual([op('execute', 'public.leak_check()')]);
    expect(verdict("SELECT CAST('x' AS public.checked)")).toEqual([op('execute', 'public.leak_check()')]);
    expect(verdict("SELECT 'x'::text, '1'::int, '{}'::jsonb")).toEqual([]);
  });
  it('without the snapshot the same operator is unknown: the proxy always loads one (see upstream-objects.ts)', () => {
    expect(verdict("SELECT 'a' ### 'b'", { upstream: 'appdb', searchPath: ['public'] })).toEqual([]);
  });
  it('TABLESAMPLE methods are judged as functions', () => {
    expect(verdict('SELECT * FROM orders TABLESAMPLE system(10)')).toEqual([r('public.orders')]);
    expect(verdict('SELECT * FROM orders TABLESAMPLE evil_method(10)')).toEqual([op('execute', 'public.evil_method()'), r('public.orders')]);
  });
});

describe('settings and sleeping', () => {
  it.each([
    ["SELECT current_setting('data_directory')", [ADMIN]],
    ["SELECT current_setting('config_file')", [ADMIN]],
    ['SELECT current_setting(name) FROM orders', [ADMIN, r('public.orders')]],
    ["SELECT current_setting('TimeZone'), current_setting('server_version_num')", []],
    ['SHOW data_directory', [ADMIN]],
    ['SHOW ALL', [ADMIN]],
    ['SHOW search_path', []],
    ['SHOW TRANSACTION ISOLATION LEVEL', []],
    ['SELECT name, setting FROM pg_settings', [r('pg_catalog.pg_settings')]],
    ['SELECT pg_sleep(100)', [ADMIN]],
    ["SELECT pg_sleep_for('1 hour')", [ADMIN]],
  ])('%s', (sql, expected) => {
    expect(verdict(sql)).toEqual([...expected].sort());
  });

  it('a session may not lift the pinned statement_timeout', () => {
    const capped: ClassifyContext = { ...ctx, maxStatementTimeoutMs: 30_000 };
    expect(verdict('SET statement_timeout = 0', capped)).toEqual([ADMIN]);
    expect(verdict("SET statement_timeout = '1h'", capped)).toEqual([ADMIN]);
    expect(verdict('SET statement_timeout = 60001', capped)).toEqual([ADMIN]);
    expect(verdict("SET statement_timeout = 'garbage'", capped)).toEqual([ADMIN]);
    expect(verdict('SET statement_timeout = 5000', capped)).toEqual([]);
    expect(verdict("SET LOCAL statement_timeout = '10s'", capped)).toEqual([]);
    expect(verdict('RESET statement_timeout', capped)).toEqual([]);
    expect(verdict('SET statement_timeout = 0')).toEqual([]); // no cap configured
  });
});
