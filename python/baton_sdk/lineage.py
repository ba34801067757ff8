"""Lineage and effective rights of a decoded token (src/token/lineage.ts), plus the structural
admission rules every verifier applies (src/token/limits.ts, reserved.ts).

Only EXACT vocabulary forms are interpreted; anything else is kept as Datalog text in ``opaque`` and
makes the view ``approximate`` (the proxy, which runs every check, always decides).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence

from .errors import BatonError
from .model import BlockModel, Check, DecodedBlock, DecodedToken, Predicate, Query
from .printer import block_to_datalog
from .vocabulary import APPROVAL_FACT, LINEAGE_FACTS, RESERVED_PREDICATES, covers, is_operation

Right = Dict[str, str]


def iso(seconds: int) -> str:
    """ISO 8601 with milliseconds, as the TypeScript SDK's ``toISOString()``."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _str(t) -> Optional[str]:
    return t[1] if t is not None and t[0] == "string" else None


def _string_fact(f: Predicate, name: str) -> Optional[str]:
    return _str(f.terms[0]) if f.name == name and len(f.terms) == 1 else None


def _first_fact(facts: Sequence[Predicate], name: str) -> Optional[str]:
    for f in facts:
        if f.name == name:
            return _string_fact(f, name)
    return None


def rights_of(authority: DecodedBlock) -> List[Right]:
    """``right(resource, operation)`` facts of the authority block."""
    out = []
    for f in authority.facts:
        if f.name == "right" and len(f.terms) == 2:
            r, o = _str(f.terms[0]), _str(f.terms[1])
            if r and o:
                out.append({"resource": r, "operation": o})
    return out


class _Constraints:
    def __init__(self) -> None:
        self.resources: Optional[List[str]] = None
        self.operations: Optional[List[str]] = None
        self.expires_at: Optional[int] = None
        self.opaque: List[str] = []


def _simple_query(q: Query, predicate: str):
    if len(q.body) != 1 or q.scopes or len(q.expressions) != 1:
        return None
    p = q.body[0]
    if p.name != predicate or len(p.terms) != 1 or p.terms[0][0] != "variable" or len(q.expressions[0]) != 3:
        return None
    return p.terms[0][1], q.expressions[0]


def _is_var(op, name: str) -> bool:
    return op[0] == "value" and op[1][0] == "variable" and op[1][1] == name


def _as_expiry(check: Check) -> Optional[int]:
    if check.kind != "if" or len(check.queries) != 1:
        return None
    q = _simple_query(check.queries[0], "time")
    if not q:
        return None
    var, (a, b, op) = q
    if not _is_var(a, var) or b[0] != "value" or b[1][0] != "date" or op[0] != "binary" or op[1] != "lessOrEqual":
        return None
    return b[1][1]


def _as_membership(check: Check, predicate: str) -> Optional[List[str]]:
    if check.kind != "if" or not check.queries:
        return None
    values: List[str] = []
    for query in check.queries:
        q = _simple_query(query, predicate)
        if not q:
            return None
        var, (a, b, op) = q
        if op[0] != "binary":
            return None
        if op[1] == "contains" and a[0] == "value" and a[1][0] == "set" and _is_var(b, var):
            items = [_str(t) for t in a[1][1]]
            if any(i is None or "*" in i for i in items):
                return None
            values += items
        elif op[1] == "prefix" and _is_var(a, var) and b[0] == "value" and b[1][0] == "string" and "*" not in b[1][1]:
            values.append(b[1][1] if b[1][1].endswith("/") else b[1][1] + "*")
        else:
            return None
    return list(dict.fromkeys(values))


def _intersect(a: List[str], b: List[str]) -> List[str]:
    out = [y if covers(x, y) else x for x in a for y in b if covers(x, y) or covers(y, x)]
    return list(dict.fromkeys(out))


def _is_lineage_fact(facts: Sequence[Predicate], fact: Predicate, index: int) -> bool:
    approval = _string_fact(fact, APPROVAL_FACT)
    if approval is not None:
        return is_operation(approval)
    if not any(_string_fact(fact, n) is not None for n in LINEAGE_FACTS):
        return False
    return next(i for i, f in enumerate(facts) if f.name == fact.name) == index


