"""Offline attenuation: append one block that narrows a token (src/token/attenuate.ts).

No network, no root key. It refuses to widen: resources outside the parent's effective rights,
operations the parent lacks, or a lifetime beyond the parent's raise ``BatonError`` before any
token exists. Every value goes into the block as data (a Datalog term), never as source text.
"""
from __future__ import annotations

import re
import time
import unicodedata
from typing import Iterable, List, Optional, Union

from .errors import BatonError
from .lineage import admission_error, effective_rights, iso
from .model import BlockModel, Check, Predicate, Query
from .vocabulary import APPROVAL_FACT, is_operation, parse_resource, printable, covers
from .wire import append_block, decode_token, seal_token

MAX_TEXT = 256
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Union[str, int]) -> int:
    """``"30s"``, ``"5m"``, ``"2h"``, ``"1d"`` or whole seconds → seconds (policy/duration.ts)."""
    if isinstance(value, bool):
        raise TypeError("duration must be a positive whole number of seconds")
    if isinstance(value, int):
        if value <= 0:
            raise TypeError("duration must be a positive whole number of seconds")
        return value
    if not isinstance(value, str):
        raise TypeError("duration must be a string or an int")
    m = re.fullmatch(r"(\d{1,9})([smhd]?)", value.strip())
    if not m:
        raise TypeError(f'duration "{value[:20]}" must look like 30s, 5m, 2h, 1d or a number of seconds')
    seconds = int(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise TypeError("duration must be positive")
    return seconds


def _unsafe_char(value: str) -> Optional[int]:
    """Index of a control, format, surrogate or line/paragraph separator character, or None."""
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return i
    return None


def _validate_text(field: str, value) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        raise TypeError(f"{field} must be a non-empty string of at most {MAX_TEXT} characters")
    bad = _unsafe_char(value)
    if bad is not None:
        raise BatonError(
            "BATON_ERR_INVALID_REQUEST",
            f"{field} contains a control, format or separator character (U+{ord(value[bad]):04X} at position {bad}); use printable text",
        )


def _refuse_widening(rights, resources: Optional[List[str]], operations: Optional[List[str]]) -> None:
    ops = operations if operations is not None else list(dict.fromkeys(r["operation"] for r in rights))
    for op in ops:
        if not any(r["operation"] in (op, "*") for r in rights):
            raise BatonError("BATON_ERR_ATTENUATION_WIDENS", f'the parent token does not allow operation "{printable(op, 20)}"')
    for resource in resources or []:
        for op in ops:
            if not any(covers(r["resource"], resource) and r["operation"] in (op, "*") for r in rights):
                raise BatonError("BATON_ERR_ATTENUATION_WIDENS", f'the parent token does not allow "{op}" on "{printable(resource)}"')


def _membership(predicate: str, var: str, values: List[str]) -> Check:
    # ``prefix*`` → starts_with("prefix"); a directory ``…/dir/`` → starts_with("…/dir/") (the
    # authorizer also states the directory spelling of each resource, so it covers ``…/dir`` itself)
    def is_prefix(v: str) -> bool:
        return v.endswith("*") or (v.endswith("/") and len(v) > 1)
    exact = [v for v in values if not is_prefix(v)]
    prefixes = [v[:-1] if v.endswith("*") else v for v in values if is_prefix(v)]
    body = (Predicate(predicate, (("variable", var),)),)
    queries = []
    if exact:
        queries.append(Query(body, ((("value", ("set", tuple(("string", s) for s in exact))), ("value", ("variable", var)), ("binary", "contains", None)),)))
    for p in prefixes:
        queries.append(Query(body, ((("value", ("variable", var)), ("value", ("string", p)), ("binary", "prefix", None)),)))
    return Check("if", tuple(queries))


def attenuation_block(delegate_to: str, purpose: Optional[str] = None, resources: Optional[List[str]] = None,
                      operations: Optional[List[str]] = None, expires_at: Optional[int] = None,
                      require_approval: Optional[List[str]] = None) -> BlockModel:
    """The attenuation block of DESIGN.md, exactly as the TypeScript ``attenuationBlock`` builds it."""
    facts = [Predicate("delegated_to", (("string", delegate_to),))]
    if purpose is not None:
        facts.append(Predicate("purpose", (("string", purpose),)))
    for op in require_approval or []:
        facts.append(Predicate(APPROVAL_FACT, (("string", op),)))
    checks = []
    if resources:
        checks.append(_membership("resource", "r", resources))
    if operations:
        checks.append(_membership("operation", "op", operations))
    if expires_at is not None:
        checks.append(Check("if", (Query(
            (Predicate("time", (("variable", "t"),)),),
            ((("value", ("variable", "t")), ("value", ("date", expires_at)), ("binary", "lessOrEqual", None)),),
        ),)))
    return BlockModel(facts=tuple(facts), checks=tuple(checks))


def attenuate(
    token: str,
    resources: Optional[Iterable[str]] = None,
    operations: Optional[Iterable[str]] = None,
    ttl: Union[str, int, None] = None,
    delegate_to: Optional[str] = None,
    purpose: Optional[str] = None,
    seal: bool = False,
    now: Optional[float] = None,
    require_approval: Optional[Iterable[str]] = None,
) -> str:
    """Appends one narrowing block to ``token`` offline and returns the child token.

    :param resources: resources (exact or ``prefix*``) the child may touch; default: the parent's.
    :param operations: operations the child may perform; default: the parent's.
    :param ttl: lifetime from now (``"5m"``, ``"30s"`` or seconds); default: the parent's remaining one.
    :param delegate_to: who the child is for (required: every link names its holder).
    :param purpose: why (optional, recorded in the audit lineage).
    :param seal: seal the result so nobody can attenuate it further.
    :param require_approval: operations (e.g. ``["delete"]``) whose statements the child's holder
        may run only after a just-in-time approval; adds a requirement, never widens.
    :param now: the clock, Unix seconds (tests).
    :raises BatonError: ``BATON_ERR_ATTENUATION_WIDENS`` (a resource, operation or lifetime the
        parent lacks), ``BATON_ERR_TOKEN_SEALED``, ``BATON_ERR_TOKEN_EXPIRED``,
        ``BATON_ERR_TOKEN_MALFORMED``, ``BATON_ERR_INVALID_REQUEST``, ``BATON_ERR_TOKEN_TOO_COMPLEX``.
    :raises TypeError: an argument outside the vocabulary (unknown operation, bad resource, bad ttl).

    Example::

        child = attenuate(token, resources=["pg:appdb/public.orders"], operations=["read"],
                          ttl="5m", delegate_to="helper-7", purpose="count orders")
    """
    _validate_text("delegate_to", delegate_to)
    if purpose is not None:
        _validate_text("purpose", purpose)
    if not isinstance(token, str):
        raise TypeError("token must be a string")
    token = token.strip()
    if isinstance(resources, str) or isinstance(operations, str):
        raise TypeError("resources and operations are lists of strings")
    parent = decode_token(token)
    if parent.sealed:
        raise BatonError("BATON_ERR_TOKEN_SEALED", "the token is sealed and cannot be attenuated")
    effective = effective_rights(parent)
    now_s = time.time() if now is None else now

    wanted_resources = list(dict.fromkeys(resources)) if resources else None
    wanted_operations = list(dict.fromkeys(operations)) if operations else None
    for r in wanted_resources or []:
        parse_resource(r)
    for op in wanted_operations or []:
        if not isinstance(op, str) or not is_operation(op) or op == "*":
            raise TypeError(f'unknown operation "{printable(str(op), 20)}"')
    _refuse_widening(effective["rights"], wanted_resources, wanted_operations)
    if isinstance(require_approval, str):
        raise TypeError("require_approval is a list of operations")
    approvals = list(dict.fromkeys(require_approval)) if require_approval else None
    for op in approvals or []:
        if not isinstance(op, str) or not is_operation(op):
            raise TypeError(f'unknown operation "{printable(str(op), 20)}" in require_approval')

    parent_expiry = effective.get("expires_at_seconds")
    expires_at = parent_expiry
    if ttl is not None:
        expires_at = int(now_s + parse_duration(ttl))
        if parent_expiry is not None and expires_at > parent_expiry:
            raise BatonError("BATON_ERR_ATTENUATION_WIDENS", f"ttl would outlive the parent token, which expires at {iso(parent_expiry)}")
    if parent_expiry is not None and parent_expiry <= now_s:
        raise BatonError("BATON_ERR_TOKEN_EXPIRED", "the parent token has expired")

    block = attenuation_block(delegate_to, purpose, wanted_resources, wanted_operations, expires_at, approvals)
    child = append_block(token, block)
    # never hand out a token every verifier would refuse (too many links or prefixes, a bad parent)
    refusal = admission_error(decode_token(child), len(child))
    if refusal:
        raise refusal
    return seal_token(child) if seal else child
