/**
 * The attack corpus: each case states exactly what the proxy must authorize. Two cases are checked
 * against the real server, so the classifier's view of statement boundaries is PostgreSQL's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { classifySql, initClassifier } from '../../../../src/proxy/pg/classify/index.ts';
import { accesses, ADMIN, CTX, op, r, summarise } from './helpers.ts';

beforeAll(() => initClassifier());

describe('statement boundaries hidden in strings and comments', () => {
  it("'\\' is a complete string (standard_conforming_strings=on): the DROP is a second statement", () => {
    expect(summarise("SELECT '\\'; DROP TABLE x; --'")).toEqual([
      { kind: 'select', accesses: [] },
      { kind: 'drop', accesses: [op('ddl', 'public.x')] },
    ]);
  });
  it('an E-string escape keeps the quote inside the string', () => {
    expect(summarise("SELECT E'\\'; DROP TABLE x; --'")).toEqual([{ kind: 'select', accesses: [] }]);
    expect(summarise("SELECT E'\\\\'; DROP TABLE x; --'")).toEqual([
      { kind: 'select', accesses: [] },
      { kind: 'drop', accesses: [op('ddl', 'public.x')] },
    ]);
  });
  it('dollar quoting hides nothing', () => {
    expect(summarise('SELECT $$;DELETE FROM orders$$')).toEqual([{ kind: 'select', accesses: [] }]);
    expect(summarise('SELECT $t$ $$ $t$; DELETE FROM orders')).toEqual([
      { kind: 'select', accesses: [] },
      { kind: 'delete', accesses: [op('delete', 'public.orders')] },
    ]);
  });
  it('comments hide nothing', () => {
    expect(summarise('SELECT 1 /* ; DELETE FROM orders */')).toEqual([{ kind: 'select', accesses: [] }]);
    expect(summarise('SELECT 1 -- \n; DELETE FROM orders')).toHaveLength(2);
    expect(summarise('SELECT 1 /* /* nested */ ; DELETE FROM orders */')).toEqual([{ kind: 'select', accesses: [] }]);
    expect(summarise('/* x */ DELETE /* y */ FROM /* z */ orders')).toEqual([{ kind: 'delete', accesses: [op('delete', 'public.orders')] }]);
  });
  it('every statement of a multi-statement string is classified', () => {
    expect(summarise('SELECT 1; DELETE FROM orders')).toEqual([
      { kind: 'select', accesses: [] },
      { kind: 'delete', accesses: [op('delete', 'public.orders')] },
    ]);
  });
  it('quoted identifiers keep case and cannot forge a wildcard', () => {
    expect(accesses('SELECT * FROM "public.*"."x", "*"')).toEqual([r('"public.*".x'), r('public."*"')].sort());
  });
});

describe('the corpus', () => {
  it.each<[string, string[]]>([
    ['SELECT * FROM orders JOIN customers ON customers.id = orders.customer_id', [r('public.customers'), r('public.orders')]],
    ['WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d', [op('delete', 'public.orders'), r('public.orders')]],
    ['SELECT * INTO orders_copy FROM orders', [op('ddl', 'public.orders_copy'), r('public.orders')]],
    ["COPY orders TO PROGRAM 'id'", [ADMIN, r('public.orders')]],
    ['SET ROLE postgres', [ADMIN]],
    ["SELECT query_to_xml('delete from orders', true, true, '')", [ADMIN]],
    ["SELECT set_config('search_path','evil',false)", [ADMIN]],
    ["SELECT pg_read_file('/etc/passwd')", [ADMIN]],
    ['SELECT * FROM pg_authid', [r('pg_catalog.pg_authid')]],
    ["SELECT lo_import('/etc/passwd')", [ADMIN]],
    ['SELECT * FROM order_summary_view', [r('public.order_summary_view')]],
    ['TABLE orders', [r('public.orders')]],
    ['VALUES (1)', []],
    ['SELECT 1 FROM orders FOR UPDATE', [r('public.orders'), op('update', 'public.orders')]],
    ['PREPARE p AS DELETE FROM orders', [op('delete', 'public.orders')]],
    ['EXPLAIN ANALYZE DELETE FROM orders', [op('delete', 'public.orders')]],
    ['DECLARE c CURSOR FOR SELECT * FROM customers', [r('public.customers')]],
    [
      'MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET total = 0 WHEN NOT MATCHED THEN INSERT (customer_id) VALUES (c.id)',
      [r('public.orders'), op('update', 'public.orders'), op('insert', 'public.orders'), r('public.customers')],
    ],
    // the arbiter read is a key oracle: an insert-only token learns which ids exist
    ['INSERT INTO orders (id, total) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total', [op('insert', 'public.orders'), op('update', 'public.orders'), r('public.orders')]],
    ['INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO NOTHING', [op('insert', 'public.orders'), r('public.orders')]],
    ['SELECT * FROM orders WHERE id = (SELECT max(id) FROM (SELECT id FROM secret) s)', [r('public.orders'), r('public.secret')]],
    ['SELECT (SELECT string_agg(password, \',\') FROM users) AS x', [r('public.users')]],
    ['SELECT * FROM orders, LATERAL (SELECT * FROM secret WHERE secret.id = orders.id) s', [r('public.orders'), r('public.secret')]],
    ["SELECT * FROM pg_catalog.pg_shadow WHERE usename = 'postgres'", [r('pg_catalog.pg_shadow')]],
    ['UPDATE orders SET total = 0 WHERE card LIKE \'4%\'', [op('update', 'public.orders'), r('public.orders')]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual([...expected].sort());
  });

  it('CREATE FUNCTION … ; SELECT evil() needs admin, then execute on the function', () => {
    expect(summarise("CREATE FUNCTION evil() RETURNS void LANGUAGE sql AS 'DELETE FROM orders'; SELECT evil()")).toEqual([
      { kind: 'create_function', accesses: [ADMIN] },
      { kind: 'select', accesses: [op('execute', 'public.evil()')] },
    ]);
  });

  it('an unknown node type anywhere is refused, not skipped', () => {
    expect(classifySql('EXECUTE p(1)', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
    expect(classifySql('CREATE SCHEMA s CREATE TABLE t (a int)', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
  });
});

describe('against the real server', () => {
  const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const db = `baton_t_classify_${randomBytes(4).toString('hex')}`;
  let admin: pg.Client;
  let client: pg.Client;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
    const url = new URL(base);
    url.pathname = `/${db}`;
    client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await admin?.query(`DROP DATABASE IF EXISTS ${db}`);
    await admin?.end();
  });

  it("runs the DROP hidden after '\\' exactly as the classifier predicts", async () => {
    const { rows } = await client.query('SHOW standard_conforming_strings');
    expect(rows[0].standard_conforming_strings).toBe('on');
    await client.query('CREATE TABLE x (a int)');
    const sql = "SELECT '\\'; DROP TABLE x; --'";
    expect(summarise(sql).map((s) => s.kind)).toEqual(['select', 'drop']);
    await client.query(sql);
    const left = await client.query("SELECT to_regclass('x') AS t");
    expect(left.rows[0].t).toBeNull();
  });

  it('every pg_catalog relation is named pg_… (the resolution rule relies on it)', async () => {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind IN ('r','v','m','p','f') AND relname NOT LIKE 'pg\\_%'",
    );
    expect(rows[0].n).toBe(0);
  });
});