def _constraints(block: DecodedBlock) -> _Constraints:
    out = _Constraints()
    text = lambda **part: out.opaque.append(block_to_datalog(BlockModel(**part)).strip())  # noqa: E731
    if block.scopes:
        text(scopes=block.scopes)
    for rule in block.rules:
        text(rules=(rule,))
    if block.index > 0:
        for i, fact in enumerate(block.facts):
            if not _is_lineage_fact(block.facts, fact, i):
                text(facts=(fact,))
    for check in block.checks:
        expiry = _as_expiry(check)
        if expiry is not None:
            if out.expires_at is None or expiry < out.expires_at:
                out.expires_at = expiry
            continue
        resources = _as_membership(check, "resource")
        if resources is not None:
            out.resources = _intersect(out.resources, resources) if out.resources is not None else resources
            continue
        operations = _as_membership(check, "operation")
        if operations is not None and not any(o.endswith("*") for o in operations):
            out.operations = [o for o in out.operations if o in operations] if out.operations is not None else operations
            continue
        text(checks=(check,))
    return out


def read_lineage(token: DecodedToken) -> List[dict]:
    """One link per block: depth, who, what it narrows, its expiry and revocation id."""
    links = []
    for block in token.blocks:
        c = _constraints(block)
        link: dict = {"depth": block.index, "revocation_id": block.revocation_id}
        if c.expires_at is not None:
            link["expires_at"] = iso(c.expires_at)
        if block.index == 0:
            rights = rights_of(block)
            roles = [r for r in (_str(f.terms[0]) if f.terms else None for f in block.facts if f.name == "role") if r]
            link.update(
                token_id=_first_fact(block.facts, "token_id"),
                subject=_first_fact(block.facts, "subject"),
                issuer=_first_fact(block.facts, "issuer"),
                agent=_first_fact(block.facts, "agent"),
                resources=list(dict.fromkeys(r["resource"] for r in rights)),
                operations=list(dict.fromkeys(r["operation"] for r in rights)),
            )
            if roles:
                link["roles"] = roles
        else:
            link.update(delegated_to=_first_fact(block.facts, "delegated_to"), purpose=_first_fact(block.facts, "purpose"))
            approvals = list(dict.fromkeys(op for op in (_string_fact(f, APPROVAL_FACT) for f in block.facts) if op is not None and is_operation(op)))
            if approvals:
                link["require_approval"] = approvals
            if c.resources is not None:
                link["resources"] = c.resources
            if c.operations is not None:
                link["operations"] = c.operations
        if c.opaque:
            link["opaque"] = c.opaque
        links.append(link)
    return links


def _unique(rights: List[Right]) -> List[Right]:
    return list({(r["resource"], r["operation"]): r for r in rights}.values())


def effective_rights(token: DecodedToken) -> dict:
    """The rights left after every link's constraints, and the earliest expiry (``expires_at`` as
    ISO text, ``expires_at_seconds`` as Unix seconds)."""
    if not token.blocks:
        return {"rights": [], "resources": [], "operations": [], "approximate": True}
    rights = rights_of(token.blocks[0])
    expires: Optional[int] = None
    approximate = False
    for block in token.blocks:
        c = _constraints(block)
        if c.expires_at is not None and (expires is None or c.expires_at < expires):
            expires = c.expires_at
        if c.opaque:
            approximate = True
        if c.operations is not None:
            allowed = c.operations
            rights = _unique([
                {**r, "operation": op}
                for r in rights
                for op in (allowed if r["operation"] == "*" else [r["operation"]] if r["operation"] in allowed else [])
            ])
        if c.resources is not None:
            rights = _unique([
                {**r, "resource": a} if covers(r["resource"], a) else r
                for r in rights
                for a in c.resources
                if covers(r["resource"], a) or covers(a, r["resource"])
            ])
    out = {
        "rights": rights,
        "resources": list(dict.fromkeys(r["resource"] for r in rights)),
        "operations": list(dict.fromkeys(r["operation"] for r in rights)),
        "approximate": approximate,
    }
    if expires is not None:
        out["expires_at"] = iso(expires)
        out["expires_at_seconds"] = expires
    return out


# --- admission: structural bounds (limits.ts) and reserved names (reserved.ts) -------------------

