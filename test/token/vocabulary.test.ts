import { describe, expect, it } from 'vitest';
import { candidatePatterns, covers, parseResource } from '../../src/token/vocabulary.ts';

describe('resource grammar', () => {
  it('accepts the DESIGN.md forms', () => {
    for (const r of ['pg:appdb/public.orders', 'pg:appdb/public.*', 'http:billing/invoices/', 'aws:reports-role/s3:reports-bucket/2026/', '*', 'pg:*']) {
      expect(() => parseResource(r)).not.toThrow();
    }
  });
  it.each(['', 'orders', 'pg:app db/x', 'pg:appdb/pub lic', 'pg:appdb/a*b', 'ftp:x/y', 'pg:appdb/x\\y'])('rejects %j', (r) => {
    expect(() => parseResource(r)).toThrow(TypeError);
  });
  it('accepts quoted identifiers', () => {
    expect(parseResource('pg:appdb/public."Orders"').pattern).toBe('pg:appdb/public."Orders"');
  });
  it('covers exact and trailing-star prefixes only', () => {
    expect(covers('pg:appdb/public.*', 'pg:appdb/public.orders')).toBe(true);
    expect(covers('pg:appdb/public.orders', 'pg:appdb/public.orders')).toBe(true);
    expect(covers('pg:appdb/public.orders', 'pg:appdb/public.orders2')).toBe(false);
    expect(covers('pg:appdb/public.*', 'pg:appdb/private.orders')).toBe(false);
    expect(covers('*', 'http:billing/x')).toBe(true);
  });
  it('lists every wildcard that could grant a resource', () => {
    expect(candidatePatterns('pg:appdb/public.orders').sort()).toEqual(
      ['*', 'pg:*', 'pg:appdb/*', 'pg:appdb/public.*', 'pg:appdb/public.orders'].sort(),
    );
    expect(candidatePatterns('http:billing/invoices/2026/x')).toContain('http:billing/invoices/*');
    expect(candidatePatterns('http:billing/invoices/2026/x')).toContain('http:billing/invoices/2026/*');
  });
});
