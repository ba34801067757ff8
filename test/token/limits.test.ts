/**
 * Bounded authorization cost: the blocks a holder appends are bounded structurally BEFORE any Datalog
 * runs (biscuit-wasm does not enforce its time limit inside a join). The attack of the review — a 2 KB
 * block with 100 facts and a three-way join check — froze broker and proxy for seconds per statement.
 */
import { describe, expect, it } from 'vitest';
import { attenuate } from '../../src/token/attenuate.ts';
import { inspect } from '../../src/sdk/inspect.ts';
import {
  MAX_BLOCK_CHECKS,
  MAX_BLOCK_FACTS,
  MAX_BLOCK_RULES,
  MAX_BLOCKS,
  MAX_BODY_EXPRESSIONS,
  MAX_CHECK_QUERIES,
  MAX_EXPRESSION_DEPTH,
  MAX_EXPRESSION_OPS,
  MAX_TOKEN_BYTES,
} from '../../src/token/limits.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { appendBlock, binary, bool, checkIf, decodeToken, int, pred, query, str, variable, type BlockModel, type Check, type Expression } from '../../src/token/wire/index.ts';
import { allowed, NOW, ORDERS, refusal, ring, rootToken } from './fixtures.ts';

const root = rootToken();

/** The review's attack: 100 facts and a check joining them three ways (1 000 000 combinations). */
const ATTACK: BlockModel = {
  facts: [pred('delegated_to', str('helper')), ...Array.from({ length: 100 }, (_, i) => pred('n', int(i)))],
  checks: [
    checkIf(
      query(
        [pred('n', variable('a')), pred('n', variable('b')), pred('n', variable('c'))],
        binary('equal', binary('add', binary('add', variable('a'), variable('b')), variable('c')), int(-1)),
      ),
    ),
  ],
};

function timedRefusal(token: string): { code?: string; message?: string; ms: number } {
  const started = performance.now();
  const r = refusal(() => verifyToken(token, ring).biscuit.free());
  return { ...r, ms: performance.now() - started };
}

const fact = (i: number) => pred('note', int(i));
const simple = (body = [pred('delegated_to', variable('x'))], ...expressions: Expression[]) => checkIf(query(body, ...expressions));
/** `1 + 1 + … == n` with `adds` additions: 2·adds + 3 ops, nested adds + 1 deep. */
const sum = (adds: number): Expression => {
  let e: Expression = [{ value: int(1) }];
  for (let i = 0; i < adds; i++) e = binary('add', e, int(1));
  return binary('equal', e, int(adds + 1));
};

/** `true && true && …` with `leaves` operands as a balanced tree: 2·leaves − 1 ops, shallow. */
const wide = (leaves: number): Expression =>
  leaves === 1 ? [{ value: bool(true) }] : binary('and', wide(Math.floor(leaves / 2)), wide(leaves - Math.floor(leaves / 2)));

