/**
 * Block model → Biscuit Datalog source text, escaped so it parses back to the same values.
 *
 * biscuit-wasm's `getBlockSource` prints strings between quotes without escaping them, so a string such
 * as `x"); right("y` reads back as two facts. Here a string escapes `\` and `"` and writes a newline as
 * `\n` (the only escapes the biscuit-parser grammar knows; every other character, tabs and CR included,
 * is legal inside quotes). Names that the grammar cannot spell (predicates, variables) are refused
 * rather than printed: text that parses differently from the token would be worse than no text.
 *
 * Operator precedence follows biscuit-parser (`||` < `&&` < comparisons < bitwise < `+ -` < `* /` < `!`
 * < methods); parentheses are added where the tree needs them, and the `parens` op prints as written.
 *
 * @see https://github.com/biscuit-auth/biscuit-rust/blob/main/biscuit-parser/src/parser.rs
 */
import { BatonError } from '../../errors.ts';
import { expressionTree, ExpressionShapeError, type ExprNode } from './expression.ts';
import {
  SCHEMA_VERSION,
  type BinaryKind,
  type BlockModel,
  type Check,
  type Predicate,
  type PublicKeyModel,
  type Query,
  type Rule,
  type Scope,
  type Term,
} from './model.ts';
import { requiredVersion } from './version.ts';

/** Names the grammar accepts for predicates, variables and FFI functions. */
export const NAME = /^[A-Za-z0-9_:]+$/;

/** Deepest expression tree we render (a hostile token could nest thousands of operators). */
const MAX_DEPTH = 256;

class Unprintable extends Error {
  override readonly name = 'Unprintable';
}

/** A Datalog string literal for `s`. */
export function quoteString(s: string): string {
  return `"${s.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`;
}

function name(n: string, what: string): string {
  if (!NAME.test(n)) throw new Unprintable(`${what} ${JSON.stringify(n)} cannot be written in Datalog`);
  return n;
}

