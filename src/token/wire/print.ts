/**
 * Block model → Biscuit Datalog source text in the current grammar (Datalog v3.3, biscuit-rust 6), escaped
 * so it parses back to the same values.
 *
 * The syntax is the one the specification's conformance samples print (`token[].code` in
 * `samples/current/samples.json`), whatever the block's version: sets `{1, 2}` (empty `{,}`), arrays
 * `[…]`, maps `{"k": v}`, strict equality `===`/`!==` (wire `Equal`/`NotEqual`, the only equality of
 * blocks before v3.3), lenient `==`/`!=` (`HeterogeneousEqual`/`HeterogeneousNotEqual`), `.try_or(…)`.
 * Pre-3.3 parsers (biscuit-wasm 0.5) read `[…]` as a set and `==` as strict equality, and do not read
 * `===`; see docs/biscuit-conformance.md.
 *
 * biscuit-wasm's `getBlockSource` prints strings between quotes without escaping them, so a string such
 * as `x"); right("y` reads back as two facts. Here a string escapes `\` and `"` and writes a newline as
 * `\n` (the only escapes the biscuit-parser grammar knows; every other character, tabs and CR included,
 * is legal inside quotes). Names that the grammar cannot spell (predicates, variables) are refused
 * rather than printed: text that parses differently from the token would be worse than no text. For
 * the same reason the eager `And`/`Or` of pre-3.3 blocks print as `&&`/`||` (which a v3.3 parser reads
 * as their lazy twins: the same value, except that an error on the right goes unnoticed when the left
 * decides) and not as biscuit-rust's `&&!`/`||!`, which no grammar reads (`a &&! b` is `a && !b`).
 *
 * Operator precedence follows biscuit-parser and the specification (`||` < `&&` < comparisons < `^` <
 * `|` < `&` < `+ -` < `* /` < `!` < methods); parentheses are added only where the tree needs them, so
 * a block written by a parser (whose `parens` ops print as written) prints as biscuit-rust prints it.
 *
 * @see https://github.com/eclipse-biscuit/biscuit-rust/blob/main/biscuit-parser/src/parser.rs
 * @see https://github.com/eclipse-biscuit/biscuit-rust/blob/main/biscuit-auth/src/datalog/expression.rs
 */
import { BatonError } from '../../errors.ts';
import { expressionTree, ExpressionShapeError, type ExprNode } from './expression.ts';
import {
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

function term(t: Term): string {
  if ('variable' in t) return `$${name(t.variable, 'variable')}`;
  if ('integer' in t) return t.integer.toString();
  if ('string' in t) return quoteString(t.string);
  if ('date' in t) return dateText(t.date);
  if ('bytes' in t) {
    if (t.bytes.length === 0) throw new Unprintable('an empty byte string has no Datalog form');
    return `hex:${hex(t.bytes)}`;
  }
  if ('bool' in t) return t.bool ? 'true' : 'false';
  // `{}` is the empty map, so the empty set is `{,}`.
  if ('set' in t) return t.set.length === 0 ? '{,}' : `{${t.set.map(term).join(', ')}}`;
  if ('null' in t) return 'null';
  if ('array' in t) return `[${t.array.map(term).join(', ')}]`;
  const entries = t.map.map(
    (e) => `${typeof e.key === 'string' ? quoteString(e.key) : e.key.toString()}: ${term(e.value)}`,
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

function infixSymbol(op: BinaryKind): string {
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
      return '===';
    case 'notEqual':
      return '!==';
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
  render(n: ExprNode, depth = 0): string {
    if (depth > MAX_DEPTH) throw new Unprintable('expression nested too deeply');
    const next = depth + 1;
    switch (n.kind) {
      case 'value':
        return term(n.term);
      case 'closure':
        throw new Unprintable('a closure outside all/any/&&/||/try_or');
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
    if (n.op === 'tryOr') {
      // The receiver is evaluated in a parameterless closure: its error selects the argument (v3.3).
      return `${this.atom(this.closureBody(n.left, 0), next)}.try_or(${this.render(n.right, next)})`;
    }
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
      return c < lvl || (c === lvl && (isRight || lvl === COMPARISON));
    };
    const l = this.render(n.left, next);
    const r = this.render(right, next);
    return `${grouped(n.left, false) ? `(${l})` : l} ${infixSymbol(n.op)} ${grouped(right, true) ? `(${r})` : r}`;
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

function predicate(p: Predicate): string {
  return `${name(p.name, 'predicate')}(${p.terms.map(term).join(', ')})`;
}

function scopeText(s: Scope): string {
  return typeof s === 'string' ? s : keyText(s.publicKey);
}

function body(q: Query): string {
  const printer = new ExprPrinter();
  const parts = [
    ...q.body.map(predicate),
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

function rule(r: Rule): string {
  return `${predicate(r.head)} <- ${body(r)}`;
}

function check(c: Check): string {
  const keyword = { if: 'check if', all: 'check all', reject: 'reject if' }[c.kind];
  if (c.queries.length === 0) throw new Unprintable('a check without queries');
  return `${keyword} ${c.queries.map(body).join(' or ')}`;
}

/**
 * Renders a block as Biscuit Datalog (facts, rules, checks; one statement per line, each ending in `;`),
 * in the layout of biscuit-rust's `print_source` but with strings escaped.
 *
 * @param block a decoded block or a `BlockModel` (printed the same whatever its version).
 * @throws BatonError `BATON_ERR_TOKEN_MALFORMED` when the block holds something Datalog cannot spell
 *   (e.g. a predicate name with a quote in it): such a block can only come from a forged token.
 *
 * @example
 * blockToDatalog({ facts: [{ name: 'purpose', terms: [{ string: 'say "hi"' }] }] });
 * // 'purpose("say \\"hi\\"");\n'
 */
export function blockToDatalog(block: BlockModel): string {
  const facts = block.facts ?? [];
  const rules = block.rules ?? [];
  const checks = block.checks ?? [];
  const scopes = block.scopes ?? [];
  try {
    const lines = [
      ...(scopes.length > 0 ? [`trusting ${scopes.map(scopeText).join(', ')}`] : []),
      ...facts.map(predicate),
      ...rules.map(rule),
      ...checks.map(check),
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
