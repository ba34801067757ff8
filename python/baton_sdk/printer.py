"""Block model → Biscuit Datalog source text, in the current syntax (Datalog v3.3 spelling).

Sets print as ``{…}`` (the empty set as ``{,}``), arrays as ``[…]``, strict equality as
``===``/``!==`` and heterogeneous equality as ``==``/``!=``, whatever the block's version: this is
how the specification's samples (``token[].code``) spell every block. Strings escape ``\\``, ``"``
and newlines so the text parses back to the same values; names the grammar cannot spell are refused
(``BATON_ERR_TOKEN_MALFORMED``) rather than printed.

Parentheses: the ``parens`` op prints as written; others are added only where the tree needs them
(``||`` < ``&&`` < comparisons < ``^`` < ``|`` < ``&`` < ``+ -`` < ``* /`` < ``!`` < methods).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, List, NamedTuple, Optional, Sequence, Union

from .errors import malformed
from .model import BlockModel, Check, DecodedBlock, Predicate, PublicKey, Query, Rule, Term
from .wire import NAME

_MAX_DEPTH = 256


class _Unprintable(Exception):
    pass


class Node(NamedTuple):
    """A node of an expression tree: kind is ``value``, ``unary``, ``binary`` or ``closure``."""

    kind: str
    op: Any = None  # term (value) | operator name | params (closure)
    ffi: Optional[str] = None
    left: Any = None  # operand (unary) | left (binary) | body (closure)
    right: Any = None


def expression_tree(ops: Sequence[tuple]) -> Node:
    """Builds the tree of an op stack; raises ``ValueError`` when it is not one expression."""
    stack: List[Node] = []
    for o in ops:
        if o[0] == "value":
            stack.append(Node("value", o[1]))
        elif o[0] == "closure":
            stack.append(Node("closure", tuple(o[1]), None, expression_tree(o[2])))
        elif o[0] == "unary":
            if not stack:
                raise ValueError(f"unary {o[1]} without an operand")
            stack.append(Node("unary", o[1], o[2] if len(o) > 2 else None, stack.pop()))
        elif o[0] == "binary":
            if len(stack) < 2:
                raise ValueError(f"binary {o[1]} without two operands")
            right, left = stack.pop(), stack.pop()
            stack.append(Node("binary", o[1], o[2] if len(o) > 2 else None, left, right))
        else:
            raise ValueError(f"unknown op {o[0]!r}")
    if len(stack) != 1:
        raise ValueError(f"an expression must leave one value, this one leaves {len(stack)}")
    return stack[0]


def quote_string(s: str) -> str:
    """A Datalog string literal for ``s``."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _name(n: str, what: str) -> str:
    if not NAME.match(n or ""):
        raise _Unprintable(f"{what} {n!r} cannot be written in Datalog")
    return n


