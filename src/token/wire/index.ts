/**
 * Biscuit v3 wire codec: decode, print, attenuate and seal tokens without the root public key.
 * See docs/biscuit-wire.md.
 */
export { decodeToken } from './decode.ts';
export { blockToDatalog, quoteString } from './print.ts';
export { appendBlock, sealToken, DEFAULT_MAX_APPEND_VERSION, type AppendOptions } from './append.ts';
export { MAX_TOKEN_BYTES } from './container.ts';
export { DEFAULT_SYMBOLS } from './symbols.ts';
export {
  SCHEMA_VERSION,
  type BinaryKind,
  type BlockModel,
  type Check,
  type CheckKind,
  type DecodedBlock,
  type DecodedToken,
  type Expression,
  type MapEntry,
  type Op,
  type Predicate,
  type PublicKeyModel,
  type Query,
  type Rule,
  type Scope,
  type Term,
  type UnaryKind,
} from './model.ts';
export {
  binary,
  bool,
  bytes,
  checkAll,
  checkIf,
  date,
  int,
  pred,
  query,
  set,
  str,
  trusting,
  unary,
  variable,
  type Operand,
} from './build.ts';
