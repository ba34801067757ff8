/** classifySql never throws and always answers ok or a coded failure, whatever the input. */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, initClassifier, type Classification } from '../../../../src/proxy/pg/classify/index.ts';
import { CTX } from './helpers.ts';

beforeAll(() => initClassifier());

const CORPUS = [
  "SELECT '\\'; DROP TABLE x; --'",
  "SELECT E'\\'' , $$;DELETE$$ /* c */ -- d",
  'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d',
  'SELECT * INTO orders_copy FROM orders o JOIN customers c ON c.id = o.cid WHERE EXISTS (SELECT 1 FROM x)',
  "COPY orders TO PROGRAM 'id'",
  'MERGE INTO orders o USING customers c ON o.id = c.id WHEN MATCHED THEN UPDATE SET x = 1 WHEN NOT MATCHED THEN INSERT VALUES (1)',
  'INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a RETURNING *',
  "SELECT nextval('s'), query_to_xml('x', true, true, ''), evil() FROM pg_authid FOR UPDATE",
  'CREATE TABLE t (a int REFERENCES c, b text DEFAULT f()) ; ALTER TABLE t RENAME TO u; DROP TABLE u CASCADE',
  'SET search_path = a, b; SELECT * FROM t; RESET ALL; EXPLAIN ANALYZE DELETE FROM t',
];

function wellFormed(out: Classification): void {
  if (out.ok) {
    for (const s of out.statements) {
      expect(typeof s.kind).toBe('string');
      expect(typeof s.fingerprint).toBe('string');
      for (const a of s.accesses) expect(a.resource.startsWith('pg:appdb/')).toBe(true);
    }
  } else {
    expect(['BATON_ERR_SQL_UNPARSABLE', 'BATON_ERR_SQL_UNSUPPORTED']).toContain(out.code);
    expect(out.reason).toMatch(/^[A-Za-z0-9 _.,:()-]*$/);
  }
}

/** Insert, delete or replace a slice of a corpus statement. */
const mutated = fc
  .tuple(fc.constantFrom(...CORPUS), fc.nat(), fc.nat({ max: 8 }), fc.string({ maxLength: 8 }))
  .map(([s, at, del, ins]) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + ins + s.slice(i + del);
  });

const sqlish = fc
  .array(fc.constantFrom('SELECT', 'FROM', 'WITH', 'AS', '(', ')', ',', ';', "'", '"', '$$', '*', 'x', 'orders', 'DELETE', 'INSERT INTO', 'VALUES', '1', '--', '/*', '*/', '\\', 'E', 'JOIN', 'ON', 'WHERE', 'RETURNING'), { maxLength: 20 })
  .map((parts) => parts.join(' '));

describe('fuzz', () => {
  it('never throws (2000 runs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 30 }), mutated, sqlish), (sql) => {
        wellFormed(classifySql(sql, CTX));
      }),
      { numRuns: 2000, seed: 20260515, interruptAfterTimeLimit: 20_000 },
    );
  });
});
