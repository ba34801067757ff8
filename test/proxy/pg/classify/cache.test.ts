import { beforeAll, describe, expect, it } from 'vitest';
import { createClassifierCache, initClassifier } from '../../../../src/proxy/pg/classify/index.ts';
import { CTX } from './helpers.ts';

beforeAll(() => initClassifier());

describe('createClassifierCache', () => {
  it('returns the same frozen result for the same (context, sql)', () => {
    const cache = createClassifierCache();
    const a = cache.classify('SELECT * FROM orders', CTX);
    expect(cache.classify('SELECT * FROM orders', CTX)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it('keys on the search path, session user and upstream', () => {
    const cache = createClassifierCache();
    const a = cache.classify('SELECT * FROM orders', CTX);
    const b = cache.classify('SELECT * FROM orders', { ...CTX, searchPath: ['other'] });
    const c = cache.classify('SELECT * FROM orders', { ...CTX, upstream: 'db2' });
    const d = cache.classify('SELECT * FROM orders', { ...CTX, searchPath: ['$user'], sessionUser: 'bob' });
    expect(b).not.toBe(a);
    expect(b.ok && b.statements[0]!.accesses[0]!.resource).toBe('pg:appdb/other.orders');
    expect(c.ok && c.statements[0]!.accesses[0]!.resource).toBe('pg:db2/public.orders');
    expect(d.ok && d.statements[0]!.accesses[0]!.resource).toBe('pg:appdb/bob.orders');
    expect(cache.size).toBe(4);
  });

  it('is bounded and evicts the least recently used entry', () => {
    const cache = createClassifierCache({ maxEntries: 2 });
    const a = cache.classify('SELECT 1', CTX);
    cache.classify('SELECT 2', CTX);
    cache.classify('SELECT 1', CTX); // touch
    cache.classify('SELECT 3', CTX); // evicts SELECT 2
    expect(cache.size).toBe(2);
    expect(cache.classify('SELECT 1', CTX)).toBe(a);
  });

  it('does not cache oversized SQL, and caches failures', () => {
    const cache = createClassifierCache({ maxSqlLength: 10 });
    cache.classify('SELECT * FROM orders', CTX);
    expect(cache.size).toBe(0);
    const f = cache.classify('EXECUTE p', CTX);
    expect(f).toMatchObject({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED' });
    expect(cache.classify('EXECUTE p', CTX)).toBe(f);
  });

  it('rejects a bad size', () => {
    expect(() => createClassifierCache({ maxEntries: 0 })).toThrow(TypeError);
  });
});
