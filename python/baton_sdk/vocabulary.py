"""Baton's token vocabulary (DESIGN.md, schemas/token-vocabulary.json; src/token/vocabulary.ts)."""
from __future__ import annotations

import re
OPERATIONS = {
    "pg": ("read", "insert", "update", "delete", "truncate", "ddl", "admin", "execute", "read_unmasked"),
    "http": ("read", "write", "delete"),
    "mcp": ("call",),
    "k8s": ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "head", "options", "post", "put"),
    "aws": ("read", "write", "delete", "assume"),
    "baton": ("admin",),
}
ALL_OPERATIONS = tuple(dict.fromkeys(op for ops in OPERATIONS.values() for op in ops))

#: ``<kind>:<upstream>/<object>``, object may end in ``*`` (prefix) or ``/`` (directory); or ``*`` alone.
RESOURCE_RE = re.compile(r"^(?:\*|(pg|http|mcp|k8s|aws|baton):([A-Za-z0-9_.-]+|\*)(?:/([!-\[\]-~]*))?)$")

#: Facts an attenuation block may state: lineage information, never rights.
LINEAGE_FACTS = ("delegated_to", "purpose")
# require_approval("<operation>") in an attenuation block: the holder's statements doing it wait for an
# approver (may repeat, one per operation; "*" = every operation but read). Only ever adds a requirement.
APPROVAL_FACT = "require_approval"

#: Predicate names only the broker's authority block or the authorizer may define (vocabulary.ts).
RESERVED_PREDICATES = (
    "token_id", "subject", "issuer", "agent", "right", "role", "time", "resource", "operation",
    "query", "revocation_id",
)


def parse_resource(pattern: str) -> str:
    """Checks a resource or resource pattern; raises ``TypeError`` outside the grammar."""
    if not isinstance(pattern, str) or not 0 < len(pattern) <= 512:
        raise TypeError("resource must be a non-empty string of at most 512 characters")
    if not RESOURCE_RE.match(pattern):
        raise TypeError(f'resource "{printable(pattern)}" does not match <kind>:<upstream>/<object>')
    if "*" in pattern and pattern.index("*") != len(pattern) - 1:
        raise TypeError(f'resource "{printable(pattern)}" may only end with "*"')
    return pattern


def covers(pattern: str, target: str) -> bool:
    """True when ``pattern`` covers ``target`` (a resource or narrower pattern): exact, a trailing ``*``
    (string prefix) or a trailing ``/`` (a directory: the path itself and everything below it)."""
    if pattern == target:
        return True
    if pattern.endswith("*"):
        return target.startswith(pattern[:-1])
    if pattern.endswith("/"):
        return target.startswith(pattern) or target == pattern[:-1]
    return False


def is_operation(op: str) -> bool:
    return op == "*" or op in ALL_OPERATIONS


def printable(text: str, limit: int = 80) -> str:
    """Quote-free rendering of untrusted text for error messages."""
    clean = re.sub(r'[^ -~]|["\\]', "?", str(text))
    return clean[:limit] + "…" if len(clean) > limit else clean
