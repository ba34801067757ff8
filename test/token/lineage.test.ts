/**
 * Lineage reads the vocabulary EXACTLY (DESIGN.md rule 9): anything that is not precisely one of its
 * forms is opaque and makes the view approximate, because the proxy caches decisions of exact tokens
 * until the lineage expiry — a half-read check (e.g. `$t <= FAR && $t <= NEAR` read as FAR) would let a
 * cached allow outlive NEAR.
 */
import { describe, expect, it } from 'vitest';
import { attenuate } from '../../src/token/attenuate.ts';
import { effectiveRights, readLineage } from '../../src/token/lineage.ts';
import { dateParam } from '../../src/token/terms.ts';
import { appendBlock, binary, checkIf, date, decodeToken, pred, query, set, SCHEMA_VERSION, str, variable, type BlockModel } from '../../src/token/wire/index.ts';
import { allowed, appendDatalog, NOW, ORDERS, rootToken } from './fixtures.ts';

const root = rootToken();
const NEAR = dateParam(new Date(NOW.getTime() + 60_000)).date;
const FAR = dateParam(new Date(NOW.getTime() + 1800_000)).date;


const view = (token: string) => ({ link: readLineage(decodeToken(token))[1]!, effective: effectiveRights(decodeToken(token)) });

describe('lineage reads only exact vocabulary forms', () => {
  it('does not read `$t <= FAR && $t <= NEAR` as expiring at FAR: approximate, and the engine stops at NEAR', () => {
    const child = appendDatalog(root, `delegated_to("h"); check if time($t), $t <= ${FAR} && $t <= ${NEAR};`);
    const { link, effective } = view(child);
    expect(link.expiresAt).toBeUndefined();
    expect(link.opaque).toEqual([expect.stringContaining('&&')]);
    expect(effective.approximate).toBe(true);
    expect(effective.expiresAt).not.toBe(new Date(FAR).toISOString());
    expect(allowed(child, ORDERS, 'read', new Date(NOW.getTime() + 59_000))).toBe(true);
    expect(allowed(child, ORDERS, 'read', new Date(NOW.getTime() + 61_000))).toBe(false);
  });

  // every shape below is enforced differently from (or more narrowly than) what a loose reader sees
  it.each([
    ['a longer expression', `check if time($t), $t <= ${FAR} || false;`],
    ['a strict comparison', `check if time($t), $t < ${FAR};`],
    ['reversed operands', `check if time($t), ${FAR} >= $t;`],
    ['two expressions', `check if time($t), $t <= ${FAR}, $t <= ${NEAR};`],
    ['an extra body predicate', `check if time($t), delegated_to($d), $t <= ${FAR};`],
    ['a query scope', `check if time($t), $t <= ${FAR} trusting previous;`],
    ['alternatives on time', `check if time($t), $t <= ${FAR} or time($t), $t <= ${NEAR};`],
    ['check all', `check all time($t), $t <= ${FAR};`],
    ['a resource set with an extra op', `check if resource($r), ["${ORDERS}"].contains($r) || true;`],
    ['a resource literal holding *', `check if resource($r), ["pg:appdb/public.*"].contains($r);`],
    ['a resource check on a constant', `check if resource("${ORDERS}");`],
    ['a resource check with a second predicate', `check if resource($r), delegated_to($d), ["${ORDERS}"].contains($r);`],
    ['an operation prefix', `check if operation($op), $op.starts_with("re");`],
    ['a rule', `custom($x) <- delegated_to($x);`],
    ['a fact outside the vocabulary', `note("hi");`],
    ['a repeated lineage fact', `delegated_to("someone-else");`],
    ['a lineage fact of another type', `purpose(42);`],
  ])('%s is opaque and makes the view approximate', (_what, code) => {
    const { link, effective } = view(appendDatalog(root, `delegated_to("h"); ${code}`));
    expect(link.opaque?.length).toBeGreaterThan(0);
    expect(effective.approximate).toBe(true);
    expect(link.delegatedTo).toBe('h');
  });

  it('a block-level scope is opaque', () => {
    const block: BlockModel = {
      facts: [pred('delegated_to', str('h'))],
      scopes: ['previous'],
      checks: [checkIf(query([pred('resource', variable('r'))], binary('contains', set(str(ORDERS)), variable('r'))))],
    };
    const { link, effective } = view(appendBlock(root, block));
    expect(link.opaque).toEqual(['trusting previous;']);
    expect(effective.approximate).toBe(true);
  });

  it('`reject if` (Datalog v3.3) is opaque', () => {
    const block: BlockModel = {
      facts: [pred('delegated_to', str('h'))],
      checks: [{ kind: 'reject', queries: [query([pred('time', variable('t'))], binary('greaterThan', variable('t'), date(new Date(FAR))))] }],
    };
    const { link, effective } = view(appendBlock(root, block, { maxVersion: SCHEMA_VERSION.V3_3 }));
    expect(link.expiresAt).toBeUndefined();
    expect(link.opaque).toEqual([expect.stringMatching(/^reject if/)]);
    expect(effective.approximate).toBe(true);
  });

  it('intersects two resource checks of one block as the engine does (prefix ∩ exact = exact)', () => {
    const child = appendBlock(root, {
      facts: [pred('delegated_to', str('h'))],
      checks: [
        checkIf(query([pred('resource', variable('r'))], binary('prefix', variable('r'), str('pg:appdb/public.')))),
        checkIf(query([pred('resource', variable('r'))], binary('contains', set(str(ORDERS)), variable('r')))),
      ],
    });
    const { link, effective } = view(child);
    expect(link.resources).toEqual([ORDERS]);
    expect(effective).toMatchObject({ resources: [ORDERS], approximate: false });
    expect(allowed(child, ORDERS, 'read')).toBe(true);
    expect(allowed(child, 'pg:appdb/public.customers', 'read')).toBe(false);
  });

  it('reads the blocks attenuate() writes exactly (not approximate)', () => {
    const child = attenuate(root, { resources: [ORDERS, 'pg:appdb/public.audit_*'], operations: ['read'], ttl: 60, delegateTo: 'h', purpose: 'p', now: NOW });
    const { link, effective } = view(child);
    expect(link).toMatchObject({ delegatedTo: 'h', purpose: 'p', resources: [ORDERS, 'pg:appdb/public.audit_*'], operations: ['read'], expiresAt: NEAR });
    expect(link.opaque).toBeUndefined();
    expect(effective.approximate).toBe(false);
  });
});
