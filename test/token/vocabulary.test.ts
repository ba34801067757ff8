import { describe, expect, it } from 'vitest';
import { attenuate } from '../../src/token/attenuate.ts';
import { effectiveRights } from '../../src/token/lineage.ts';
import { decodeToken } from '../../src/token/wire/index.ts';
import { candidatePatterns, covers, parseResource } from '../../src/token/vocabulary.ts';
import { allowed, NOW, refusal, rootToken } from './fixtures.ts';

describe('resource grammar', () => {
  it('accepts the DESIGN.md forms', () => {
    for (const r of ['pg:appdb/public.orders', 'pg:appdb/public.*', 'http:billing/invoices/', 'mcp:tools/search_orders', 'mcp:tools/', 'k8s:prod/team-a/pods:exec/web-1', 'aws:reports-role/s3:reports-bucket/2026/', '*', 'pg:*']) {
      expect(() => parseResource(r)).not.toThrow();
    }
  });
  it.each(['', 'orders', 'pg:app db/x', 'pg:appdb/pub lic', 'pg:appdb/a*b', 'ftp:x/y', 'pg:appdb/x\\y'])('rejects %j', (r) => {
    expect(() => parseResource(r)).toThrow(TypeError);
  });
  it('accepts quoted identifiers', () => {
    expect(parseResource('pg:appdb/public."Orders"').pattern).toBe('pg:appdb/public."Orders"');
  });
  it('covers exact patterns, trailing-star prefixes and trailing-slash directories', () => {
    expect(covers('pg:appdb/public.*', 'pg:appdb/public.orders')).toBe(true);
    expect(covers('pg:appdb/public.orders', 'pg:appdb/public.orders')).toBe(true);
    expect(covers('pg:appdb/public.orders', 'pg:appdb/public.orders2')).toBe(false);
    expect(covers('pg:appdb/public.*', 'pg:appdb/private.orders')).toBe(false);
    expect(covers('*', 'http:billing/x')).toBe(true);
    // a directory covers the path it names, with or without the slash, and everything below it
    expect(covers('http:billing/invoices/', 'http:billing/invoices')).toBe(true);
    expect(covers('http:billing/invoices/', 'http:billing/invoices/7')).toBe(true);
    expect(covers('http:billing/invoices/', 'http:billing/invoices/7/lines/')).toBe(true);
    expect(covers('http:billing/invoices/', 'http:billing/invoices/*')).toBe(true);
    expect(covers('http:billing/invoices/', 'http:billing/invoices-archive')).toBe(false);
    expect(covers('http:billing/invoices/', 'http:billing/invoices*')).toBe(false);
    expect(covers('http:billing/invoices/', 'http:billing/')).toBe(false);
    expect(covers('http:billing/invoices', 'http:billing/invoices/7')).toBe(false);
  });
  it('lists every wildcard that could grant a resource', () => {
    expect(candidatePatterns('pg:appdb/public.orders').sort()).toEqual(
      ['*', 'pg:*', 'pg:appdb/*', 'pg:appdb/', 'pg:appdb/public.*', 'pg:appdb/public.orders', 'pg:appdb/public.orders/'].sort(),
    );
    expect(candidatePatterns('http:billing/invoices/7')).toEqual(expect.arrayContaining(['http:billing/', 'http:billing/invoices/', 'http:billing/invoices/7/']));
    expect(candidatePatterns('http:billing/invoices/7')).not.toContain('http:billing/invoices');
    expect(candidatePatterns('http:billing/invoices/2026/x')).toContain('http:billing/invoices/*');
    expect(candidatePatterns('http:billing/invoices/2026/x')).toContain('http:billing/invoices/2026/*');
  });
});

describe('directory patterns end to end (biscuit authorizer)', () => {
  const root = rootToken([
    { resource: 'http:billing/', operation: 'read' },
    { resource: 'http:billing/', operation: 'write' },
  ]);

  it('an authority right on http:billing/ grants every path of the upstream, and nothing beside it', () => {
    expect(allowed(root, 'http:billing/invoices', 'read')).toBe(true);
    expect(allowed(root, 'http:billing/a/b/c', 'write')).toBe(true);
    expect(allowed(root, 'http:billing2/invoices', 'read')).toBe(false);
    expect(allowed(root, 'http:billing/invoices', 'delete')).toBe(false);
  });

  it('a child narrowed to http:billing/invoices/ reaches /invoices and below, never a sibling', () => {
    const child = attenuate(root, { delegateTo: 'helper', resources: ['http:billing/invoices/'], operations: ['read'], now: NOW });
    expect(allowed(child, 'http:billing/invoices', 'read')).toBe(true);
    expect(allowed(child, 'http:billing/invoices/', 'read')).toBe(true);
    expect(allowed(child, 'http:billing/invoices/42', 'read')).toBe(true);
    expect(allowed(child, 'http:billing/invoices-archive', 'read')).toBe(false);
    expect(allowed(child, 'http:billing/customers', 'read')).toBe(false);
    expect(allowed(child, 'http:billing/invoices', 'write')).toBe(false);
    // the lineage reader shows the directory as written, and the effective right follows it
    expect(effectiveRights(decodeToken(child)).rights).toEqual([{ resource: 'http:billing/invoices/', operation: 'read' }]);
  });

  it('a grandchild can narrow a directory to one path but never widen it', () => {
    const child = attenuate(root, { delegateTo: 'helper', resources: ['http:billing/invoices/'], operations: ['read'], now: NOW });
    const one = attenuate(child, { delegateTo: 'helper-2', resources: ['http:billing/invoices/42'], now: NOW });
    expect(allowed(one, 'http:billing/invoices/42', 'read')).toBe(true);
    expect(allowed(one, 'http:billing/invoices/43', 'read')).toBe(false);
    expect(allowed(one, 'http:billing/invoices', 'read')).toBe(false);
    expect(refusal(() => attenuate(child, { delegateTo: 'x', resources: ['http:billing/'], now: NOW }))?.code).toBe('BATON_ERR_ATTENUATION_WIDENS');
  });
});
