"""The typed model of a Biscuit v3 block, mirroring src/token/wire/model.ts.

Terms are ``(kind, value)`` tuples so they compare and hash naturally:

* ``("variable", "x")``, ``("integer", 7)``, ``("string", "s")``, ``("date", seconds)``,
  ``("bytes", b"..")``, ``("bool", True)``, ``("set", (term, …))``, ``("null", None)``,
  ``("array", (term, …))``, ``("map", ((key, term), …))`` where a map key is a ``str`` or an ``int``.

Expressions stay in their wire form, an op stack in reverse Polish notation:

* ``("value", term)``, ``("unary", kind, ffi_name)``, ``("binary", kind, ffi_name)``,
  ``("closure", (param, …), (op, …))``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Tuple, Union

Term = Tuple[str, Any]
Op = Tuple[Any, ...]
Expression = Tuple[Op, ...]


class PublicKey(NamedTuple):
    """A public key as the wire carries it: ``algorithm`` is ``"ed25519"`` or ``"secp256r1"``."""

    algorithm: str
    key: bytes

    def __str__(self) -> str:
        return f"{self.algorithm}/{self.key.hex()}"


# "authority" | "previous" | PublicKey
Scope = Union[str, PublicKey]


class Predicate(NamedTuple):
    name: str
    terms: Tuple[Term, ...]


class Query(NamedTuple):
    """One ``or`` alternative of a check: a rule body (its head is ``query()`` on the wire)."""

    body: Tuple[Predicate, ...]
    expressions: Tuple[Expression, ...] = ()
    scopes: Tuple[Scope, ...] = ()


class Rule(NamedTuple):
    head: Predicate
    body: Tuple[Predicate, ...]
    expressions: Tuple[Expression, ...] = ()
    scopes: Tuple[Scope, ...] = ()


class Check(NamedTuple):
    """``kind`` is ``"if"`` (check if), ``"all"`` (check all) or ``"reject"`` (reject if)."""

    kind: str
    queries: Tuple[Query, ...]


@dataclass(frozen=True)
class BlockModel:
    """The Datalog content of a block: what ``append_block`` takes."""

    facts: Tuple[Predicate, ...] = ()
    rules: Tuple[Rule, ...] = ()
    checks: Tuple[Check, ...] = ()
    scopes: Tuple[Scope, ...] = ()
    context: Optional[str] = None


@dataclass(frozen=True)
class DecodedBlock:
    """A block as decoded from a token, its symbols resolved. Nothing here is verified."""

    index: int
    symbols: Tuple[str, ...]
    context: Optional[str]
    #: Datalog schema version (3 = v3.0, 4 = v3.1, 5 = v3.2, 6 = v3.3)
    version: int
    #: ``SignedBlock.version``, the signature payload format (0 when absent)
    signature_version: int
    facts: Tuple[Predicate, ...]
    rules: Tuple[Rule, ...]
    checks: Tuple[Check, ...]
    scopes: Tuple[Scope, ...]
    public_keys: Tuple[PublicKey, ...]
    next_key: PublicKey
    signature: bytes
    external_key: Optional[PublicKey] = None

    @property
    def revocation_id(self) -> str:
        """Lowercase hex of the signature, as biscuit's revocation identifiers."""
        return self.signature.hex()


@dataclass(frozen=True)
class DecodedToken:
    """A token decoded without its root key: nothing here is verified."""

    root_key_id: Optional[int]
    blocks: Tuple[DecodedBlock, ...]
    #: True when the proof is a final signature: no block can be appended.
    sealed: bool
    #: the token's symbol table (first-party blocks) and key table, for appending
    symbols: Tuple[str, ...] = field(default=(), repr=False)
    keys: Tuple[PublicKey, ...] = field(default=(), repr=False)


class SchemaVersion:
    V3_0 = 3
    V3_1 = 4
    V3_2 = 5
    V3_3 = 6


UNARY_KINDS = ("negate", "parens", "length", "typeOf", "ffi")
BINARY_KINDS = (
    "lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual", "equal", "contains", "prefix",
    "suffix", "regex", "add", "sub", "mul", "div", "and", "or", "intersection", "union",
    "bitwiseAnd", "bitwiseOr", "bitwiseXor", "notEqual", "heterogeneousEqual",
    "heterogeneousNotEqual", "lazyAnd", "lazyOr", "all", "any", "get", "ffi", "tryOr",
)
CHECK_KINDS = ("if", "all", "reject")

_V3_1_BINARY = {"bitwiseAnd", "bitwiseOr", "bitwiseXor", "notEqual"}
_V3_3_BINARY = {"heterogeneousEqual", "heterogeneousNotEqual", "lazyAnd", "lazyOr", "all", "any", "get", "ffi", "tryOr"}
_V3_3_UNARY = {"typeOf", "ffi"}


def _term_version(t: Term) -> int:
    if t[0] in ("null", "array", "map"):
        return SchemaVersion.V3_3
    if t[0] == "set":
        return max([SchemaVersion.V3_0, *(_term_version(e) for e in t[1])])
    return SchemaVersion.V3_0


def _op_version(op: Op) -> int:
    if op[0] == "value":
        return _term_version(op[1])
    if op[0] == "closure":
        return SchemaVersion.V3_3
    if op[0] == "unary":
        return SchemaVersion.V3_3 if op[1] in _V3_3_UNARY else SchemaVersion.V3_0
    if op[1] in _V3_3_BINARY:
        return SchemaVersion.V3_3
    return SchemaVersion.V3_1 if op[1] in _V3_1_BINARY else SchemaVersion.V3_0


def _predicate_version(p: Predicate) -> int:
    return max([SchemaVersion.V3_0, *(_term_version(t) for t in p.terms)])


def _body_version(q: Union[Query, Rule]) -> int:
    return max([
        SchemaVersion.V3_1 if q.scopes else SchemaVersion.V3_0,
        *(_predicate_version(p) for p in q.body),
        *(_op_version(o) for e in q.expressions for o in e),
    ])


def _check_version(c: Check) -> int:
    kind = {"if": SchemaVersion.V3_0, "all": SchemaVersion.V3_1, "reject": SchemaVersion.V3_3}[c.kind]
    return max([kind, *(_body_version(q) for q in c.queries)])


def required_version(facts, rules, checks, scopes, third_party: bool = False) -> int:
    """The lowest Datalog schema version that can carry this content (biscuit-rust's rule)."""
    return max([
        SchemaVersion.V3_2 if third_party else SchemaVersion.V3_0,
        SchemaVersion.V3_1 if scopes else SchemaVersion.V3_0,
        *(_predicate_version(f) for f in facts),
        *(max(_predicate_version(r.head), _body_version(r)) for r in rules),
        *(_check_version(c) for c in checks),
    ])
