/**
 * `BlockModel` → the serialized `Block` protobuf a new signed block carries.
 *
 * Symbols are interned as biscuit-rust's `BlockBuilder::build(symbols)` does: defaults and symbols the
 * token already has keep their index, only unknown strings become the block's `symbols` (so they are
 * disjoint from the token's table, which biscuit-rust checks as `SymbolTableOverlap`). The model is
 * validated first; a model that is not a valid block is a programming error and throws `TypeError`.
 */
import { expressionTree, ExpressionShapeError } from './expression.ts';
import { MAX_DATE_SECONDS } from './decode.ts';
import {
  BINARY_KINDS,
  CHECK_KINDS,
  UNARY_KINDS,
  wireNumbers,
  SCHEMA_VERSION,
  type BlockModel,
  type Check,
  type Expression,
  type Op,
  type Predicate,
  type PublicKeyModel,
  type Query,
  type Rule,
  type Scope,
  type Term,
} from './model.ts';
import { NAME } from './print.ts';
import { BlockMessage } from './schema.ts';
import { PublicKeyTable, SymbolTable } from './symbols.ts';
import { requiredVersion } from './version.ts';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const UNARY = wireNumbers(UNARY_KINDS);
const BINARY = wireNumbers(BINARY_KINDS);
const CHECK_KIND = wireNumbers(CHECK_KINDS);
const ALGORITHM = { ed25519: 0, secp256r1: 1 } as const;

function invalid(message: string): never {
  throw new TypeError(`invalid block: ${message}`);
}

function checkName(n: unknown, what: string): string {
  if (typeof n !== 'string' || !NAME.test(n)) invalid(`${what} ${JSON.stringify(n)} must match ${NAME}`);
  return n;
}

function checkText(s: unknown, what: string): string {
  // With the `u` flag a valid surrogate pair is one code point, so only lone surrogates match.
  if (typeof s !== 'string' || /\p{Surrogate}/u.test(s)) invalid(`${what} must be a well-formed string`);
  return s;
}

const utf8 = new TextEncoder();

/** Encodes terms, predicates, expressions and scopes against the token's tables. */
class BlockWriter {
  constructor(
    readonly symbols: SymbolTable,
    readonly keys: PublicKeyTable,
    readonly newKeys: PublicKeyModel[] = [],
  ) {}

  private sym(s: string): string {
    return String(this.symbols.insert(s));
  }

  term(t: Term, inSet = false): object {
    if (typeof t !== 'object' || t === null) invalid('a term must be an object');
    if ('variable' in t) {
      if (inSet) invalid('a set cannot hold a variable');
      return { variable: this.symbols.insert(checkName(t.variable, 'variable')) };
    }
    if ('integer' in t) {
      if (typeof t.integer !== 'bigint' || t.integer < I64_MIN || t.integer > I64_MAX) {
        invalid('an integer must be a bigint in the i64 range');
      }
      return { integer: t.integer.toString() };
    }
    if ('string' in t) return { string: this.sym(checkText(t.string, 'a string term')) };
    if ('date' in t) {
      const ms = t.date instanceof Date ? t.date.getTime() : NaN;
      const seconds = Math.floor(ms / 1000);
      if (!Number.isFinite(ms) || seconds < 0 || BigInt(seconds) > MAX_DATE_SECONDS) {
        invalid('a date must be a valid Date between 1970 and 9999');
      }
      return { date: String(seconds) };
    }
    if ('bytes' in t) {
      if (!(t.bytes instanceof Uint8Array) || t.bytes.length === 0) invalid('bytes must be a non-empty Uint8Array');
      return { bytes: t.bytes };
    }
    if ('bool' in t) {
      if (typeof t.bool !== 'boolean') invalid('bool must be a boolean');
      return { bool: t.bool };
    }
    if ('set' in t) {
      if (inSet) invalid('a set cannot hold a set');
      const kinds = new Set(t.set.map((e) => Object.keys(e)[0]));
      if (kinds.size > 1) invalid('set elements must have one type');
      return { set: { set: t.set.map((e) => this.term(e, true)) } };
    }
    if ('null' in t) return { null: {} };
    if ('array' in t) return { array: { array: t.array.map((e) => this.term(e)) } };
    if ('map' in t) {
      return {
        map: {
          entries: t.map.map((e) => ({
            key:
              typeof e.key === 'bigint'
                ? { integer: e.key.toString() }
                : { string: this.sym(checkText(e.key, 'a map key')) },
            value: this.term(e.value),
          })),
        },
      };
    }
    return invalid(`unknown term ${JSON.stringify(Object.keys(t))}`);
  }

  /** Facts hold no variables; the grammar spells neither a fact nor a body predicate without terms. */
  predicate(p: Predicate, role: 'fact' | 'head' | 'body'): object {
    const name = this.symbols.insert(checkName(p.name, 'predicate name'));
    if (role === 'fact' && p.terms.some((t) => 'variable' in t)) invalid(`fact ${p.name} holds a variable`);
    if (role !== 'head' && p.terms.length === 0) invalid(`${role} predicate ${p.name} has no terms`);
    return { name: String(name), terms: p.terms.map((t) => this.term(t)) };
  }

