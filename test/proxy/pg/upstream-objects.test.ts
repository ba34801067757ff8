/** The proxy's snapshot of an upstream's user-defined functions, operators and types, on a real server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upstreamFromUrl } from '../../../src/proxy/pg/upstreams.ts';
import { upstreamObjectsSource } from '../../../src/proxy/pg/upstream-objects.ts';
import { createTestDatabase, type TestDatabase } from '../../helpers/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('upobjects', { migrate: false });
});
afterAll(async () => db?.drop());

describe('upstream objects snapshot', () => {
  it('sees a function created after it was loaded as soon as it is marked stale', async () => {
    const source = upstreamObjectsSource(upstreamFromUrl(db.url), { refreshMs: 60_000 });
    try {
      const before = await source.current();
      expect(before.functions.get('public')?.has('fresh')).not.toBe(true);
      await db.pool.query(`CREATE FUNCTION public.fresh(int) RETURNS int LANGUAGE sql AS 'SELECT 1'`);
      expect(source.current()).toBe(before); // not stale: the cached snapshot, synchronously
      source.markStale();
      const after = await source.current();
      expect(after.functions.get('public')?.has('fresh')).toBe(true);
      expect(after.version).not.toBe(before.version);
    } finally {
      source.close();
    }
  });

  it('records operators and domain checks that run user functions, and trusts built-ins', async () => {
    await db.pool.query(`
      CREATE FUNCTION public.op_fn(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
      CREATE OPERATOR public.<<>> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.op_fn);
      CREATE FUNCTION public.chk(text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
      CREATE DOMAIN public.dom AS text CHECK (public.chk(VALUE));`);
    const source = upstreamObjectsSource(upstreamFromUrl(db.url));
    try {
      const s = await source.current();
      expect(s.operators.get('public')?.get('<<>>')).toEqual([['public', 'op_fn']]);
      expect(s.types.get('public')?.get('dom')).toEqual([['public', 'chk']]);
      expect(s.operators.has('pg_catalog')).toBe(false);
    } finally {
      source.close();
    }
  });

  it('refuses (never an empty snapshot) when the upstream cannot be read', async () => {
    const source = upstreamObjectsSource({ host: '127.0.0.1', port: 1, user: 'nobody', database: 'nowhere' });
    try {
      await expect(Promise.resolve(source.current())).rejects.toMatchObject({ code: 'BATON_ERR_UPSTREAM_UNAVAILABLE' });
    } finally {
      source.close();
    }
  });
});
