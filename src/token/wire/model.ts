/**
 * The typed model of a Biscuit v3 block: what `decodeToken` returns and what `appendBlock` takes.
 *
 * It mirrors the wire format (`schema.proto`) with symbols resolved to strings, so a value decoded
 * from a token and a value built by hand are the same shape. Expressions stay in their wire form, an
 * op stack in reverse Polish notation (`[$r, "a", prefix]` is `$r.starts_with("a")`), because that
 * is what a block carries and what the authorizer evaluates; `blockToDatalog` renders them infix.
 *
 * @see https://github.com/biscuit-auth/biscuit/blob/main/SPECIFICATIONS.md
 */

/** A Datalog value. Exactly one key is present; switch with `'string' in term` etc. */
export type Term =
  | { readonly variable: string }
  | { readonly integer: bigint }
  | { readonly string: string }
  /** Whole seconds since the Unix epoch (the wire stores seconds; milliseconds are dropped). */
  | { readonly date: Date }
  | { readonly bytes: Uint8Array }
  | { readonly bool: boolean }
  /** Sets hold values of one type, no variables, no nested sets. */
  | { readonly set: readonly Term[] }
  /** Datalog v3.3 (block version 6) only, like `array` and `map`. */
  | { readonly null: true }
  | { readonly array: readonly Term[] }
  | { readonly map: readonly MapEntry[] };

/** One entry of a v3.3 map term; keys are strings or integers. */
export interface MapEntry {
  readonly key: string | bigint;
  readonly value: Term;
}

/** `name(term, …)`: a fact, a rule head, or a body predicate. */
export interface Predicate {
  readonly name: string;
  readonly terms: readonly Term[];
}

/** Unary operators, named as in `schema.proto` (`OpUnary.Kind`). */
export type UnaryKind = 'negate' | 'parens' | 'length' | 'typeOf' | 'ffi';

/** Binary operators, named as in `schema.proto` (`OpBinary.Kind`), in wire order. */
export type BinaryKind =
  | 'lessThan'
  | 'greaterThan'
  | 'lessOrEqual'
  | 'greaterOrEqual'
  | 'equal'
  | 'contains'
  | 'prefix'
  | 'suffix'
  | 'regex'
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'and'
  | 'or'
  | 'intersection'
  | 'union'
  | 'bitwiseAnd'
  | 'bitwiseOr'
  | 'bitwiseXor'
  | 'notEqual'
  | 'heterogeneousEqual'
  | 'heterogeneousNotEqual'
  | 'lazyAnd'
  | 'lazyOr'
  | 'all'
  | 'any'
  | 'get'
  | 'ffi'
  /** `receiver.try_or(fallback)`: the receiver is a parameterless closure (v3.3). */
  | 'tryOr';

/** One instruction of an expression's op stack. `ffiName` is set only with kind `'ffi'`. */
export type Op =
  | { readonly value: Term }
  | { readonly unary: UnaryKind; readonly ffiName?: string }
  | { readonly binary: BinaryKind; readonly ffiName?: string }
  /**
   * Datalog v3.3 closure (`$x -> …`): the right operand of `all`/`any`/`&&`/`||`, the left one (the
   * receiver, without parameters) of `tryOr`, in v6 blocks.
   */
  | { readonly closure: { readonly params: readonly string[]; readonly ops: readonly Op[] } };

/** An expression: an op stack in reverse Polish notation, evaluating to one boolean. */
export type Expression = readonly Op[];

/** Which blocks a rule or check trusts (`trusting authority, previous, ed25519/…`). */
export type Scope = 'authority' | 'previous' | { readonly publicKey: PublicKeyModel };

/** A public key as the wire carries it. */
export interface PublicKeyModel {
  readonly algorithm: 'ed25519' | 'secp256r1';
  readonly bytes: Uint8Array;
}

/** `head <- body, expressions trusting scopes`. */
export interface Rule {
  readonly head: Predicate;
  readonly body: readonly Predicate[];
  readonly expressions: readonly Expression[];
  readonly scopes: readonly Scope[];
}

/** One `or` alternative of a check: a rule body (its head is always `query()` on the wire). */
export interface Query {
  readonly body: readonly Predicate[];
  readonly expressions: readonly Expression[];
  readonly scopes: readonly Scope[];
}