  op(o: Op): object {
    if ('value' in o) return { value: this.term(o.value) };
    if ('unary' in o) {
      const kind = UNARY[o.unary] ?? invalid(`unknown unary operator ${o.unary}`);
      return { unary: { kind, ...this.ffiName(o.unary === 'ffi', o.ffiName) } };
    }
    if ('binary' in o) {
      const kind = BINARY[o.binary] ?? invalid(`unknown binary operator ${o.binary}`);
      return { Binary: { kind, ...this.ffiName(o.binary === 'ffi', o.ffiName) } };
    }
    return {
      closure: {
        params: o.closure.params.map((p) => this.symbols.insert(checkName(p, 'closure parameter'))),
        ops: o.closure.ops.map((c) => this.op(c)),
      },
    };
  }

  private ffiName(isFfi: boolean, ffiName: string | undefined): object {
    if (!isFfi) return {};
    return { ffiName: this.sym(checkName(ffiName, 'extern function')) };
  }

  expression(e: Expression): object {
    try {
      expressionTree(e);
    } catch (err) {
      if (err instanceof ExpressionShapeError) invalid(err.message);
      throw err;
    }
    return { ops: e.map((o) => this.op(o)) };
  }

  scope(s: Scope): object {
    if (s === 'authority') return { scopeType: 0 };
    if (s === 'previous') return { scopeType: 1 };
    const k = s.publicKey;
    if (!(k.bytes instanceof Uint8Array) || k.bytes.length !== (k.algorithm === 'ed25519' ? 32 : 33)) {
      invalid('a scope public key has the wrong size');
    }
    const { index, added } = this.keys.insert(k);
    if (added) this.newKeys.push(k);
    return { publicKey: String(index) };
  }

  query(q: Query, head: Predicate): object {
    if (q.body.length === 0 && q.expressions.length === 0) invalid('a query needs a predicate or an expression');
    return {
      head: this.predicate(head, 'head'),
      body: q.body.map((p) => this.predicate(p, 'body')),
      expressions: q.expressions.map((e) => this.expression(e)),
      scope: q.scopes.map((s) => this.scope(s)),
    };
  }
}

function variables(terms: readonly Term[]): string[] {
  return terms.flatMap((t) => ('variable' in t ? [t.variable] : []));
}

/** biscuit-rust's `validate_variables`: a rule head may only use variables bound in its body. */
function checkRuleVariables(r: Rule): void {
  const bound = new Set(r.body.flatMap((p) => variables(p.terms)));
  const free = variables(r.head.terms).filter((v) => !bound.has(v));
  if (free.length > 0) invalid(`rule head ${r.head.name} uses unbound variables ${free.join(', ')}`);
}

/** The query head biscuit-rust writes for every check query. */
const QUERY_HEAD: Predicate = { name: 'query', terms: [] };

/**
 * Serializes `block` as a `Block` message against the token's symbol and key tables.
 * @returns the bytes to sign, the version written, and the new symbols.
 */
export function encodeBlock(
  block: BlockModel,
  tables: { symbols: readonly string[]; keys: readonly PublicKeyModel[] },
  maxVersion: number,
): { bytes: Uint8Array; version: number; symbols: string[] } {
  const facts = block.facts ?? [];
  const rules = block.rules ?? [];
  const checks: readonly Check[] = block.checks ?? [];
  const scopes = block.scopes ?? [];
  rules.forEach(checkRuleVariables);
  checks.forEach((c) => {
    if (!(c.kind in CHECK_KIND)) invalid(`unknown check kind ${c.kind}`);
    if (c.queries.length === 0) invalid('a check needs at least one query');
  });
  const version = requiredVersion({ facts, rules, checks, scopes, thirdParty: false });
  if (version > maxVersion) {
    invalid(`it needs Datalog schema version ${version}, above the supported ${maxVersion}`);
  }
  const w = new BlockWriter(new SymbolTable(tables.symbols), new PublicKeyTable(tables.keys));
  const message = {
    facts_v2: facts.map((f) => ({ predicate: w.predicate(f, 'fact') })),
    rules_v2: rules.map((r) => w.query(r, r.head)),
    checks_v2: checks.map((c) => ({
      queries: c.queries.map((q) => w.query(q, QUERY_HEAD)),
      // biscuit-rust writes no kind for `check if`; a v3.0 block must not carry one at all.
      // `if` (0) is the default and a v3.0 block must not carry the field at all
      ...(CHECK_KIND[c.kind] ? { kind: CHECK_KIND[c.kind] } : {}),
    })),
    scope: scopes.map((s) => w.scope(s)),
    ...(block.context !== undefined ? { context: utf8.encode(checkText(block.context, 'context')) } : {}),
    version: Math.max(version, SCHEMA_VERSION.V3_0),
  };
  const symbols = w.symbols.added();
  const bytes = BlockMessage.encode(
    BlockMessage.fromObject({
      symbols: symbols.map((s) => utf8.encode(s)),
      ...message,
      publicKeys: w.newKeys.map((k) => ({ algorithm: ALGORITHM[k.algorithm], key: k.bytes })),
    }),
  ).finish();
  return { bytes, version, symbols };
}
