/**
 * The Biscuit v3 protobuf schema, compiled once with protobufjs.
 *
 * Transcribed from the official `schema.proto` (biscuit-auth/biscuit-rust,
 * `biscuit-auth/src/format/schema.proto`), keeping only the messages a token contains (the authorizer
 * snapshot and third-party request messages are not part of a token). Field numbers and `required`
 * markers must stay exactly as upstream: the signed block bytes are whatever we encode here, and the
 * Rust decoder (prost) inside biscuit-wasm rejects a message that lacks a required field.
 *
 * One deliberate, wire-compatible change: `Block.symbols` and `Block.context` are declared `bytes`
 * instead of `string` (both are length-delimited, wire type 2), so we decode UTF-8 ourselves with a
 * fatal decoder. protobufjs' own UTF-8 reader silently replaces invalid sequences, which prost rejects;
 * decoding leniently would let two different byte strings print as the same symbol.
 * `PublicKey.Algorithm.SECP256R1 = 1` comes from the newer upstream schema (biscuit-auth 6) so such
 * keys decode as what they are instead of as an unknown enum value, and `OpBinary.Kind.TryOr = 29`
 * from the specification's `schema.proto` (Datalog v3.3 `.try_or()`, sample test038).
 *
 * @see https://github.com/biscuit-auth/biscuit/blob/main/schema.proto
 */
import protobuf from 'protobufjs';

const SCHEMA_PROTO = `
syntax = "proto2";
package biscuit.format.schema;

message Biscuit {
  optional uint32 rootKeyId = 1;
  required SignedBlock authority = 2;
  repeated SignedBlock blocks = 3;
  required Proof proof = 4;
}
message SignedBlock {
  required bytes block = 1;
  required PublicKey nextKey = 2;
  required bytes signature = 3;
  optional ExternalSignature externalSignature = 4;
  optional uint32 version = 5;
}
message ExternalSignature {
  required bytes signature = 1;
  required PublicKey publicKey = 2;
}
message PublicKey {
  required Algorithm algorithm = 1;
  enum Algorithm {
    Ed25519 = 0;
    SECP256R1 = 1;
  }
  required bytes key = 2;
}
message Proof {
  oneof Content {
    bytes nextSecret = 1;
    bytes finalSignature = 2;
  }
}
message Block {
  repeated bytes symbols = 1;
  optional bytes context = 2;
  optional uint32 version = 3;
  repeated FactV2 facts_v2 = 4;
  repeated RuleV2 rules_v2 = 5;
  repeated CheckV2 checks_v2 = 6;
  repeated Scope scope = 7;
  repeated PublicKey publicKeys = 8;
}
message Scope {
  enum ScopeType {
    Authority = 0;
    Previous = 1;
  }
  oneof Content {
    ScopeType scopeType = 1;
    int64 publicKey = 2;
  }
}
message FactV2 {
  required PredicateV2 predicate = 1;
}
message RuleV2 {
  required PredicateV2 head = 1;
  repeated PredicateV2 body = 2;
  repeated ExpressionV2 expressions = 3;
  repeated Scope scope = 4;
}
message CheckV2 {
  repeated RuleV2 queries = 1;
  optional Kind kind = 2;
  enum Kind {
    One = 0;
    All = 1;
    Reject = 2;
  }
}
message PredicateV2 {
  required uint64 name = 1;
  repeated TermV2 terms = 2;
}
message TermV2 {
  oneof Content {
    uint32 variable = 1;
    int64 integer = 2;
    uint64 string = 3;
    uint64 date = 4;
    bytes bytes = 5;
    bool bool = 6;
    TermSet set = 7;
    Empty null = 8;
    Array array = 9;
    Map map = 10;
  }
}
message TermSet {
  repeated TermV2 set = 1;
}
message Array {
  repeated TermV2 array = 1;
}
message Map {
  repeated MapEntry entries = 1;
}
message MapEntry {
  required MapKey key = 1;
  required TermV2 value = 2;
}
message MapKey {
  oneof Content {
    int64 integer = 1;
    uint64 string = 2;
  }
}
message ExpressionV2 {
  repeated Op ops = 1;
}
message Op {
  oneof Content {
    TermV2 value = 1;
    OpUnary unary = 2;
    OpBinary Binary = 3;
    OpClosure closure = 4;
  }
}
message OpUnary {
  enum Kind {
    Negate = 0;
    Parens = 1;
    Length = 2;
    TypeOf = 3;
    Ffi = 4;
  }
  required Kind kind = 1;
  optional uint64 ffiName = 2;
}
message OpBinary {
  enum Kind {
    LessThan = 0;
    GreaterThan = 1;
    LessOrEqual = 2;
    GreaterOrEqual = 3;
    Equal = 4;
    Contains = 5;
    Prefix = 6;
    Suffix = 7;
    Regex = 8;
    Add = 9;
    Sub = 10;
    Mul = 11;
    Div = 12;
    And = 13;
    Or = 14;
    Intersection = 15;
    Union = 16;
    BitwiseAnd = 17;
    BitwiseOr = 18;
    BitwiseXor = 19;
    NotEqual = 20;
    HeterogeneousEqual = 21;
    HeterogeneousNotEqual = 22;
    LazyAnd = 23;
    LazyOr = 24;
    All = 25;
    Any = 26;
    Get = 27;
    Ffi = 28;
    TryOr = 29;
  }
  required Kind kind = 1;
  optional uint64 ffiName = 2;
}
message OpClosure {
  repeated uint32 params = 1;
  repeated Op ops = 2;
}
message Empty {}
`;

const root = protobuf.parse(SCHEMA_PROTO, { keepCase: true }).root;

/** protobufjs message types of the token container and of a block. */
export const BiscuitMessage = root.lookupType('biscuit.format.schema.Biscuit');
export const BlockMessage = root.lookupType('biscuit.format.schema.Block');
