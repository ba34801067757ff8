import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, initClassifier } from '../../../../src/proxy/pg/classify/index.ts';
import { accesses, ADMIN, CTX, op, r, summarise } from './helpers.ts';

beforeAll(() => initClassifier());

const sorted = (xs: string[]) => [...xs].sort();

describe('queries walk the whole tree', () => {
  it.each<[string, string[]]>([
    ['SELECT * FROM orders JOIN customers ON orders.cid = customers.id', [r('public.customers'), r('public.orders')]],
    ['SELECT * FROM orders o LEFT JOIN LATERAL (SELECT * FROM items i WHERE i.oid = o.id) x ON true', [r('public.items'), r('public.orders')]],
    ['SELECT 1 FROM a UNION SELECT 1 FROM b INTERSECT SELECT 1 FROM c EXCEPT SELECT 1 FROM d', [r('public.a'), r('public.b'), r('public.c'), r('public.d')]],
    ['SELECT * FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.x IN (SELECT x FROM c))', [r('public.a'), r('public.b'), r('public.c')]],
    ['SELECT (SELECT max(x) FROM b), array(SELECT 1 FROM c) FROM a ORDER BY (SELECT 1 FROM d LIMIT 1)', [r('public.a'), r('public.b'), r('public.c'), r('public.d')]],
    ['SELECT * FROM a GROUP BY x HAVING count(*) > (SELECT count(*) FROM b)', [r('public.a'), r('public.b')]],
    ['SELECT * FROM s1.a, "S2"."B"', [r('s1.a'), r('"S2"."B"')]],
    ['TABLE orders', [r('public.orders')]],
    ['VALUES (1), (2)', []],
    ['SELECT 1', []],
    ['SELECT * FROM a TABLESAMPLE SYSTEM (10)', [r('public.a')]],
    ['SELECT * FROM ROWS FROM (generate_series(1, 3)) AS g', []],
    ['SELECT * FROM json_table(\'[]\'::jsonb, \'$[*]\' COLUMNS (x int PATH \'$.x\'))', []],
    ['SELECT x FROM a WINDOW w AS (PARTITION BY (SELECT 1 FROM b))', [r('public.a'), r('public.b')]],
    ['SELECT CASE WHEN x THEN (SELECT 1 FROM b) END FROM a', [r('public.a'), r('public.b')]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual(sorted(expected));
  });
});

describe('CTEs', () => {
  it('a referenced CTE name is not a relation', () => {
    expect(accesses('WITH x AS (SELECT * FROM orders) SELECT * FROM x')).toEqual([r('public.orders')]);
  });
  it('a CTE shadows a table only inside its scope', () => {
    expect(accesses('SELECT * FROM (WITH orders AS (SELECT 1) SELECT * FROM orders) s, orders')).toEqual([r('public.orders')]);
    expect(accesses('SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) s, secret')).toEqual([r('public.secret')]);
    expect(accesses('SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) s')).toEqual([]);
  });
  it('a non-recursive CTE body sees earlier siblings only; its own name is the real table', () => {
    expect(accesses('WITH orders AS (SELECT * FROM orders) SELECT * FROM orders')).toEqual([r('public.orders')]);
    expect(accesses('WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b')).toEqual([r('public.b')]);
    expect(accesses('WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b')).toEqual([]);
  });
  it('a recursive CTE references itself', () => {
    expect(accesses('WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t')).toEqual([]);
  });
  it('a qualified name is never a CTE', () => {
    expect(accesses('WITH orders AS (SELECT 1) SELECT * FROM public.orders')).toEqual([r('public.orders')]);
  });
  it('a DML target is never a CTE', () => {
    expect(accesses('WITH orders AS (SELECT 1) DELETE FROM orders')).toEqual([op('delete', 'public.orders')]);
    expect(accesses('WITH orders AS (SELECT 1) INSERT INTO orders SELECT * FROM orders')).toEqual([op('insert', 'public.orders')]);
  });
  it('data-modifying CTEs carry their operation', () => {
    expect(accesses('WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d')).toEqual(sorted([op('delete', 'public.orders'), r('public.orders')]));
    expect(accesses('WITH u AS (UPDATE a SET x = 1 RETURNING *), i AS (INSERT INTO b SELECT * FROM u RETURNING *) SELECT * FROM i')).toEqual(
      sorted([op('update', 'public.a'), r('public.a'), op('insert', 'public.b'), r('public.b')]),
    );
  });
});

describe('data modification', () => {
  it.each<[string, string[]]>([
    ['INSERT INTO orders VALUES (1)', [op('insert', 'public.orders')]],
    ['INSERT INTO orders SELECT * FROM staging', [op('insert', 'public.orders'), r('public.staging')]],
    ['INSERT INTO orders VALUES (1) RETURNING *', [op('insert', 'public.orders'), r('public.orders')]],
    ['INSERT INTO orders VALUES (1) ON CONFLICT DO NOTHING', [op('insert', 'public.orders')]],
    ['INSERT INTO orders VALUES (1) ON CONFLICT (id) DO UPDATE SET total = excluded.total', [op('insert', 'public.orders'), op('update', 'public.orders'), r('public.orders')]],
    ['INSERT INTO orders AS o VALUES (1) ON CONFLICT (id) DO UPDATE SET total = o.total + 1', [op('insert', 'public.orders'), op('update', 'public.orders'), r('public.orders')]],
    ['INSERT INTO orders VALUES (1) ON CONFLICT (id) DO UPDATE SET total = 1 WHERE orders.x > 0', [op('insert', 'public.orders'), op('update', 'public.orders'), r('public.orders')]],
    ['UPDATE orders SET status = 1', [op('update', 'public.orders')]],
    ['UPDATE orders SET total = total + 1', [op('update', 'public.orders'), r('public.orders')]],
    ['UPDATE orders SET status = 1 WHERE id = 5', [op('update', 'public.orders'), r('public.orders')]],
    ['UPDATE orders o SET status = c.s FROM customers c WHERE c.id = o.cid', [op('update', 'public.orders'), r('public.orders'), r('public.customers')]],
    ['UPDATE orders SET total = 0 WHERE false OR true', [op('update', 'public.orders'), r('public.orders')]],
    // Any column reference in SET may be a correlated reference to the target: conservative read.
    ['UPDATE orders SET total = (SELECT sum(x) FROM items)', [op('update', 'public.orders'), r('public.orders'), r('public.items')]],
    ['UPDATE orders SET total = (SELECT 1 FROM items LIMIT 1)', [op('update', 'public.orders'), r('public.items')]],
    ['DELETE FROM orders', [op('delete', 'public.orders')]],
    ['DELETE FROM orders WHERE id = 1', [op('delete', 'public.orders'), r('public.orders')]],
    ['DELETE FROM orders USING customers WHERE customers.id = orders.cid', [op('delete', 'public.orders'), r('public.orders'), r('public.customers')]],
    ['DELETE FROM orders WHERE cid IN (SELECT id FROM customers)', [op('delete', 'public.orders'), r('public.orders'), r('public.customers')]],
    ['DELETE FROM orders RETURNING id', [op('delete', 'public.orders'), r('public.orders')]],
    ['UPDATE orders SET x = 1 RETURNING (SELECT 1 FROM audit)', [op('update', 'public.orders'), r('public.orders'), r('public.audit')]],
    [
      'MERGE INTO orders o USING customers c ON o.cid = c.id WHEN MATCHED AND c.gone THEN DELETE WHEN MATCHED THEN UPDATE SET x = c.x WHEN NOT MATCHED THEN INSERT VALUES (c.id)',
      [r('public.orders'), op('delete', 'public.orders'), op('update', 'public.orders'), op('insert', 'public.orders'), r('public.customers')],
    ],
    ['MERGE INTO orders o USING (SELECT * FROM staging) s ON o.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)', [r('public.orders'), op('insert', 'public.orders'), r('public.staging')]],
    ['MERGE INTO orders o USING staging s ON o.id = s.id WHEN MATCHED THEN DO NOTHING', [r('public.orders'), r('public.staging')]],
    ['SELECT * INTO orders_copy FROM orders', [op('ddl', 'public.orders_copy'), r('public.orders')]],
    ['SELECT * INTO TEMP t FROM orders', [op('ddl', 'pg_temp.t'), r('public.orders')]],
    ['CREATE TABLE c AS SELECT * FROM orders', [op('ddl', 'public.c'), r('public.orders')]],
    ['CREATE MATERIALIZED VIEW mv AS SELECT * FROM orders', [op('ddl', 'public.mv'), r('public.orders')]],
    ['SELECT 1 FROM orders FOR UPDATE', [r('public.orders'), op('update', 'public.orders')]],
    ['SELECT 1 FROM orders o JOIN customers c ON true FOR SHARE OF o', [r('public.orders'), op('update', 'public.orders'), r('public.customers'), op('update', 'public.customers')]],
    ['SELECT 1 FROM orders WHERE x IN (SELECT y FROM customers) FOR UPDATE', [r('public.orders'), op('update', 'public.orders'), r('public.customers')]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual(sorted(expected));
  });
});

describe('COPY', () => {
  it.each<[string, string[]]>([
    ['COPY orders TO STDOUT', [r('public.orders')]],
    ['COPY orders (id, total) TO STDOUT WITH (FORMAT csv)', [r('public.orders')]],
    ['COPY orders FROM STDIN', [op('insert', 'public.orders')]],
    ['COPY orders FROM STDIN WHERE id > (SELECT max(id) FROM archive)', [op('insert', 'public.orders'), r('public.archive')]],
    ['COPY (SELECT * FROM customers) TO STDOUT', [r('public.customers')]],
    ['COPY (DELETE FROM orders RETURNING *) TO STDOUT', [op('delete', 'public.orders'), r('public.orders')]],
    ["COPY orders TO PROGRAM 'id'", [ADMIN, r('public.orders')]],
    ["COPY orders TO '/tmp/x'", [ADMIN, r('public.orders')]],
    ["COPY orders FROM '/etc/passwd'", [ADMIN, op('insert', 'public.orders')]],
    ["COPY orders FROM PROGRAM 'curl evil'", [ADMIN, op('insert', 'public.orders')]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual(sorted(expected));
  });
});

describe('wrappers run their inner statement', () => {
  it.each<[string, string, string[]]>([
    ['PREPARE p AS DELETE FROM orders', 'prepare', [op('delete', 'public.orders')]],
    ['PREPARE p (int) AS SELECT * FROM orders WHERE id = $1', 'prepare', [r('public.orders')]],
    ['EXPLAIN SELECT * FROM orders', 'explain', [r('public.orders')]],
    ['EXPLAIN ANALYZE DELETE FROM orders', 'explain', [op('delete', 'public.orders')]],
    ['EXPLAIN (ANALYZE, BUFFERS) CREATE TABLE c AS SELECT * FROM orders', 'explain', [op('ddl', 'public.c'), r('public.orders')]],
    ['DECLARE c CURSOR FOR SELECT * FROM customers', 'declare', [r('public.customers')]],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1 FROM orders FOR UPDATE', 'declare', [r('public.orders'), op('update', 'public.orders')]],
  ])('%s', (sql, kind, expected) => {
    expect(summarise(sql)).toEqual([{ kind, accesses: sorted(expected) }]);
  });

  it('EXECUTE cannot be known from its text', () => {
    expect(classifySql('EXECUTE p', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
    expect(classifySql('EXPLAIN ANALYZE EXECUTE p(1)', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
  });
});

describe('statements that need nothing', () => {
  it.each<[string, string]>([
    ['BEGIN', 'begin'],
    ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'begin'],
    ['COMMIT', 'transaction'],
    ['ROLLBACK', 'transaction'],
    ['SAVEPOINT s', 'transaction'],
    ['RELEASE SAVEPOINT s', 'transaction'],
    ['ROLLBACK TO SAVEPOINT s', 'transaction'],
    ['END', 'transaction'],
    ['SET CONSTRAINTS ALL DEFERRED', 'transaction'],
    ['FETCH 10 FROM c', 'fetch'],
    ['MOVE NEXT IN c', 'fetch'],
    ['CLOSE c', 'close'],
    ['CLOSE ALL', 'close'],
    ['DEALLOCATE p', 'deallocate'],
    ['DEALLOCATE ALL', 'deallocate'],
    ['DISCARD PLANS', 'discard'],
    ['SHOW search_path', 'show'],
    ['SET statement_timeout = 5000', 'set'],
    ["SET application_name = 'x'", 'set'],
    ['SET TIME ZONE UTC', 'set'],
    ["SET datestyle = 'ISO, MDY'", 'set'],
    ['SET LOCAL lock_timeout = 100', 'set'],
    ['SET enable_seqscan = off', 'set'],
    ['SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', 'set'],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', 'set'],
    ["SET client_encoding = 'UTF8'", 'set'],
    ['RESET statement_timeout', 'set'],
  ])('%s', (sql, kind) => {
    expect(summarise(sql)).toEqual([{ kind, accesses: [] }]);
  });
});

describe('admin statements and settings', () => {
  it.each<[string, string]>([
    ['SET ROLE postgres', 'set'],
    ['RESET ROLE', 'set'],
    ['SET ROLE NONE', 'set'],
    ['SET SESSION AUTHORIZATION bob', 'set'],
    ['SET SESSION AUTHORIZATION DEFAULT', 'set'],
    ['SET session_replication_role = replica', 'set'],
    ["SET app.tenant_id = '7'", 'set'],
    ['SET row_security = off', 'set'],
    ['SET standard_conforming_strings = off', 'set'],
    ["SET NAMES 'SJIS'", 'set'],
    ["SET client_encoding = 'GBK'", 'set'],
    ['SET log_statement = none', 'set'],
    ['PREPARE TRANSACTION \'t1\'', 'transaction'],
    ["COMMIT PREPARED 't1'", 'transaction'],
    ["ROLLBACK PREPARED 't1'", 'transaction'],
    ['DO $$BEGIN DELETE FROM orders; END$$', 'do'],
    ['LISTEN ch', 'listen'],
    ["NOTIFY ch, 'x'", 'notify'],
    ['UNLISTEN *', 'unlisten'],
    ['GRANT SELECT ON orders TO bob', 'grant'],
    ['REVOKE SELECT ON orders FROM bob', 'grant'],
    ['GRANT admin TO bob', 'grant_role'],
    ["CREATE ROLE x LOGIN PASSWORD 'p'", 'create_role'],
    ["ALTER ROLE x PASSWORD 'p'", 'alter_role'],
    ['DROP ROLE x', 'drop_role'],
    ["ALTER SYSTEM SET work_mem = '1GB'", 'alter_system'],
    ['CREATE EXTENSION dblink', 'create_extension'],
    ['CREATE DATABASE d', 'createdb'],
    ['DROP DATABASE d', 'dropdb'],
    ["CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'DELETE FROM orders RETURNING 1'", 'create_function'],
    ['CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC DELETE FROM orders; END', 'create_function'],
    ['ALTER FUNCTION f() SECURITY DEFINER', 'alter_function'],
    ['CREATE OPERATOR === (leftarg = int, rightarg = int, function = int4eq)', 'define'],
    ['CHECKPOINT', 'check_point'],
    ["LOAD 'x'", 'load'],
    ['ALTER TABLE orders OWNER TO bob', 'alter_table'],
    ['VACUUM', 'vacuum'],
    ['ANALYZE', 'analyze'],
    ['CLUSTER', 'cluster'],
    ['REINDEX DATABASE d', 'reindex'],
    ['TRUNCATE orders CASCADE', 'truncate'],
    ['DROP TABLE orders CASCADE', 'drop'],
    ['CREATE SCHEMA AUTHORIZATION bob', 'create_schema'],
    ['DROP OWNED BY bob', 'drop_owned'],
    ['SECURITY LABEL ON TABLE orders IS \'x\'', 'sec_label'],
  ])('%s', (sql, kind) => {
    const [s] = summarise(sql);
    expect(s!.kind).toBe(kind);
    expect(s!.accesses).toContain(ADMIN);
  });
});

describe('DDL', () => {
  it.each<[string, string[]]>([
    ['CREATE TABLE t (id int)', [op('ddl', 'public.t')]],
    ['CREATE TEMP TABLE t (id int)', [op('ddl', 'pg_temp.t')]],
    ['CREATE TABLE s.t (id int REFERENCES customers (id), d int DEFAULT nextval(\'s.seq\'))', [op('ddl', 's.t'), r('public.customers'), op('ddl', 'public.customers'), op('update', 's.seq')]],
    ['CREATE TABLE t (LIKE orders)', [op('ddl', 'public.t'), r('public.orders')]],
    ['CREATE TABLE t () INHERITS (orders)', [op('ddl', 'public.t'), op('ddl', 'public.orders')]],
    ['CREATE TABLE p1 PARTITION OF orders FOR VALUES FROM (1) TO (10)', [op('ddl', 'public.p1'), op('ddl', 'public.orders')]],
    ['CREATE TABLE t (x int CHECK (evil(x)))', [op('ddl', 'public.t'), op('execute', 'public.evil()')]],
    ['CREATE VIEW v AS SELECT * FROM secret', [op('ddl', 'public.v'), r('public.secret')]],
    ['CREATE OR REPLACE TEMP VIEW v AS SELECT 1', [op('ddl', 'pg_temp.v')]],
    ['CREATE INDEX i ON orders (lower(name)) WHERE total > 0', [op('ddl', 'public.orders')]],
    ['ALTER TABLE orders ADD COLUMN x int', [op('ddl', 'public.orders')]],
    ['ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (cid) REFERENCES customers (id)', [op('ddl', 'public.orders'), r('public.customers'), op('ddl', 'public.customers')]],
    ['ALTER TABLE orders ATTACH PARTITION p2 FOR VALUES FROM (10) TO (20)', [op('ddl', 'public.orders'), op('ddl', 'public.p2')]],
    ['ALTER TABLE orders RENAME TO scratch', [op('ddl', 'public.orders'), op('ddl', 'public.scratch')]],
    ['ALTER TABLE orders RENAME COLUMN a TO b', [op('ddl', 'public.orders')]],
    ['ALTER TABLE orders SET SCHEMA archive', [op('ddl', 'public.orders'), op('ddl', 'archive.orders')]],
    ['ALTER SCHEMA a RENAME TO b', [op('ddl', 'a.*'), op('ddl', 'b.*')]],
    ['ALTER FUNCTION f() RENAME TO lower', [ADMIN]],
    ['DROP TABLE a.b, c', [op('ddl', 'a.b'), op('ddl', 'public.c')]],
    ['DROP VIEW IF EXISTS v', [op('ddl', 'public.v')]],
    ['DROP TYPE mood', [op('ddl', 'public.mood')]],
    ['DROP FUNCTION s.f(int), g', [op('ddl', 's.f()'), op('ddl', 'public.g()')]],
    ['DROP SCHEMA s', [op('ddl', 's.*')]],
    ['DROP TRIGGER t ON s.orders', [op('ddl', 's.orders')]],
    ['DROP EXTENSION dblink', [ADMIN]],
    ["COMMENT ON TABLE orders IS 'x'", [op('ddl', 'public.orders')]],
    ["COMMENT ON COLUMN s.orders.c IS 'x'", [op('ddl', 's.orders')]],
    ["COMMENT ON ROLE bob IS 'x'", [ADMIN]],
    ['CREATE SEQUENCE s', [op('ddl', 'public.s')]],
    ['ALTER SEQUENCE s RESTART', [op('ddl', 'public.s')]],
    ['CREATE SCHEMA s', [op('ddl', 's.*')]],
    ["CREATE TYPE mood AS ENUM ('a', 'b')", [op('ddl', 'public.mood')]],
    ['CREATE TYPE pair AS (a int, b int)', [op('ddl', 'public.pair')]],
    ["ALTER TYPE mood ADD VALUE 'c'", [op('ddl', 'public.mood')]],
    ['CREATE DOMAIN pos AS int CHECK (VALUE > 0)', [op('ddl', 'public.pos')]],
    ['CREATE TRIGGER t BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION trg()', [op('ddl', 'public.orders'), op('execute', 'public.trg()')]],
    ['CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO log SELECT * FROM secret', [op('ddl', 'public.orders'), op('insert', 'public.log'), r('public.secret')]],
    ['CREATE POLICY p ON orders USING (tenant IN (SELECT id FROM tenants))', [op('ddl', 'public.orders'), r('public.tenants')]],
    ['CREATE STATISTICS st ON a, b FROM orders', [op('ddl', 'public.orders')]],
    ['TRUNCATE orders, s.items', [op('truncate', 'public.orders'), op('truncate', 's.items')]],
    ['LOCK orders IN ACCESS SHARE MODE', [r('public.orders')]],
    ['LOCK orders IN ROW EXCLUSIVE MODE', [op('update', 'public.orders')]],
    ['LOCK orders', [op('ddl', 'public.orders')]],
    ['VACUUM (ANALYZE) orders, items (a)', [op('ddl', 'public.orders'), op('ddl', 'public.items')]],
    ['ANALYZE orders', [op('ddl', 'public.orders')]],
    ['CLUSTER orders USING orders_pkey', [op('ddl', 'public.orders')]],
    ['REINDEX TABLE orders', [op('ddl', 'public.orders')]],
    ['REFRESH MATERIALIZED VIEW mv', [op('ddl', 'public.mv')]],
    ['CALL p(1)', [op('execute', 'public.p()')]],
    ['CALL s.p((SELECT max(id) FROM orders))', [op('execute', 's.p()'), r('public.orders')]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual(sorted(expected));
  });
});

describe('functions', () => {
  it.each<[string, string[]]>([
    ["SELECT now(), count(*), sum(1), coalesce(null, 1), lower('A'), length('x'), to_char(now(), 'YYYY'), date_trunc('day', now())", []],
    ['SELECT * FROM generate_series(1, 3)', []],
    ['SELECT version(), current_user, current_database(), current_schema(), session_user', []],
    ["SELECT extract(year FROM now()), substring('abc' FROM 1 FOR 2), trim(both ' ' FROM 'x'), 'a' SIMILAR TO 'b', now() AT TIME ZONE 'UTC'", []],
    ['SELECT pg_catalog.format_type(23, -1), pg_catalog.lower(x) FROM orders', [r('public.orders')]],
    ["SELECT nextval('orders_id_seq')", [op('update', 'public.orders_id_seq')]],
    ["SELECT nextval('s.\"Seq\"'::regclass)", [op('update', 's."Seq"')]],
    ["SELECT setval('s', 1)", [op('update', 'public.s')]],
    ["SELECT currval('s')", [r('public.s')]],
    ['SELECT lastval()', []],
    ['SELECT nextval(name) FROM seqs', [ADMIN, r('public.seqs')]],
    ['SELECT evil()', [op('execute', 'public.evil()')]],
    ['SELECT s.evil(1)', [op('execute', 's.evil()')]],
    ['SELECT public.lower(x) FROM orders', [op('execute', 'public.lower()'), r('public.orders')]],
    ['SELECT pg_stat_get_activity(NULL)', [op('execute', 'pg_catalog.pg_stat_get_activity()')]],
    ['SELECT pg_catalog.pg_some_future_function()', [op('execute', 'pg_catalog.pg_some_future_function()')]],
    ['SELECT pg_some_future_function()', [op('execute', 'pg_catalog.pg_some_future_function()'), op('execute', 'public.pg_some_future_function()')]],
    ['SELECT pg_terminate_backend(1)', [ADMIN]],
    ['SELECT pg_cancel_backend(1)', [ADMIN]],
    ['SELECT pg_reload_conf()', [ADMIN]],
    ["SELECT set_config('search_path', 'evil', false)", [ADMIN]],
    ["SELECT pg_read_file('/etc/passwd')", [ADMIN]],
    ["SELECT pg_read_binary_file('/etc/passwd')", [ADMIN]],
    ["SELECT pg_ls_dir('/')", [ADMIN]],
    ["SELECT pg_stat_file('/etc/passwd')", [ADMIN]],
    ["SELECT lo_import('/etc/passwd')", [ADMIN]],
    ['SELECT lo_export(1, \'/tmp/x\')', [ADMIN]],
    ["SELECT dblink_exec('host=x', 'DROP TABLE t')", [ADMIN]],
    ["SELECT public.dblink('host=x', 'SELECT 1')", [ADMIN]],
    ["SELECT query_to_xml('delete from orders', true, true, '')", [ADMIN]],
    ["SELECT table_to_xml('orders', true, true, '')", [ADMIN]],
    ["SELECT database_to_xml(true, true, '')", [ADMIN]],
    ["SELECT ts_stat('SELECT body FROM secret')", [ADMIN]],
    ['SELECT pg_advisory_lock(1)', [ADMIN]],
    ["SELECT pg_notify('c', 'x')", [ADMIN]],
    ['SELECT pg_sleep(0.1)', [ADMIN]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual(sorted(expected));
  });

  it('a function created in the same string is still authorized by name', () => {
    expect(summarise("CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'; SELECT evil()")).toEqual([
      { kind: 'create_function', accesses: [ADMIN] },
      { kind: 'select', accesses: [op('execute', 'public.evil()')] },
    ]);
  });
});

describe('catalog rule', () => {
  it.each<[string, string[]]>([
    ['SELECT * FROM pg_class', []],
    ['SELECT * FROM pg_catalog.pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace', []],
    ['SELECT * FROM information_schema.tables', []],
    ['SELECT * FROM pg_authid', [r('pg_catalog.pg_authid')]],
    ['SELECT * FROM pg_catalog.pg_shadow', [r('pg_catalog.pg_shadow')]],
    ['SELECT * FROM pg_statistic', [r('pg_catalog.pg_statistic')]],
    ['SELECT * FROM pg_stats', [r('pg_catalog.pg_stats')]],
    ['SELECT * FROM pg_stat_activity', [r('pg_catalog.pg_stat_activity')]],
    ['SELECT * FROM pg_largeobject', [r('pg_catalog.pg_largeobject')]],
    ['SELECT * FROM pg_user_mapping', [r('pg_catalog.pg_user_mapping')]],
    ['SELECT * FROM pg_hba_file_rules', [r('pg_catalog.pg_hba_file_rules')]],
    ['SELECT * FROM pg_future_catalog', [r('pg_catalog.pg_future_catalog'), r('public.pg_future_catalog')]],
    ['DELETE FROM pg_class', [op('delete', 'pg_catalog.pg_class')]],
    ['DELETE FROM information_schema.tables', [op('delete', 'information_schema.tables')]],
    ['SELECT * FROM pg_class FOR UPDATE', [op('update', 'pg_catalog.pg_class')]],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual(sorted(expected));
  });

  it('a catalog name resolves to a path schema placed before pg_catalog', () => {
    const ctx = { upstream: 'appdb', searchPath: ['app', 'pg_catalog', 'public'] };
    expect(accesses('SELECT * FROM pg_class', ctx)).toEqual([r('app.pg_class')]);
  });
});

describe('search_path', () => {
  it('an unqualified name needs every candidate schema', () => {
    const ctx = { upstream: 'appdb', searchPath: ['app', 'public', 'pg_temp'] };
    expect(accesses('SELECT * FROM orders', ctx)).toEqual(sorted([r('app.orders'), r('public.orders')]));
    expect(accesses('SELECT evil()', ctx)).toEqual(sorted([op('execute', 'app.evil()'), op('execute', 'public.evil()')]));
    expect(accesses('CREATE TABLE t (a int)', ctx)).toEqual(sorted([op('ddl', 'app.t'), op('ddl', 'public.t')]));
  });

  it('SET search_path is allowed and reported', () => {
    const [s] = classifySql('SET search_path TO app, "My Schema", public', CTX).ok
      ? (classifySql('SET search_path TO app, "My Schema", public', CTX) as { statements: readonly { sessionEffect?: unknown; accesses: readonly unknown[] }[] }).statements
      : [];
    expect(s).toMatchObject({ accesses: [], sessionEffect: { searchPath: ['app', 'My Schema', 'public'] } });
  });

  it('applies to later statements of the same string', () => {
    expect(summarise('SET search_path = evil; SELECT * FROM orders')).toEqual([
      { kind: 'set', accesses: [] },
      { kind: 'select', accesses: [r('evil.orders')] },
    ]);
    expect(summarise('SET SCHEMA \'evil\'; DELETE FROM orders')[1]!.accesses).toEqual([op('delete', 'evil.orders')]);
  });

  it('RESET, DEFAULT and DISCARD ALL go back to the server default ("$user", public)', () => {
    for (const reset of ['RESET search_path', 'SET search_path TO DEFAULT', 'RESET ALL', 'DISCARD ALL']) {
      const out = classifySql(`${reset}; SELECT * FROM orders`, { upstream: 'appdb', searchPath: ['app'] });
      expect(out.ok && out.statements[0]!.sessionEffect).toMatchObject({ resetSearchPath: true });
      expect(summarise(`${reset}; SELECT * FROM orders`, { upstream: 'appdb', searchPath: ['app'] })[1]!.accesses).toEqual(
        sorted([r('"$user".orders'), r('public.orders')]),
      );
    }
  });

  it('$user expands when the session user is known', () => {
    const ctx = { upstream: 'appdb', searchPath: ['$user', 'public'], sessionUser: 'alice' };
    expect(accesses('SELECT * FROM orders', ctx)).toEqual(sorted([r('alice.orders'), r('public.orders')]));
  });

  it('SET LOCAL is marked local', () => {
    const out = classifySql('SET LOCAL search_path = a', CTX);
    expect(out.ok && out.statements[0]!.sessionEffect).toEqual({ searchPath: ['a'], local: true });
  });

  it('an empty path leaves unqualified names unresolvable: unsupported', () => {
    expect(classifySql('SELECT * FROM orders', { upstream: 'appdb', searchPath: [] })).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
    expect(accesses('SELECT * FROM public.orders', { upstream: 'appdb', searchPath: [] })).toEqual([r('public.orders')]);
  });
});

describe('resources are unambiguous', () => {
  it('quotes identifiers that are not plain lower-case names', () => {
    expect(accesses('SELECT * FROM "Orders", "public.x"."*", "a""b"')).toEqual(
      sorted([r('public."Orders"'), r('"public.x"."*"'), r('public."a""b"')]),
    );
  });
});

describe('failures', () => {
  it('a parse error is UNPARSABLE and never echoes the SQL', () => {
    const out = classifySql("SELECT * FROM orders WHERE secret = 'hunter2' AND", CTX);
    expect(out).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNPARSABLE' });
    expect(!out.ok && out.reason).toMatch(/^syntax error( at offset \d+)?$/);
  });
  it('a NUL character is UNPARSABLE', () => {
    expect(classifySql('SELECT 1\0; DROP TABLE x', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNPARSABLE' });
  });
  it('an unsupported statement anywhere fails the whole string', () => {
    expect(classifySql('SELECT 1; EXECUTE p; SELECT 2', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
  });
  it('three-part names are unsupported', () => {
    expect(classifySql('SELECT * FROM otherdb.public.orders', CTX)).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
  });
  it('empty and comment-only strings have no statements', () => {
    expect(classifySql('', CTX)).toEqual({ ok: true, statements: [] });
    expect(classifySql(' -- nothing\n', CTX)).toEqual({ ok: true, statements: [] });
  });
  it('misuse throws TypeError', () => {
    expect(() => classifySql('SELECT 1', { upstream: 'a/b', searchPath: [] })).toThrow(TypeError);
  });
  it('results are frozen', () => {
    const out = classifySql('SELECT * FROM orders', CTX);
    expect(Object.isFrozen(out)).toBe(true);
    expect(out.ok && Object.isFrozen(out.statements[0]!.accesses)).toBe(true);
  });
});