describe('structural bounds on appended blocks', () => {
  it('refuses the 100-fact, three-way-join block fast, naming the bound', () => {
    const attack = appendBlock(root, ATTACK);
    expect(attack.length).toBeLessThan(3000);
    const { code, message, ms } = timedRefusal(attack);
    expect(code).toBe('BATON_ERR_TOKEN_TOO_COMPLEX');
    expect(message).toMatch(/block 1 has 101 facts, more than MAX_BLOCK_FACTS=8/);
    expect(ms).toBeLessThan(50);
  });

  it('refuses the join on its own (few facts, three predicates), naming the bound', () => {
    const join = appendBlock(root, { ...ATTACK, facts: ATTACK.facts!.slice(0, 2) });
    const { code, message, ms } = timedRefusal(join);
    expect(code).toBe('BATON_ERR_TOKEN_TOO_COMPLEX');
    expect(message).toMatch(/block 1 check 0 joins 3 predicates, more than MAX_BODY_PREDICATES=2/);
    expect(ms).toBeLessThan(50);
  });

  it.each<[string, BlockModel]>([
    ['MAX_BLOCK_FACTS', { facts: Array.from({ length: MAX_BLOCK_FACTS + 1 }, (_, i) => fact(i)) }],
    ['MAX_BLOCK_RULES', { rules: Array.from({ length: MAX_BLOCK_RULES + 1 }, () => ({ head: pred('x', variable('y')), body: [pred('note', variable('y'))], expressions: [], scopes: [] })) }],
    ['MAX_BLOCK_CHECKS', { checks: Array.from({ length: MAX_BLOCK_CHECKS + 1 }, () => simple()) }],
    ['MAX_CHECK_QUERIES', { checks: [{ kind: 'if', queries: Array.from({ length: MAX_CHECK_QUERIES + 1 }, () => query([pred('delegated_to', variable('x'))])) } as Check] }],
    ['MAX_BODY_PREDICATES', { rules: [{ head: pred('x', variable('a')), body: [pred('note', variable('a')), pred('note', variable('b')), pred('note', variable('c'))], expressions: [], scopes: [] }] }],
    ['MAX_BODY_EXPRESSIONS', { checks: [simple(undefined, ...Array.from({ length: MAX_BODY_EXPRESSIONS + 1 }, () => sum(1)))] }],
    ['MAX_EXPRESSION_OPS', { checks: [simple(undefined, wide(32))] }],
    ['MAX_EXPRESSION_DEPTH', { checks: [simple(undefined, sum(MAX_EXPRESSION_DEPTH))] }],
  ])('refuses a block beyond %s, and names it', (limit, block) => {
    const token = appendBlock(root, block);
    const r = refusal(() => verifyToken(token, ring));
    expect(r?.code).toBe('BATON_ERR_TOKEN_TOO_COMPLEX');
    expect(r?.message).toContain(`more than ${limit}=`);
    // the SDK reports the same refusal: thrown with keys, flagged without
    expect(refusal(() => inspect(token, { publicKeys: ring }))).toEqual(r);
    expect(inspect(token).refusal).toEqual(r);
  });

  it('accepts a block at every bound', () => {
    const full: BlockModel = {
      facts: [pred('delegated_to', str('h')), ...Array.from({ length: MAX_BLOCK_FACTS - 1 }, (_, i) => fact(i))],
      rules: Array.from({ length: MAX_BLOCK_RULES }, () => ({ head: pred('x', variable('y')), body: [pred('note', variable('y')), pred('note', variable('z'))], expressions: [], scopes: [] })),
      checks: [
        ...Array.from({ length: MAX_BLOCK_CHECKS - 1 }, () => simple()),
        { kind: 'if', queries: Array.from({ length: MAX_CHECK_QUERIES }, () => query([pred('delegated_to', variable('x'))], ...Array.from({ length: MAX_BODY_EXPRESSIONS - 1 }, () => sum(MAX_EXPRESSION_DEPTH - 2)), wide(Math.floor((MAX_EXPRESSION_OPS + 1) / 2)))) },
      ],
    };
    const token = appendBlock(root, full);
    expect(refusal(() => verifyToken(token, ring).biscuit.free())).toBeUndefined();
    expect(allowed(token, ORDERS, 'read')).toBe(true);
  });

  it(`refuses more than MAX_BLOCKS=${MAX_BLOCKS} blocks, and attenuate() will not make one`, () => {
    let token = root;
    for (let i = 1; i < MAX_BLOCKS; i++) token = attenuate(token, { delegateTo: `h${i}`, now: NOW });
    expect(allowed(token, ORDERS, 'read')).toBe(true);
    const r = refusal(() => attenuate(token, { delegateTo: 'one-too-many', now: NOW }));
    expect(r).toEqual({ code: 'BATON_ERR_TOKEN_TOO_COMPLEX', message: `token refused: token has ${MAX_BLOCKS + 1} blocks, more than MAX_BLOCKS=${MAX_BLOCKS}` });
    const forced = appendBlock(token, { facts: [pred('delegated_to', str('forced'))] });
    expect(refusal(() => verifyToken(forced, ring))).toEqual(r);
  });

  it(`refuses tokens over MAX_TOKEN_BYTES=${MAX_TOKEN_BYTES}`, () => {
    const big = appendBlock(root, { facts: [pred('delegated_to', str('h')), pred('purpose', str('x'.repeat(MAX_TOKEN_BYTES)))] });
    const r = refusal(() => verifyToken(big, ring));
    expect(r?.code).toBe('BATON_ERR_TOKEN_TOO_COMPLEX');
    expect(r?.message).toMatch(/MAX_TOKEN_BYTES=16384/);
  });

  it('still accepts a normal 4-link attenuate() chain', () => {
    const a = attenuate(root, { resources: ['pg:appdb/public.*'], operations: ['read', 'insert'], ttl: '30m', delegateTo: 'helper', purpose: 'triage', now: NOW });
    const b = attenuate(a, { resources: [ORDERS, 'pg:appdb/public.audit_*'], operations: ['read'], ttl: '10m', delegateTo: 'grand-helper', now: NOW });
    const c = attenuate(b, { resources: [ORDERS], ttl: 60, delegateTo: 'great-grand-helper', purpose: 'count', now: NOW });
    expect(decodeToken(c).blocks).toHaveLength(4);
    expect(allowed(c, ORDERS, 'read')).toBe(true);
    expect(allowed(c, ORDERS, 'insert')).toBe(false);
    expect(allowed(c, 'pg:appdb/public.audit_notes', 'read')).toBe(false);
  });
});
