/**
 * The cache's shape level: statements that differ only in literal values share one
 * classification — and nothing else ever does. Every cached answer is compared with a fresh
 * `classifySql` of the same text.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifySql,
  createClassifierCache,
  initClassifier,
  type ClassifierCache,
  type ClassifyContext,
} from '../../../../src/proxy/pg/classify/index.ts';
import { ADMIN, CTX, op, r } from './helpers.ts';

beforeAll(() => initClassifier());

/** Classify through the cache and check the answer against a fresh classification. */
function check(cache: ClassifierCache, sql: string, ctx: ClassifyContext = CTX) {
  const got = cache.classify(sql, ctx);
  expect(got).toEqual(classifySql(sql, ctx));
  return got;
}

function accessesOf(c: ReturnType<typeof check>): string[][] {
  if (!c.ok) throw new Error(`expected ok, got ${c.code}: ${c.reason}`);
  return c.statements.map((s) => s.accesses.map((a) => `${a.operation} ${a.resource}`).sort());
}

describe('statements that differ only in literals share one classification', () => {
  it('pgbench -S: one miss, then shape hits with their own normalized text', () => {
    const cache = createClassifierCache();
    const a = check(cache, 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;');
    const b = check(cache, 'SELECT abalance FROM pgbench_accounts WHERE aid = 7;');
    const c = check(cache, "select abalance from pgbench_accounts where aid=9 -- the 'usual' one\n;");
    expect(cache.stats).toEqual({ exactHits: 0, shapeHits: 2, misses: 1 });
    expect(accessesOf(b)).toEqual([[r('public.pgbench_accounts')]]);
    if (!a.ok || !b.ok || !c.ok) return;
    expect(b.statements[0]!.accesses).toBe(a.statements[0]!.accesses);
    expect(b.statements[0]!.fingerprint).toBe(a.statements[0]!.fingerprint);
    expect(c.statements[0]!.normalized).toBe('select abalance from pgbench_accounts where aid=$1');
  });

  it('ORM-style DML, MERGE, CTEs and multi-statement strings of DML', () => {
    const cache = createClassifierCache();
    const pairs: [string, string][] = [
      ["INSERT INTO orders (id, note) VALUES (1, 'a') RETURNING id", "INSERT INTO orders (id, note) VALUES (2, 'it''s') RETURNING id"],
      ["UPDATE orders SET note = $$x$$ WHERE id = 1.5", "UPDATE orders SET note = $q$'; DROP TABLE t; --$q$ WHERE id = 2.5"],
      ["DELETE FROM orders WHERE note = E'a'", "DELETE FROM orders WHERE note = E'\\'; DROP TABLE t; --'"],
      [
        "MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET note = 'a' WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'b')",
        "MERGE INTO orders o USING (SELECT 2 AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET note = 'c' WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'd')",
      ],
      ['WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d', 'WITH d AS (DELETE FROM orders WHERE id = 2 RETURNING *) SELECT * FROM d'],
      ["SELECT * FROM t WHERE a = 'x'; DELETE FROM orders WHERE id = 1", "SELECT * FROM t WHERE a = 'y'; DELETE FROM orders WHERE id = 2"],
    ];
    for (const [a, b] of pairs) {
      check(cache, a);
      const before = cache.stats.shapeHits;
      check(cache, b);
      expect(cache.stats.shapeHits, b).toBe(before + 1);
    }
  });

  it('never across contexts', () => {
    const cache = createClassifierCache();
    check(cache, 'SELECT * FROM t WHERE a = 1', { ...CTX, searchPath: ['a'] });
    const b = check(cache, 'SELECT * FROM t WHERE a = 2', { ...CTX, searchPath: ['b'] });
    const c = check(cache, 'SELECT * FROM t WHERE a = 3', { ...CTX, upstream: 'db2', searchPath: ['a'] });
    expect(accessesOf(b)).toEqual([[r('b.t')]]);
    expect(accessesOf(c)).toEqual([['read pg:db2/a.t']]);
    expect(cache.stats.shapeHits).toBe(0);
  });
});

describe('a classification that depends on a literal is never shared', () => {
  it.each<[string, string, string[][]]>([
    ["SELECT nextval('a')", "SELECT nextval('b')", [[op('update', 'public.b')]]],
    ["SELECT currval('s'::regclass), * FROM t", "SELECT currval('x.s'::regclass), * FROM t", [[r('public.t'), r('x.s')]]],
    ["SELECT * FROM t WHERE x = nextval('a')", "SELECT * FROM t WHERE x = nextval('b')", [[r('public.t'), op('update', 'public.b')]]],
    ["SET search_path = 'a'; SELECT * FROM t", "SET search_path = 'b'; SELECT * FROM t", [[], [r('b.t')]]],
    ["SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'", [[ADMIN]]],
    // An empty file name is omitted from libpg_query's tree: `FROM ''` looks like `FROM STDIN`.
    ["COPY orders FROM ''", "COPY orders FROM '/etc/passwd'", [[ADMIN, op('insert', 'public.orders')]]],
    // UESCAPE's string literal decides the characters of the identifier before it.
    ['SELECT * FROM U&"!0061bc" UESCAPE \'!\'', 'SELECT * FROM U&"!0061bc" UESCAPE \'#\'', [[r('public."!0061bc"')]]],
  ])('%s  ≠  %s', (a, b, expected) => {
    const cache = createClassifierCache();
    check(cache, a);
    expect(accessesOf(check(cache, b))).toEqual(expected);
    expect(cache.stats.shapeHits).toBe(0);
  });

  it('SET search_path reports each literal as its own session effect', () => {
    const cache = createClassifierCache();
    check(cache, "SET search_path = 'a'");
    const b = check(cache, "SET search_path = 'b'");
    expect(b.ok && b.statements[0]!.sessionEffect).toEqual({ searchPath: ['b'] });
  });

  it('the walk reads literal values only through Walker.literalString (tripwire for new code)', () => {
    const src = (f: string) => readFileSync(new URL(`../../../../src/proxy/pg/classify/${f}`, import.meta.url), 'utf8');
    // statements.ts, names.ts, functions.ts, catalog.ts: the code that classifies literal-blind statements.
    for (const f of ['statements.ts', 'names.ts', 'functions.ts', 'catalog.ts']) expect(src(f), f).not.toMatch(/stringConst|\.ival\b|\.fval\b|\.boolval\b|\.bsval\b/);
    expect(src('walk.ts').match(/stringConst\(/g)).toHaveLength(1);
  });
});

describe('texts a hand-written tokenizer would confuse never share a benign entry', () => {
  // Each benign text looks, to some naive tokenizer, like the attack next to it. PostgreSQL's lexer
  // (standard_conforming_strings=on) sees a second statement in every attack.
  it.each<[string, string, string[], string]>([
    ['backslash escapes in plain strings', "SELECT a FROM t WHERE a = 'x'", [r('public.t')], "SELECT a FROM t WHERE a = '\\'; DELETE FROM orders; --'"],
    ['E-strings', "SELECT a FROM t WHERE a = E'x'\n'y'", [r('public.t')], "SELECT a FROM t WHERE a = E'\\'' ; DELETE FROM orders; --'"],
    ['dollar quotes', "SELECT $$'x'$$", [], "SELECT $$'$$; DELETE FROM orders; SELECT $$'$$"],
    ['nested comments', "SELECT date '2026-01-01'", [], "SELECT date /* /* */ ' */ ; DELETE FROM orders; -- '"],
  ])('%s', (_, benign, benignAccesses, attack) => {
    const cache = createClassifierCache();
    expect(accessesOf(check(cache, benign))).toEqual([benignAccesses]);
    const got = check(cache, attack);
    expect(accessesOf(got).flat()).toContain(op('delete', 'public.orders'));
    expect(cache.stats.shapeHits).toBe(0);
  });
});

describe('property: a cached answer always equals a fresh classification', () => {
  const TEMPLATES = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = ?',
    'INSERT INTO orders (id, note) VALUES (?, ?) RETURNING id',
    'UPDATE orders SET note = ? WHERE id = ?',
    'DELETE FROM orders WHERE created < ? AND note <> ?',
    'SELECT * FROM t LIMIT ? OFFSET ?',
    'SELECT nextval(?)',
    'SELECT currval(?::regclass), * FROM t WHERE x = ?',
    "SELECT set_config('search_path', ?, false)",
    'SET search_path = ?',
    'SET search_path = ?; SELECT * FROM t WHERE a = ?',
    'COPY orders FROM ?',
    'SELECT * FROM t WHERE a = ? /* ? */ AND b = ?',
    'SELECT ?::regclass, pg_sleep(?)',
    'WITH d AS (DELETE FROM orders WHERE id = ? RETURNING *) SELECT * FROM d WHERE x = ?',
    'SELECT * FROM t WHERE a = ?; DELETE FROM orders WHERE id = ?',
    'MERGE INTO orders o USING (SELECT ? AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET note = ? WHEN NOT MATCHED THEN INSERT VALUES (s.id, ?)',
    'SELECT * FROM U&"d!0061t" UESCAPE ? WHERE a = ?',
  ];
  const text = fc.string({ maxLength: 12 });
  const literal = fc.oneof(
    fc.integer({ min: -1000, max: 2 ** 40 }).map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => String(Math.abs(d))),
    text.map((s) => `'${s.replaceAll("'", "''")}'`),
    text.map((s) => `E'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`),
    text.filter((s) => !s.includes('$q')).map((s) => `$q$${s}$q$`),
    fc.constantFrom("'a'", "'public.s'", "'x.\"Seq\"'", "'!'", "''", "'/etc/passwd'", 'B\'101\'', "X'ff'", "U&'d\\0061t'"),
    // Not literals at all: the cache must still agree with a fresh classification.
    fc.constantFrom("'\\'", "E'\\''", '$$', '/*', '--', "'a' ; DELETE FROM orders; --'", '$1', 'x', '(SELECT 1)'),
  );
  const filled = (template: string) =>
    fc.array(literal, { minLength: 3, maxLength: 3 }).map((lits) => {
      let i = 0;
      return template.replace(/\?/g, () => lits[i++ % lits.length]!);
    });
  const pair = fc.constantFrom(...TEMPLATES).chain((t) => fc.tuple(filled(t), filled(t)));

  it('for random pairs (statement, same statement with other literals)', () => {
    const shared = createClassifierCache({ maxEntries: 64 });
    let shapeHits = 0;
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const fresh = createClassifierCache();
        check(fresh, a);
        check(fresh, b);
        shapeHits += fresh.stats.shapeHits;
        check(shared, a);
        check(shared, b);
      }),
      { numRuns: 1500, seed: 20261123, interruptAfterTimeLimit: 20_000 },
    );
    // The property must have exercised the shape level, not only misses.
    expect(shapeHits).toBeGreaterThan(100);
  });
});
