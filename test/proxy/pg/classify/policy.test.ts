import { describe, expect, it } from 'vitest';
import { judgeFunction, SAFE_FUNCTIONS } from '../../../../src/proxy/pg/classify/functions.ts';
import { PG_CATALOG_FUNCTIONS } from '../../../../src/proxy/pg/classify/pg-catalog-functions.ts';
import { isFreeCatalogRead } from '../../../../src/proxy/pg/classify/catalog.ts';
import { parseQualifiedName, quoteIdent, Resolver } from '../../../../src/proxy/pg/classify/names.ts';
import { judgeSet } from '../../../../src/proxy/pg/classify/settings.ts';
import { safeReason } from '../../../../src/proxy/pg/classify/unsupported.ts';

describe('function policy', () => {
  it('every safe function is a real pg_catalog function', () => {
    expect([...SAFE_FUNCTIONS].filter((f) => !PG_CATALOG_FUNCTIONS.has(f))).toEqual([]);
  });
  it('dangerous names are admin in any schema; others outside pg_catalog are execute', () => {
    expect(judgeFunction('pg_catalog', 'lower')).toEqual({ kind: 'free' });
    expect(judgeFunction('public', 'lower')).toEqual({ kind: 'execute' });
    expect(judgeFunction('ext', 'dblink_connect')).toEqual({ kind: 'admin' });
    expect(judgeFunction('pg_catalog', 'cursor_to_xmlschema')).toEqual({ kind: 'admin' });
    expect(judgeFunction('pg_catalog', 'pg_try_advisory_xact_lock')).toEqual({ kind: 'admin' });
    expect(judgeFunction('pg_catalog', 'nextval')).toEqual({ kind: 'sequence', operation: 'update' });
    expect(judgeFunction('pg_catalog', 'pg_stat_get_backend_activity')).toEqual({ kind: 'execute' });
  });
});

describe('catalog policy', () => {
  it('free reads are metadata only', () => {
    expect(isFreeCatalogRead('pg_catalog', 'pg_class')).toBe(true);
    expect(isFreeCatalogRead('information_schema', 'columns')).toBe(true);
    for (const sensitive of ['pg_authid', 'pg_shadow', 'pg_statistic', 'pg_stats', 'pg_largeobject', 'pg_user_mapping', 'pg_stat_activity', 'pg_sequences', 'pg_subscription']) {
      expect(isFreeCatalogRead('pg_catalog', sensitive)).toBe(false);
    }
    expect(isFreeCatalogRead('public', 'pg_class')).toBe(false);
  });
});

describe('names', () => {
  it('quoteIdent', () => {
    expect(quoteIdent('orders')).toBe('orders');
    expect(quoteIdent('Orders')).toBe('"Orders"');
    expect(quoteIdent('a.b')).toBe('"a.b"');
    expect(quoteIdent('*')).toBe('"*"');
    expect(quoteIdent('x"y')).toBe('"x""y"');
  });
  it('parseQualifiedName follows regclass input rules', () => {
    expect(parseQualifiedName('Orders_Seq')).toEqual(['orders_seq']);
    expect(parseQualifiedName(' public . "My""Seq" ')).toEqual(['public', 'My"Seq']);
    expect(parseQualifiedName('a.b.c')).toEqual(['a', 'b', 'c']);
    for (const bad of ['', 'a.', '"unterminated', 'a b', '1abc', '""']) expect(parseQualifiedName(bad)).toBeUndefined();
  });
  it('resolution order', () => {
    const res = new Resolver({ upstream: 'u', searchPath: ['pg_temp', 'a', 'b'] });
    expect(res.relationSchemas('orders', false)).toEqual(['a', 'b']);
    expect(res.relationSchemas('pg_class', true)).toEqual(['pg_catalog']);
    expect(res.relationSchemas('pg_x', false)).toEqual(['pg_catalog', 'a', 'b']);
    expect(res.functionSchemas('lower')).toEqual(['pg_catalog']);
    expect(res.functionSchemas('my_fn')).toEqual(['a', 'b']);
    expect(res.pathSchemas()).toEqual(['a', 'b']);
  });
});

describe('settings', () => {
  it('admin unless ordinary', () => {
    expect(judgeSet({ kind: 'VAR_SET_VALUE', name: 'work_mem' }).admin).toBe(false);
    expect(judgeSet({ kind: 'VAR_SET_VALUE', name: 'session_replication_role' }).admin).toBe(true);
    expect(judgeSet({ kind: 'VAR_SET_CURRENT', name: 'work_mem' }).admin).toBe(true);
    expect(judgeSet({ kind: 'VAR_SET_MULTI', name: 'SOMETHING NEW' }).admin).toBe(true);
  });
});

describe('reasons', () => {
  it('keep only safe characters', () => {
    expect(safeReason("node Foo'; DROP TABLE x; -- \u0000\n")).toBe('node Foo DROP TABLE x -- ');
    expect(safeReason('x'.repeat(500))).toHaveLength(120);
  });
});
