/**
 * The lowest Datalog schema version (`Block.version`) a block's content needs.
 *
 * The encoder writes this version (so a block built only from v3.0 features stays readable by every
 * v3 implementation, as biscuit-rust does) and the decoder rejects a block declaring less than it uses,
 * as biscuit-rust's `check_compatibility` does.
 *
 * @see https://github.com/biscuit-auth/biscuit/blob/main/SPECIFICATIONS.md#versioning
 */
import {
  SCHEMA_VERSION,
  type BinaryKind,
  type Check,
  type Expression,
  type Op,
  type Predicate,
  type Rule,
  type Scope,
  type Term,
  type UnaryKind,
} from './model.ts';

const V3_1_BINARY: ReadonlySet<BinaryKind> = new Set(['bitwiseAnd', 'bitwiseOr', 'bitwiseXor', 'notEqual']);
const V3_3_BINARY: ReadonlySet<BinaryKind> = new Set([
  'heterogeneousEqual',
  'heterogeneousNotEqual',
  'lazyAnd',
  'lazyOr',
  'all',
  'any',
  'get',
  'ffi',
  'tryOr',
]);
const V3_3_UNARY: ReadonlySet<UnaryKind> = new Set(['typeOf', 'ffi']);

function termVersion(t: Term): number {
  if ('null' in t || 'array' in t || 'map' in t) return SCHEMA_VERSION.V3_3;
  if ('set' in t) return Math.max(SCHEMA_VERSION.V3_0, ...t.set.map(termVersion));
  return SCHEMA_VERSION.V3_0;
}

function opVersion(op: Op): number {
  if ('value' in op) return termVersion(op.value);
  if ('closure' in op) return SCHEMA_VERSION.V3_3;
  if ('unary' in op) return V3_3_UNARY.has(op.unary) ? SCHEMA_VERSION.V3_3 : SCHEMA_VERSION.V3_0;
  if (V3_3_BINARY.has(op.binary)) return SCHEMA_VERSION.V3_3;
  return V3_1_BINARY.has(op.binary) ? SCHEMA_VERSION.V3_1 : SCHEMA_VERSION.V3_0;
}

function predicateVersion(p: Predicate): number {
  return Math.max(SCHEMA_VERSION.V3_0, ...p.terms.map(termVersion));
}

function bodyVersion(q: {
  body: readonly Predicate[];
  expressions: readonly Expression[];
  scopes: readonly Scope[];
}): number {
  return Math.max(
    q.scopes.length > 0 ? SCHEMA_VERSION.V3_1 : SCHEMA_VERSION.V3_0,
    ...q.body.map(predicateVersion),
    ...q.expressions.flatMap((e) => e.map(opVersion)),
  );
}

function checkVersion(c: Check): number {
  const kind = { if: SCHEMA_VERSION.V3_0, all: SCHEMA_VERSION.V3_1, reject: SCHEMA_VERSION.V3_3 }[c.kind];
  return Math.max(kind, ...c.queries.map(bodyVersion));
}

/** The lowest schema version that can carry this content. */
export function requiredVersion(content: {
  facts: readonly Predicate[];
  rules: readonly Rule[];
  checks: readonly Check[];
  scopes: readonly Scope[];
  thirdParty: boolean;
}): number {
  return Math.max(
    content.thirdParty ? SCHEMA_VERSION.V3_2 : SCHEMA_VERSION.V3_0,
    content.scopes.length > 0 ? SCHEMA_VERSION.V3_1 : SCHEMA_VERSION.V3_0,
    ...content.facts.map(predicateVersion),
    ...content.rules.map((r) => Math.max(predicateVersion(r.head), bodyVersion(r))),
    ...content.checks.map(checkVersion),
  );
}