MAX_TOKEN_TEXT = 16 * 1024
LIMITS = {
    "MAX_TOKEN_BYTES": MAX_TOKEN_TEXT, "MAX_BLOCKS": 16, "MAX_BLOCK_FACTS": 8, "MAX_BLOCK_RULES": 2,
    "MAX_BLOCK_CHECKS": 8, "MAX_CHECK_QUERIES": 16, "MAX_BODY_PREDICATES": 2, "MAX_BODY_EXPRESSIONS": 4,
    "MAX_EXPRESSION_OPS": 32, "MAX_EXPRESSION_DEPTH": 8,
}


def _op_count(e) -> int:
    return sum(1 + (_op_count(o[2]) if o[0] == "closure" else 0) for o in e)


def _depth(e) -> int:
    stack: List[int] = []
    deepest = 0
    for o in e:
        if o[0] == "value":
            d = 1
        elif o[0] == "closure":
            d = 1 + _depth(o[2])
        elif o[0] == "unary":
            d = 1 + (stack.pop() if stack else 0)
        else:
            r = stack.pop() if stack else 0
            left = stack.pop() if stack else 0
            d = 1 + max(left, r)
        stack.append(d)
        deepest = max(deepest, d)
    return deepest


def _over(limit: str, what: str) -> BatonError:
    return BatonError("BATON_ERR_TOKEN_TOO_COMPLEX", f"token refused: {what}, more than {limit}={LIMITS[limit]}", limit)


def admission_error(token: DecodedToken, text_length: Optional[int] = None) -> Optional[BatonError]:
    """The refusal every Baton verifier would raise for this structure, or None."""
    if text_length is not None and text_length > MAX_TOKEN_TEXT:
        return _over("MAX_TOKEN_BYTES", f"token is {text_length} bytes")
    if len(token.blocks) > LIMITS["MAX_BLOCKS"]:
        return _over("MAX_BLOCKS", f"token has {len(token.blocks)} blocks")
    for block in token.blocks[1:]:
        at = f"block {block.index}"
        for name, items in (("MAX_BLOCK_FACTS", block.facts), ("MAX_BLOCK_RULES", block.rules), ("MAX_BLOCK_CHECKS", block.checks)):
            if len(items) > LIMITS[name]:
                return _over(name, f"{at} has {len(items)} {name[10:].lower()}")
        bodies = [(f"{at} rule {i}", r) for i, r in enumerate(block.rules)]
        for i, check in enumerate(block.checks):
            if len(check.queries) > LIMITS["MAX_CHECK_QUERIES"]:
                return _over("MAX_CHECK_QUERIES", f"{at} check {i} has {len(check.queries)} alternatives")
            bodies += [(f"{at} check {i}", q) for q in check.queries]
        for where, body in bodies:
            if len(body.body) > LIMITS["MAX_BODY_PREDICATES"]:
                return _over("MAX_BODY_PREDICATES", f"{where} joins {len(body.body)} predicates")
            if len(body.expressions) > LIMITS["MAX_BODY_EXPRESSIONS"]:
                return _over("MAX_BODY_EXPRESSIONS", f"{where} has {len(body.expressions)} expressions")
            for e in body.expressions:
                if _op_count(e) > LIMITS["MAX_EXPRESSION_OPS"]:
                    return _over("MAX_EXPRESSION_OPS", f"{where} has an expression of {_op_count(e)} ops")
                if _depth(e) > LIMITS["MAX_EXPRESSION_DEPTH"]:
                    return _over("MAX_EXPRESSION_DEPTH", f"{where} has an expression nested {_depth(e)} deep")
    for block in token.blocks[1:]:
        at = f"block {block.index}{' (third-party)' if block.external_key else ''}"
        for f in block.facts:
            if f.name in RESERVED_PREDICATES:
                return BatonError("BATON_ERR_TOKEN_RESERVED_NAME", f'token refused: {at} states a fact named "{f.name}", which only the broker or the authorizer may supply')
        for r in block.rules:
            if r.head.name in RESERVED_PREDICATES or r.head.name in LINEAGE_FACTS:
                return BatonError("BATON_ERR_TOKEN_RESERVED_NAME", f'token refused: {at} has a rule deriving "{r.head.name}", a name reserved for the broker, the authorizer or lineage')
    return None
