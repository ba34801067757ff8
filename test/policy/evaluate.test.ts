import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluatePolicy } from '../../src/policy/evaluate.ts';
import { parsePolicy } from '../../src/policy/load.ts';
import { BatonError } from '../../src/errors.ts';

const dev = parsePolicy(readFileSync(new URL('../../config/dev-policy.yaml', import.meta.url), 'utf8'));
const who = (groups: string[]) => ({ issuer: 'https://idp', subject: 'alice', groups });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as BatonError).code;
  }
  return undefined;
}

describe('grant policy', () => {
  it('grants analysts read on the public schema', () => {
    const g = evaluatePolicy(dev, who(['analysts']));
    expect(g.rights).toEqual([{ resource: 'pg:appdb/public.*', operation: 'read' }]);
    expect(g.roles).toEqual([]);
  });
  it('gives admins every operation everywhere plus the admin and approver roles', () => {
    const g = evaluatePolicy(dev, who(['admins']));
    expect(g.rights).toEqual([{ resource: '*', operation: '*' }]);
    expect(g.roles).toEqual(['admin', 'approver']);
  });
  it('the seeded dev policy masks customers.email and card_number and holds unqualified DELETE/UPDATE and TRUNCATE', () => {
    expect(dev.masking.rules).toEqual([{ resources: ['pg:appdb/public.customers'], columns: { email: 'email-domain', card_number: 'last4' } }]);
    expect(dev.approvals.rules.map((r) => r.when)).toEqual(['delete-without-where', 'update-without-where', 'truncate']);
    expect(dev.approvals.ttl).toBe(900);
  });
  it('denies when no rule matches', () => {
    expect(codeOf(() => evaluatePolicy(dev, who(['visitors'])))).toBe('BATON_ERR_POLICY_NO_MATCH');
  });
  it('narrows to a requested resource and scope', () => {
    const g = evaluatePolicy(dev, who(['engineers']), { targets: ['pg:appdb/public.orders'], operations: ['read', 'insert'] });
    expect(g.rights).toEqual([
      { resource: 'pg:appdb/public.orders', operation: 'read' },
      { resource: 'pg:appdb/public.orders', operation: 'insert' },
    ]);
  });
  it('keeps rights under a bare upstream audience', () => {
    expect(evaluatePolicy(dev, who(['analysts']), { targets: ['appdb'] }).rights).toHaveLength(1);
    expect(codeOf(() => evaluatePolicy(dev, who(['analysts']), { targets: ['otherdb'] }))).toBe('BATON_ERR_POLICY_INVALID_TARGET');
  });
  it('refuses a target or scope outside the grant', () => {
    expect(codeOf(() => evaluatePolicy(dev, who(['analysts']), { targets: ['pg:appdb/private.t'] }))).toBe('BATON_ERR_POLICY_INVALID_TARGET');
    expect(codeOf(() => evaluatePolicy(dev, who(['analysts']), { operations: ['delete'] }))).toBe('BATON_ERR_POLICY_INVALID_SCOPE');
  });
  it('clamps a requested lifetime to the maximum, and uses the default otherwise', () => {
    expect(evaluatePolicy(dev, who(['analysts']), { ttlSeconds: 10 * 3600 }).ttlSeconds).toBe(3600);
    expect(evaluatePolicy(dev, who(['analysts']), { ttlSeconds: 60 }).ttlSeconds).toBe(60);
    expect(evaluatePolicy(dev, who(['analysts'])).ttlSeconds).toBe(900);
  });
  it('uses the strictest max_ttl when several rules match', () => {
    const p = parsePolicy(`rules:
  - { name: a, match: { groups: [x] }, grants: [{ resources: ["pg:a/*"], operations: [read] }], max_ttl: 1h }
  - { name: b, match: { groups: [y] }, grants: [{ resources: ["pg:b/*"], operations: [read] }], max_ttl: 5m }`);
    const g = evaluatePolicy(p, who(['x', 'y']), { ttlSeconds: 3600 });
    expect(g.ttlSeconds).toBe(300);
    expect(g.rights.map((r) => r.resource)).toEqual(['pg:a/*', 'pg:b/*']);
  });
  it('rejects a bad policy file with a clear error', () => {
    expect(() => parsePolicy('rules: []')).toThrow(/invalid grant policy/);
    expect(() => parsePolicy('rules:\n  - { name: a, grants: [{ resources: ["orders"], operations: [read] }] }')).toThrow(/resource like/);
    expect(() => parsePolicy('rules:\n  - { name: a, grants: [{ resources: ["pg:a/*"], operations: [fly] }] }')).toThrow(/unknown operation/);
    expect(() => parsePolicy('rules:\n  - { name: a, typo: 1, grants: [{ resources: ["pg:a/*"], operations: [read] }] }')).toThrow(/typo/);
    expect(() => parsePolicy('{ not yaml')).toThrow(/not valid YAML/);
  });
});
