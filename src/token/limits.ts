/**
 * Structural bounds on the blocks a token holder may append. biscuit-wasm's run limits are not
 * enforced inside a join (and `authorize` retries a RunLimit), so a 2 KB block with 100 facts and a
 * three-way join check froze the broker and proxy for seconds per statement. These bounds are checked
 * on the decoded blocks BEFORE any Datalog runs, so the cost of authorizing any admitted token is small
 * and predictable. The authority block is minted by the broker and is not bounded here.
 *
 * DESIGN.md's vocabulary needs far less than these: an attenuation block has 1–2 facts, no rules,
 * up to 3 checks, one predicate per body, one 3-op expression per body.
 */
import type { DecodedBlock, DecodedToken, Expression, Op, Predicate, Query, Rule } from './wire/index.ts';

/** Largest token (base64 text) accepted at all; a 4-link token is ~1.5 KB. */
export const MAX_TOKEN_BYTES = 16 * 1024;
/** Blocks per token, authority included: a 15-link delegation chain. */
export const MAX_BLOCKS = 16;
/** Facts per non-authority block (the vocabulary uses `delegated_to` and `purpose`). */
export const MAX_BLOCK_FACTS = 8;
/** Rules per non-authority block (the vocabulary uses none). */
export const MAX_BLOCK_RULES = 2;
/** Checks per non-authority block (the vocabulary uses resource, operation and expiry). */
export const MAX_BLOCK_CHECKS = 8;
/** `or` alternatives per check (attenuate() writes one per resource prefix, plus one for exact names). */
export const MAX_CHECK_QUERIES = 16;
/** Predicates per rule or check body: the size of a join (the vocabulary's forms have 1). */
export const MAX_BODY_PREDICATES = 2;
/** Expressions per rule or check body (the vocabulary's forms have 1). */
export const MAX_BODY_EXPRESSIONS = 4;
/** Ops per expression, closures included (`$t <= 2026-…` is 3). */
export const MAX_EXPRESSION_OPS = 32;
/** Nesting depth of an expression tree (`$t <= 2026-…` is 2). */
export const MAX_EXPRESSION_DEPTH = 8;

/** Every bound by name, for documentation and error messages. */
export const TOKEN_LIMITS = {
  MAX_TOKEN_BYTES,
  MAX_BLOCKS,
  MAX_BLOCK_FACTS,
  MAX_BLOCK_RULES,
  MAX_BLOCK_CHECKS,
  MAX_CHECK_QUERIES,
  MAX_BODY_PREDICATES,
  MAX_BODY_EXPRESSIONS,
  MAX_EXPRESSION_OPS,
  MAX_EXPRESSION_DEPTH,
} as const;

export type TokenLimit = keyof typeof TOKEN_LIMITS;

/** Which bound a token exceeds, and where. */
export interface LimitExceeded {
  limit: TokenLimit;
  message: string;
}

/** The first bound `token` exceeds, or undefined. `textLength` is the token's base64 length, if known. */
export function exceededLimit(token: DecodedToken, textLength?: number): LimitExceeded | undefined {
  if (textLength !== undefined && textLength > MAX_TOKEN_BYTES) {
    return over('MAX_TOKEN_BYTES', `token is ${textLength} bytes`);
  }
  if (token.blocks.length > MAX_BLOCKS) return over('MAX_BLOCKS', `token has ${token.blocks.length} blocks`);
  for (const block of token.blocks.slice(1)) {
    const found = blockExceeds(block);
    if (found) return found;
  }
  return undefined;
}

function over(limit: TokenLimit, what: string): LimitExceeded {
  return { limit, message: `${what}, more than ${limit}=${TOKEN_LIMITS[limit]}` };
}

function blockExceeds(block: DecodedBlock): LimitExceeded | undefined {
  const at = `block ${block.index}`;
  if (block.facts.length > MAX_BLOCK_FACTS) return over('MAX_BLOCK_FACTS', `${at} has ${block.facts.length} facts`);
  if (block.rules.length > MAX_BLOCK_RULES) return over('MAX_BLOCK_RULES', `${at} has ${block.rules.length} rules`);
  if (block.checks.length > MAX_BLOCK_CHECKS) return over('MAX_BLOCK_CHECKS', `${at} has ${block.checks.length} checks`);
  for (const [i, rule] of block.rules.entries()) {
    const found = bodyExceeds(rule, `${at} rule ${i}`);
    if (found) return found;
  }
  for (const [i, check] of block.checks.entries()) {
    if (check.queries.length > MAX_CHECK_QUERIES) {
      return over('MAX_CHECK_QUERIES', `${at} check ${i} has ${check.queries.length} alternatives`);
    }
    for (const q of check.queries) {
      const found = bodyExceeds(q, `${at} check ${i}`);
      if (found) return found;
    }
  }
  return undefined;
}

function bodyExceeds(body: Query | Rule, at: string): LimitExceeded | undefined {
  const predicates: readonly Predicate[] = body.body;
  if (predicates.length > MAX_BODY_PREDICATES) return over('MAX_BODY_PREDICATES', `${at} joins ${predicates.length} predicates`);
  if (body.expressions.length > MAX_BODY_EXPRESSIONS) {
    return over('MAX_BODY_EXPRESSIONS', `${at} has ${body.expressions.length} expressions`);
  }
  for (const e of body.expressions) {
    const ops = opCount(e);
    if (ops > MAX_EXPRESSION_OPS) return over('MAX_EXPRESSION_OPS', `${at} has an expression of ${ops} ops`);
    const depth = expressionDepth(e);
    if (depth > MAX_EXPRESSION_DEPTH) return over('MAX_EXPRESSION_DEPTH', `${at} has an expression nested ${depth} deep`);
  }
  return undefined;
}

function opCount(e: Expression): number {
  return e.reduce((n, op) => n + 1 + ('closure' in op ? opCount(op.closure.ops) : 0), 0);
}

/**
 * Depth of the tree an op stack builds, without building it (and without trusting the stack to be
 * well-formed: biscuit-wasm refuses malformed stacks when it parses the token).
 */
function expressionDepth(e: Expression): number {
  const stack: number[] = [];
  let max = 0;
  for (const op of e) {
    const d = opDepth(op, stack);
    stack.push(d);
    if (d > max) max = d;
  }
  return max;
}

function opDepth(op: Op, stack: number[]): number {
  if ('value' in op) return 1;
  if ('closure' in op) return 1 + expressionDepth(op.closure.ops);
  if ('unary' in op) return 1 + (stack.pop() ?? 0);
  const right = stack.pop() ?? 0;
  const left = stack.pop() ?? 0;
  return 1 + Math.max(left, right);
}
