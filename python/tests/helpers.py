"""Test helpers: a broker-shaped authority token minted in Python (the SDK itself never mints)."""
from __future__ import annotations

import os
import sys
import time
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from baton_sdk import biscuit_schema_pb2 as pb  # noqa: E402
from baton_sdk.model import BlockModel, Check, Predicate, PublicKey, Query  # noqa: E402
from baton_sdk.wire import block_signature_payload, encode_block, token_text  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "biscuit-samples")
SAMPLES = os.environ.get("BISCUIT_SAMPLES_DIR", os.path.normpath(SAMPLES))


def raw(key) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def s(v: str):
    return ("string", v)


def mint(
    rights: List[Tuple[str, str]],
    expires_in: Optional[int] = 3600,
    root: Optional[ed25519.Ed25519PrivateKey] = None,
    root_key_id: int = 1,
    extra: BlockModel = BlockModel(),
) -> Tuple[str, ed25519.Ed25519PrivateKey]:
    """A token shaped like the broker's (DESIGN.md authority block), signed with ``root``."""
    root = root or ed25519.Ed25519PrivateKey.generate()
    facts = [
        Predicate("token_id", (s("tok_test"),)),
        Predicate("subject", (s("alice@example.com"),)),
        Predicate("issuer", (s("https://idp.example.com"),)),
        Predicate("agent", (s("planner"),)),
        *(Predicate("right", (s(r), s(o))) for r, o in rights),
        *extra.facts,
    ]
    checks = list(extra.checks)
    if expires_in is not None:
        expiry = int(time.time()) + expires_in
        checks.append(Check("if", (Query((Predicate("time", (("variable", "t"),)),), ((("value", ("variable", "t")), ("value", ("date", expiry)), ("binary", "lessOrEqual", None)),)),)))
    block = encode_block(BlockModel(facts=tuple(facts), rules=extra.rules, checks=tuple(checks)), (), ())
    nxt = ed25519.Ed25519PrivateKey.generate()
    next_key = PublicKey("ed25519", raw(nxt.public_key()))
    message = pb.Biscuit(rootKeyId=root_key_id)
    message.authority.block = block
    message.authority.nextKey.algorithm = 0
    message.authority.nextKey.key = next_key.key
    message.authority.signature = root.sign(block_signature_payload(0, block, next_key))
    message.proof.nextSecret = raw(nxt)
    return token_text(message.SerializeToString()), root