def date_text(seconds: int) -> str:
    """RFC 3339 at whole seconds, as biscuit prints dates."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_text(k: PublicKey) -> str:
    return f"{k.algorithm}/{k.key.hex()}"


def term_text(t: Term) -> str:
    kind, v = t
    if kind == "variable":
        return "$" + _name(v, "variable")
    if kind == "integer":
        return str(v)
    if kind == "string":
        return quote_string(v)
    if kind == "date":
        return date_text(v)
    if kind == "bytes":
        return "hex:" + bytes(v).hex()
    if kind == "bool":
        return "true" if v else "false"
    if kind == "set":
        return "{" + ", ".join(term_text(e) for e in v) + "}" if v else "{,}"
    if kind == "null":
        return "null"
    if kind == "array":
        return "[" + ", ".join(term_text(e) for e in v) + "]"
    if kind == "map":
        return "{" + ", ".join(f"{quote_string(k) if isinstance(k, str) else k}: {term_text(e)}" for k, e in v) + "}"
    raise _Unprintable(f"unknown term {kind!r}")


_LEVEL = {
    "or": 1, "lazyOr": 1, "and": 2, "lazyAnd": 2,
    "lessThan": 3, "greaterThan": 3, "lessOrEqual": 3, "greaterOrEqual": 3, "equal": 3, "notEqual": 3,
    "heterogeneousEqual": 3, "heterogeneousNotEqual": 3,
    "bitwiseXor": 4, "bitwiseOr": 5, "bitwiseAnd": 6, "add": 7, "sub": 7, "mul": 8, "div": 8,
}
_SYMBOL = {
    "or": "||", "lazyOr": "||", "and": "&&", "lazyAnd": "&&", "lessThan": "<", "greaterThan": ">",
    "lessOrEqual": "<=", "greaterOrEqual": ">=", "equal": "===", "notEqual": "!==",
    "heterogeneousEqual": "==", "heterogeneousNotEqual": "!=", "bitwiseXor": "^", "bitwiseOr": "|",
    "bitwiseAnd": "&", "add": "+", "sub": "-", "mul": "*", "div": "/",
}
_METHOD = {
    "contains": "contains", "prefix": "starts_with", "suffix": "ends_with", "regex": "matches",
    "intersection": "intersection", "union": "union", "get": "get", "all": "all", "any": "any",
}
_BITWISE = {"bitwiseAnd", "bitwiseOr", "bitwiseXor"}
_COMPARISON = 3
_NEGATE = 6.5  # `!$a + 1` reads as `!($a + 1)`: between `&` and `+` (as print.ts)
_ATOM = 10


def _level(n: Node) -> float:
    if n.kind == "unary":
        return _NEGATE if n.op == "negate" else _ATOM
    if n.kind == "binary":
        return _LEVEL.get(n.op, _ATOM)
    return _ATOM


def _closure_body(n: Node, params: int) -> Node:
    if n.kind != "closure" or len(n.op) != params:
        raise _Unprintable(f"expected a closure with {params} parameter(s)")
    return n.left


def _render(n: Node, depth: int = 0) -> str:
    if depth > _MAX_DEPTH:
        raise _Unprintable("expression nested too deeply")
    d = depth + 1
    if n.kind == "value":
        return term_text(n.op)
    if n.kind == "closure":
        raise _Unprintable("a closure outside all/any/&&/||/try_or")
    if n.kind == "unary":
        if n.op == "negate":
            return "!" + _atom(n.left, d)
        if n.op == "parens":
            return "(" + _render(n.left, d) + ")"
        if n.op == "length":
            return _atom(n.left, d) + ".length()"
        if n.op == "typeOf":
            return _atom(n.left, d) + ".type()"
        if n.op == "ffi":
            return _atom(n.left, d) + ".extern::" + _name(n.ffi, "extern function") + "()"
        raise _Unprintable(f"unknown unary operator {n.op!r}")
    if n.op == "tryOr":
        # the receiver is evaluated lazily: a parameterless closure
        return _atom(_closure_body(n.left, 0), d) + ".try_or(" + _render(n.right, d) + ")"
    method = "extern::" + _name(n.ffi, "extern function") if n.op == "ffi" else _METHOD.get(n.op)
    if method is not None:
        if n.op in ("all", "any"):
            body = _closure_body(n.right, 1)
            arg = "$" + _name(n.right.op[0], "variable") + " -> " + _render(body, d)
        else:
            arg = _render(n.right, d)
        return _atom(n.left, d) + "." + method + "(" + arg + ")"
    if n.op not in _LEVEL:
        raise _Unprintable(f"unknown binary operator {n.op!r}")
    lvl = _LEVEL[n.op]
    right = _closure_body(n.right, 0) if n.op in ("lazyAnd", "lazyOr") else n.right

    def grouped(child: Node, is_right: bool) -> bool:
        c = _level(child)
        if c == _ATOM:
            return False
        # bitwise precedence differs between grammar versions: group whenever either reading needs it
        if n.op in _BITWISE and child.kind == "binary" and child.op in _BITWISE:
            return is_right or c < lvl
        return c < lvl or (c == lvl and (is_right or lvl == _COMPARISON))

    left_text, right_text = _render(n.left, d), _render(right, d)
    if grouped(n.left, False):
        left_text = f"({left_text})"
    if grouped(right, True):
        right_text = f"({right_text})"
    return f"{left_text} {_SYMBOL[n.op]} {right_text}"


def _atom(n: Node, depth: int) -> str:
    """A method receiver or ``!`` operand: bare only when it is a term, a call or parenthesised."""
    s = _render(n, depth)
    if _level(n) != _ATOM or (n.kind == "value" and n.op[0] == "date"):
        return f"({s})"
    return s


def expression_text(ops: Sequence[tuple]) -> str:
    try:
        return _render(expression_tree(ops))
    except ValueError as err:
        raise _Unprintable(str(err)) from None


def _predicate(p: Predicate) -> str:
    return _name(p.name, "predicate") + "(" + ", ".join(term_text(t) for t in p.terms) + ")"


def _scope(s) -> str:
    return key_text(s) if isinstance(s, PublicKey) else str(s)


def _body(q: Union[Query, Rule]) -> str:
    parts = [*(_predicate(p) for p in q.body), *(expression_text(e) for e in q.expressions)]
    if not parts:
        raise _Unprintable("a rule or check body without predicates or expressions")
    trusting = " trusting " + ", ".join(_scope(s) for s in q.scopes) if q.scopes else ""
    return ", ".join(parts) + trusting


def _check(c: Check) -> str:
    keyword = {"if": "check if", "all": "check all", "reject": "reject if"}[c.kind]
    if not c.queries:
        raise _Unprintable("a check without queries")
    return keyword + " " + " or ".join(_body(q) for q in c.queries)


def block_to_datalog(block: Union[BlockModel, DecodedBlock]) -> str:
    """Renders a block as Datalog: one statement per line, each ending in ``;`` (biscuit's layout).

    :raises BatonError: ``BATON_ERR_TOKEN_MALFORMED`` when the block holds something Datalog cannot
        spell (a predicate name with a quote in it): such a block can only come from a forged token.
    """
    try:
        lines = []
        if block.scopes:
            lines.append("trusting " + ", ".join(_scope(s) for s in block.scopes))
        lines += [_predicate(f) for f in block.facts]
        lines += [f"{_predicate(r.head)} <- {_body(r)}" for r in block.rules]
        lines += [_check(c) for c in block.checks]
        return "".join(f"{line};\n" for line in lines)
    except (_Unprintable, RecursionError, ValueError, OverflowError, OSError) as err:
        raise malformed(str(err)) from None