/** `check if` (one query must match), `check all` (every match must pass), `reject if` (v3.3). */
export type CheckKind = 'if' | 'all' | 'reject';

/** A check: its queries are alternatives joined by `or`. */
export interface Check {
  readonly kind: CheckKind;
  readonly queries: readonly Query[];
}

/** The Datalog content of a block: the input of `appendBlock`. */
export interface BlockModel {
  readonly facts?: readonly Predicate[];
  readonly rules?: readonly Rule[];
  readonly checks?: readonly Check[];
  /** Block-level default scopes (`trusting …` at the top of a block). */
  readonly scopes?: readonly Scope[];
  /** Free text carried with the block; not evaluated. */
  readonly context?: string;
}

/** A block as decoded from a token, with its symbols resolved. */
export interface DecodedBlock {
  /** 0 for the authority block. */
  readonly index: number;
  /** Symbols this block introduced (appended to the token's table). */
  readonly symbols: readonly string[];
  readonly context?: string;
  /** Datalog schema version of the block (3 = v3.0, 4 = v3.1, 5 = v3.2, 6 = v3.3). */
  readonly version: number;
  /** `SignedBlock.version`: the signature payload format (0 when absent on the wire). */
  readonly signatureVersion: number;
  readonly facts: readonly Predicate[];
  readonly rules: readonly Rule[];
  readonly checks: readonly Check[];
  readonly scopes: readonly Scope[];
  /** Public keys this block added to the key table. */
  readonly publicKeys: readonly PublicKeyModel[];
  /** The key that signs the next block (its secret is the token's proof). */
  readonly nextKey: PublicKeyModel;
  readonly signature: Uint8Array;
  /** Lowercase hex of `signature`: what `Biscuit.getRevocationIdentifiers()` reports. */
  readonly revocationId: string;
  /** Set on third-party blocks: the key of the external signer. */
  readonly externalKey?: PublicKeyModel;
}

/** A token decoded without its root key: nothing here is verified. */
export interface DecodedToken {
  readonly rootKeyId?: number;
  readonly blocks: readonly DecodedBlock[];
  /** True when the proof is a final signature: no block can be appended. */
  readonly sealed: boolean;
}

/**
 * Datalog schema versions (`Block.version`).
 * @see https://github.com/biscuit-auth/biscuit/blob/main/SPECIFICATIONS.md#versioning
 */
export const SCHEMA_VERSION = {
  /** Datalog v3.0: the base. */
  V3_0: 3,
  /** v3.1: `check all`, scopes (`trusting`), `!=`, bitwise operators. */
  V3_1: 4,
  /** v3.2: third-party blocks signed over the previous signature. */
  V3_2: 5,
  /** v3.3: `reject if`, null, arrays, maps, closures, heterogeneous equality, `type()`, FFI, `try_or`. */
  V3_3: 6,
} as const;

/**
 * Wire enum values, in `schema.proto` order (index = wire number). The single source for both
 * directions: decode reads `LIST[n]`, encode writes `LIST.indexOf(name)` (via `wireNumbers`).
 */
export const UNARY_KINDS: readonly UnaryKind[] = ['negate', 'parens', 'length', 'typeOf', 'ffi'];
export const BINARY_KINDS: readonly BinaryKind[] = [
  'lessThan',
  'greaterThan',
  'lessOrEqual',
  'greaterOrEqual',
  'equal',
  'contains',
  'prefix',
  'suffix',
  'regex',
  'add',
  'sub',
  'mul',
  'div',
  'and',
  'or',
  'intersection',
  'union',
  'bitwiseAnd',
  'bitwiseOr',
  'bitwiseXor',
  'notEqual',
  'heterogeneousEqual',
  'heterogeneousNotEqual',
  'lazyAnd',
  'lazyOr',
  'all',
  'any',
  'get',
  'ffi',
  'tryOr',
];
export const CHECK_KINDS: readonly CheckKind[] = ['if', 'all', 'reject'];

/** name → wire number for one of the lists above. */
export function wireNumbers<K extends string>(kinds: readonly K[]): Readonly<Record<K, number>> {
  return Object.fromEntries(kinds.map((k, i) => [k, i])) as Record<K, number>;
}
