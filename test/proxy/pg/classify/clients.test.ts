/**
 * What real clients send must pass without rights it does not need: psql's metadata queries
 * (captured with `psql -E` from psql 15: \d orders, \d+ orders, \dt, \dn, \df, \du, \l, \dv, \di, \d),
 * pgbench's built-in scripts and drivers' type lookups.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initClassifier } from '../../../../src/proxy/pg/classify/index.ts';
import { accesses, op, r, summarise } from './helpers.ts';

beforeAll(() => initClassifier());

const psql: string[] = JSON.parse(readFileSync(new URL('./fixtures/psql-15-queries.json', import.meta.url), 'utf8'));

describe('psql meta-commands need no rights', () => {
  it('has the captured queries', () => {
    expect(psql.length).toBeGreaterThan(20);
  });
  it.each(psql.map((q, i) => [i, q] as const))('query %i', (_i, q) => {
    expect(summarise(q)).toEqual([{ kind: 'select', accesses: [] }]);
  });
});

describe('pgbench', () => {
  it.each<[string, string[]]>([
    // -S (select-only), simple and -M extended/prepared forms
    ['SELECT abalance FROM pgbench_accounts WHERE aid = 4711;', [r('public.pgbench_accounts')]],
    ['SELECT abalance FROM pgbench_accounts WHERE aid = $1;', [r('public.pgbench_accounts')]],
    // tpcb-like
    ['UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;', [op('update', 'public.pgbench_accounts'), r('public.pgbench_accounts')]],
    ['UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;', [op('update', 'public.pgbench_tellers'), r('public.pgbench_tellers')]],
    ['INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);', [op('insert', 'public.pgbench_history')]],
    ['BEGIN;', []],
    ['END;', []],
    // start-up
    ['select count(*) from pgbench_branches', [r('public.pgbench_branches')]],
    ['vacuum pgbench_branches', [op('ddl', 'public.pgbench_branches')]],
    ['truncate pgbench_history', [op('truncate', 'public.pgbench_history')]],
    ["select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 'pgbench_accounts' and o.n is not null group by 1, 2 order by 1 asc limit 1", []],
  ])('%s', (sql, expected) => {
    expect(accesses(sql)).toEqual([...expected].sort());
  });
});

describe('driver type lookups', () => {
  it.each([
    // pgjdbc
    "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, pg_type.oid FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as nspname from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r using ( nspname ) ) as sp ON sp.nspoid = typnamespace WHERE pg_type.oid = $1 ORDER BY sp.r, pg_type.oid DESC",
    // psycopg TypeInfo.fetch
    "SELECT typname AS name, oid, typarray AS array_oid, oid::regtype::text AS regtype, typdelim AS delimiter FROM pg_type t WHERE t.oid = to_regtype($1) ORDER BY t.oid",
    // postgres.js array types
    "select b.oid, b.typarray from pg_catalog.pg_type a left join pg_catalog.pg_type b on b.oid = a.typelem where a.typcategory = 'A' group by b.oid, b.typarray order by b.oid",
    // node-postgres has no type queries; pg-types users often run this one
    "SELECT oid, typname FROM pg_type WHERE typname IN ('hstore', 'citext')",
    // information_schema introspection (ORMs)
    "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY ordinal_position",
    'SELECT version()',
    'SHOW server_version_num',
    "SET extra_float_digits = 3; SET application_name = 'psql'",
  ])('%s', (sql) => {
    for (const s of summarise(sql)) expect(s.accesses).toEqual([]);
  });
});
