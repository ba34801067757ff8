/**
 * Small constructors for the block model, so callers write `str('x')` instead of `{ string: 'x' }`
 * and build expressions as trees instead of op stacks.
 *
 * @example
 * // check if resource($r), $r.starts_with("pg:appdb/public.")
 * const c = checkIf(query([pred('resource', variable('r'))], binary('prefix', variable('r'), str('pg:appdb/public.'))));
 */
import type { BinaryKind, Check, Expression, Predicate, Query, Scope, Term, UnaryKind } from './model.ts';

/** A string term. */
export const str = (s: string): Term => ({ string: s });
/** An integer term (i64). */
export const int = (n: bigint | number): Term => ({ integer: BigInt(n) });
/** A date term (whole seconds). */
export const date = (d: Date): Term => ({ date: d });
/** A boolean term. */
export const bool = (b: boolean): Term => ({ bool: b });
/** A byte-string term. */
export const bytes = (b: Uint8Array): Term => ({ bytes: b });
/** A variable, `$name`. */
export const variable = (name: string): Term => ({ variable: name });
/** A set term (one element type, no variables). */
export const set = (...terms: Term[]): Term => ({ set: terms });

/** `name(terms…)`. */
export const pred = (name: string, ...terms: Term[]): Predicate => ({ name, terms });

/** An operand: a term, or an expression built with `binary`/`unary`. */
export type Operand = Term | Expression;

function ops(o: Operand): Expression {
  return Array.isArray(o) ? o : [{ value: o as Term }];
}

/** `left <op> right` (or `left.method(right)`) as an op stack. */
export function binary(kind: BinaryKind, left: Operand, right: Operand): Expression {
  return [...ops(left), ...ops(right), { binary: kind }];
}

/** `!x`, `(x)`, `x.length()`, … as an op stack. */
export function unary(kind: UnaryKind, operand: Operand): Expression {
  return [...ops(operand), { unary: kind }];
}

/** One query of a check: predicates, expressions, optional scopes. */
export function query(body: Predicate[], ...expressions: Expression[]): Query {
  return { body, expressions, scopes: [] };
}

/** The same query trusting `scopes`. */
export function trusting(q: Query, ...scopes: Scope[]): Query {
  return { ...q, scopes };
}

/** `check if q1 or q2 …`. */
export const checkIf = (...queries: Query[]): Check => ({ kind: 'if', queries });
/** `check all q1 or q2 …`. */
export const checkAll = (...queries: Query[]): Check => ({ kind: 'all', queries });
