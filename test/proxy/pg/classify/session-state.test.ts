/**
 * `ClassifiedStatement.sessionState`: what a statement leaves on the upstream connection after its
 * transaction ends — what `proxy.pooling: transaction` refuses (issue 15 point 5). Every way to leave
 * state that the pooled relay's reset (DISCARD ALL) also undoes is listed here; the forms scoped to
 * one transaction are not flagged.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, initClassifier } from '../../../../src/proxy/pg/classify/index.ts';
import { CTX } from './helpers.ts';

beforeAll(() => initClassifier());

function stateOf(sql: string): (string | undefined)[] {
  const c = classifySql(sql, CTX);
  if (!c.ok) throw new Error(`expected ok, got ${c.code}: ${c.reason}`);
  return c.statements.map((s) => s.sessionState);
}

describe('statements that leave session state', () => {
  it.each<[string, RegExp]>([
    ["SET work_mem = '8MB'", /^SET \(a session-level setting/],
    ['SET search_path = public', /^SET/],
    ['SET SESSION statement_timeout = 1000', /^SET/],
    ['SET work_mem TO DEFAULT', /^SET/],
    ['SET TIME ZONE UTC', /^SET/],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', /^SET/],
    ['SET ROLE other', /^SET/],
    ['PREPARE p AS SELECT 1', /^PREPARE/],
    ['DEALLOCATE p', /^DEALLOCATE of a named statement/],
    ['DEALLOCATE PREPARE p', /^DEALLOCATE/],
    ['LISTEN jobs', /^LISTEN/],
    ["LOAD 'auto_explain'", /^LOAD/],
    ['CREATE TEMP TABLE t (v int)', /temporary object/],
    ['CREATE TEMPORARY TABLE t (v int) ON COMMIT DROP', /temporary object/],
    ['CREATE TABLE pg_temp.t (v int)', /temporary object/],
    ['CREATE TEMP VIEW v AS SELECT 1', /temporary object/],
    ['CREATE TEMP SEQUENCE s', /temporary object/],
    ['SELECT 1 AS v INTO TEMP t', /temporary object/],
    ['CREATE TEMP TABLE t AS SELECT 1 AS v', /temporary object/],
    ['SELECT * FROM pg_temp.t', /temporary object/],
    ['SELECT * FROM pg_temp_3.t', /temporary object/],
    ['SELECT pg_advisory_lock(1)', /session-level advisory lock/],
    ['SELECT pg_try_advisory_lock_shared(1, 2)', /session-level advisory lock/],
    ['SELECT pg_catalog.pg_advisory_lock(1)', /session-level advisory lock/],
    ["SELECT set_config('work_mem', '8MB', false)", /set_config/],
    ["SELECT set_config('work_mem', '8MB', true)", /set_config/],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', /WITH HOLD cursor/],
    ['DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1', /WITH HOLD cursor/],
    ["SELECT dblink_connect('x')", /dblink connection/],
  ])('%s', (sql, what) => {
    expect(stateOf(sql)[0]).toMatch(what);
  });

  it('a multi-statement string names the statement that leaves state', () => {
    expect(stateOf('SELECT 1; LISTEN jobs; SELECT 2')).toEqual([undefined, 'LISTEN', undefined]);
  });
});

describe('statements scoped to their transaction (or with none) leave nothing', () => {
  it.each([
    "SET LOCAL work_mem = '8MB'",
    'SET LOCAL search_path = public',
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'RESET work_mem',
    'RESET ALL',
    'DEALLOCATE ALL',
    'DISCARD ALL',
    'UNLISTEN *',
    "NOTIFY jobs, 'x'",
    'SELECT pg_advisory_xact_lock(1)',
    'SELECT pg_try_advisory_xact_lock_shared(1)',
    'DECLARE c CURSOR FOR SELECT 1',
    'DECLARE c SCROLL CURSOR WITHOUT HOLD FOR SELECT 1',
    'CREATE TABLE t (v int)',
    'CREATE UNLOGGED TABLE t (v int)',
    'SELECT * FROM orders',
    "SELECT current_setting('work_mem')",
    'BEGIN',
    'COMMIT',
  ])('%s', (sql) => {
    expect(stateOf(sql)).toEqual([undefined]);
  });
});