/** RFC 3339 at whole seconds, as biscuit prints dates. */
function dateText(d: Date): string {
  const ms = d.getTime();
  if (!Number.isFinite(ms) || ms < 0) throw new Unprintable('date before 1970 or invalid');
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function keyText(k: PublicKeyModel): string {
  return `${k.algorithm}/${hex(k.bytes)}`;
}

/** Syntax that changed in Datalog v3.3: sets moved from `[…]` to `{…}`, and `==` became heterogeneous. */
interface Dialect {
  readonly v33: boolean;
}

function term(t: Term, d: Dialect): string {
  if ('variable' in t) return `$${name(t.variable, 'variable')}`;
  if ('integer' in t) return t.integer.toString();
  if ('string' in t) return quoteString(t.string);
  if ('date' in t) return dateText(t.date);
  if ('bytes' in t) {
    if (t.bytes.length === 0) throw new Unprintable('an empty byte string has no Datalog form');
    return `hex:${hex(t.bytes)}`;
  }
  if ('bool' in t) return t.bool ? 'true' : 'false';
  if ('set' in t) {
    const items = t.set.map((e) => term(e, d)).join(', ');
    return d.v33 ? `{${items}}` : `[${items}]`;
  }
  if ('null' in t) return 'null';
  if ('array' in t) return `[${t.array.map((e) => term(e, d)).join(', ')}]`;
  const entries = t.map.map(
    (e) => `${typeof e.key === 'string' ? quoteString(e.key) : e.key.toString()}: ${term(e.value, d)}`,
  );
  return `{${entries.join(', ')}}`;
}

/** Binding strength of infix operators (higher binds tighter). */
const LEVEL: Partial<Record<BinaryKind, number>> = {
  or: 1,
  lazyOr: 1,
  and: 2,
  lazyAnd: 2,
  lessThan: 3,
  greaterThan: 3,
  lessOrEqual: 3,
  greaterOrEqual: 3,
  equal: 3,
  notEqual: 3,
  heterogeneousEqual: 3,
  heterogeneousNotEqual: 3,
  bitwiseXor: 4,
  bitwiseOr: 5,
  bitwiseAnd: 6,
  add: 7,
  sub: 7,
  mul: 8,
  div: 8,
};
/** `!x` reads its operand at the `+ -` level: `!$a + 1` is `!($a + 1)`. Between `&` and `+`. */
const NEGATE_LEVEL = 6.5;
const ATOM = 10;
const COMPARISON = 3;
const BITWISE: ReadonlySet<BinaryKind> = new Set(['bitwiseAnd', 'bitwiseOr', 'bitwiseXor']);

const METHOD: Partial<Record<BinaryKind, string>> = {
  contains: 'contains',
  prefix: 'starts_with',
  suffix: 'ends_with',
  regex: 'matches',
  intersection: 'intersection',
  union: 'union',
  get: 'get',
  all: 'all',
  any: 'any',
};

function infixSymbol(op: BinaryKind, d: Dialect): string {
  switch (op) {
    case 'or':
    case 'lazyOr':
      return '||';
    case 'and':
    case 'lazyAnd':
      return '&&';
    case 'lessThan':
      return '<';
    case 'greaterThan':
      return '>';
    case 'lessOrEqual':
      return '<=';
    case 'greaterOrEqual':
      return '>=';
    case 'equal':
      return d.v33 ? '===' : '==';
    case 'notEqual':
      return d.v33 ? '!==' : '!=';
    case 'heterogeneousEqual':
      return '==';
    case 'heterogeneousNotEqual':
      return '!=';
    case 'bitwiseXor':
      return '^';
    case 'bitwiseOr':
      return '|';
    case 'bitwiseAnd':
      return '&';
    case 'add':
      return '+';
    case 'sub':
      return '-';
    case 'mul':
      return '*';
    default:
      return '/';
  }
}

function level(n: ExprNode): number {
  if (n.kind === 'unary') return n.op === 'negate' ? NEGATE_LEVEL : ATOM;
  if (n.kind === 'binary') return LEVEL[n.op] ?? ATOM;
  return ATOM;
}

class ExprPrinter {
  constructor(private readonly d: Dialect) {}

  render(n: ExprNode, depth = 0): string {
    if (depth > MAX_DEPTH) throw new Unprintable('expression nested too deeply');
    const next = depth + 1;
    switch (n.kind) {
      case 'value':
        return term(n.term, this.d);
      case 'closure':
        throw new Unprintable('a closure outside all/any/&&/||');
      case 'unary':
        switch (n.op) {
          case 'negate':
            return `!${this.atom(n.operand, next)}`;
          case 'parens':
            return `(${this.render(n.operand, next)})`;
          case 'length':
            return `${this.atom(n.operand, next)}.length()`;
          case 'typeOf':
            return `${this.atom(n.operand, next)}.type()`;
          case 'ffi':
            return `${this.atom(n.operand, next)}.extern::${name(n.ffiName ?? '', 'extern function')}()`;
        }
    }
    const method = n.op === 'ffi' ? `extern::${name(n.ffiName ?? '', 'extern function')}` : METHOD[n.op];
    if (method !== undefined) {
      const arg = n.op === 'all' || n.op === 'any' ? this.lambda(n.right, next) : this.render(n.right, next);
      return `${this.atom(n.left, next)}.${method}(${arg})`;
    }
    const lvl = LEVEL[n.op]!;
    // Lazy operators carry their right operand as a parameterless closure (v3.3).
    const right = n.op === 'lazyAnd' || n.op === 'lazyOr' ? this.closureBody(n.right, 0) : n.right;
    const grouped = (child: ExprNode, isRight: boolean): boolean => {
      const c = level(child);
      if (c === ATOM) return false;
      // Bitwise precedence moved between grammar versions: never rely on it.
      if (BITWISE.has(n.op) || (child.kind === 'binary' && BITWISE.has(child.op))) return true;
      return c < lvl || (c === lvl && (isRight || lvl === COMPARISON));
    };
    const l = this.render(n.left, next);
    const r = this.render(right, next);
    return `${grouped(n.left, false) ? `(${l})` : l} ${infixSymbol(n.op, this.d)} ${grouped(right, true) ? `(${r})` : r}`;
  }

  /** A receiver of a method or of `!`: bare only when it is a term, a method call or parenthesised. */
  private atom(n: ExprNode, depth: number): string {
    const s = this.render(n, depth);
    return level(n) === ATOM ? s : `(${s})`;
  }

  private closureBody(n: ExprNode, params: number): ExprNode {
    if (n.kind !== 'closure' || n.params.length !== params) {
      throw new Unprintable(`expected a closure with ${params} parameter(s)`);
    }
    return n.body;
  }

  private lambda(n: ExprNode, depth: number): string {
    const body = this.closureBody(n, 1);
    const param = n.kind === 'closure' ? n.params[0]! : '';
    return `$${name(param, 'variable')} -> ${this.render(body, depth)}`;
  }
}

function predicate(p: Predicate, d: Dialect): string {
  return `${name(p.name, 'predicate')}(${p.terms.map((t) => term(t, d)).join(', ')})`;
}

function scopeText(s: Scope): string {
  return typeof s === 'string' ? s : keyText(s.publicKey);
}

function body(q: Query, d: Dialect): string {
  const printer = new ExprPrinter(d);
  const parts = [
    ...q.body.map((p) => predicate(p, d)),
    ...q.expressions.map((e) => {
      try {
        return printer.render(expressionTree(e));
      } catch (err) {
        if (err instanceof ExpressionShapeError) throw new Unprintable(err.message);
        throw err;
      }
    }),
  ];
  if (parts.length === 0) throw new Unprintable('a rule or check body without predicates or expressions');
  const trusting = q.scopes.length > 0 ? ` trusting ${q.scopes.map(scopeText).join(', ')}` : '';
  return parts.join(', ') + trusting;
}

function rule(r: Rule, d: Dialect): string {
  return `${predicate(r.head, d)} <- ${body(r, d)}`;
}

function check(c: Check, d: Dialect): string {
  const keyword = { if: 'check if', all: 'check all', reject: 'reject if' }[c.kind];
  if (c.queries.length === 0) throw new Unprintable('a check without queries');
  return `${keyword} ${c.queries.map((q) => body(q, d)).join(' or ')}`;
}

/**
 * Renders a block as Biscuit Datalog (facts, rules, checks; one statement per line, each ending in `;`),
 * in the layout of biscuit-rust's `print_source` but with strings escaped.
 *
 * @param block a decoded block or a `BlockModel`; without `version`, the lowest version that fits.
 * @throws BatonError `BATON_ERR_TOKEN_MALFORMED` when the block holds something Datalog cannot spell
 *   (e.g. a predicate name with a quote in it): such a block can only come from a forged token.
 *
 * @example
 * blockToDatalog({ facts: [{ name: 'purpose', terms: [{ string: 'say "hi"' }] }] });
 * // 'purpose("say \\"hi\\"");\n'
 */
export function blockToDatalog(block: BlockModel & { readonly version?: number }): string {
  const facts = block.facts ?? [];
  const rules = block.rules ?? [];
  const checks = block.checks ?? [];
  const scopes = block.scopes ?? [];
  const version = block.version ?? requiredVersion({ facts, rules, checks, scopes, thirdParty: false });
  const d: Dialect = { v33: version >= SCHEMA_VERSION.V3_3 };
  try {
    const lines = [
      ...(scopes.length > 0 ? [`trusting ${scopes.map(scopeText).join(', ')}`] : []),
      ...facts.map((f) => predicate(f, d)),
      ...rules.map((r) => rule(r, d)),
      ...checks.map((c) => check(c, d)),
    ];
    return lines.map((l) => `${l};\n`).join('');
  } catch (err) {
    if (err instanceof Unprintable || err instanceof RangeError) {
      throw new BatonError('BATON_ERR_TOKEN_MALFORMED', `malformed token: ${err.message}`, {
        detail: err.message,
        cause: err,
      });
    }
    throw err;
  }
}
