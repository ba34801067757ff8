"""Biscuit v3 wire codec: decode, verify the signature chain, append a block, seal.

The Python counterpart of src/token/wire/ (decode.ts, encode.ts, append.ts, crypto.ts, container.ts).
Decoding needs no root key and authenticates nothing (biscuit-rust's ``UnverifiedBiscuit``);
``verify_signatures`` checks every signature against a root key. Appending signs the new block with
the proof secret, names a fresh Ed25519 next key and hands its secret on as the new proof.

Signature payloads (biscuit-rust ``crypto/mod.rs``):

* version 0 (``SignedBlock.version`` absent; what biscuit-wasm 0.5 writes and reads):
  ``block ‖ [external signature] ‖ u32le(next key algorithm) ‖ next key``;
* version 1: ``"\\0BLOCK\\0\\0VERSION\\0" ‖ u32le(1) ‖ "\\0PAYLOAD\\0" ‖ block ‖ "\\0ALGORITHM\\0" ‖
  u32le(alg) ‖ "\\0NEXTKEY\\0" ‖ next key ‖ ["\\0PREVSIG\\0" ‖ previous signature] (not for the
  authority block) ‖ ["\\0EXTERNALSIG\\0" ‖ external signature]``;
* seal: ``last block ‖ u32le(alg) ‖ last next key ‖ last signature``, signed with the proof secret.

Every failure on a token's bytes is one ``BatonError('BATON_ERR_TOKEN_MALFORMED')``: a token is
attacker-controlled input.
"""
from __future__ import annotations

import base64
import re
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from . import biscuit_schema_pb2 as pb
from .errors import BatonError, malformed
from .model import (
    BINARY_KINDS,
    CHECK_KINDS,
    UNARY_KINDS,
    BlockModel,
    Check,
    DecodedBlock,
    DecodedToken,
    Op,
    Predicate,
    PublicKey,
    Query,
    Rule,
    SchemaVersion,
    Term,
    required_version,
)

#: Largest token decoded (bytes after base64).
MAX_TOKEN_BYTES = 64 * 1024
#: Largest date the Datalog text form can write (RFC 3339 years stop at 9999).
MAX_DATE_SECONDS = 253_402_300_799
#: Highest block version ``append_block`` writes by default: biscuit-wasm 0.5 reads versions 3–5.
DEFAULT_MAX_APPEND_VERSION = SchemaVersion.V3_2

#: The default symbols, indices 0…27 (``DEFAULT_SYMBOLS`` in biscuit-rust).
DEFAULT_SYMBOLS: Tuple[str, ...] = (
    "read", "write", "resource", "operation", "right", "time", "role", "owner", "tenant",
    "namespace", "user", "team", "service", "admin", "email", "group", "member", "ip_address",
    "client", "client_ip", "domain", "path", "version", "cluster", "node", "hostname", "nonce",
    "query",
)
SYMBOL_OFFSET = 1024
_DEFAULT_INDEX = {s: i for i, s in enumerate(DEFAULT_SYMBOLS)}

#: Names the Datalog grammar accepts for predicates, variables and FFI functions.
NAME = re.compile(r"^[A-Za-z0-9_:]+$")

_ALGORITHMS = ("ed25519", "secp256r1")
_KEY_LENGTH = {"ed25519": 32, "secp256r1": 33}
_ALGORITHM_NUMBER = {"ed25519": 0, "secp256r1": 1}
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


# ---------------------------------------------------------------------------------------------
# token text


def token_bytes(token: Union[str, bytes], max_bytes: int = MAX_TOKEN_BYTES) -> bytes:
    """Token text (URL-safe base64, padded or not) or raw bytes → bytes."""
    if isinstance(token, (bytes, bytearray)):
        if len(token) > max_bytes:
            raise malformed(f"larger than {max_bytes} bytes")
        return bytes(token)
    if not isinstance(token, str):
        raise malformed("expected a string or bytes")
    text = token.strip()
    if len(text) > -(-max_bytes // 3) * 4:
        raise malformed(f"larger than {max_bytes} bytes")
    bare = text.rstrip("=")
    if not text or not _BASE64URL.match(text) or len(bare) % 4 == 1:
        raise malformed("not URL-safe base64")
    return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))


def token_text(data: bytes) -> str:
    """Bytes → URL-safe base64 with padding, as biscuit-rust's ``to_base64`` writes it."""
    return base64.urlsafe_b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------------
# keys and signatures


def parse_public_key(key: Union[PublicKey, bytes, str]) -> PublicKey:
    """A root key as ``PublicKey``, 32 raw bytes (Ed25519), ``"ed25519/<hex>"`` or bare hex."""
    if isinstance(key, PublicKey):
        return key
    if isinstance(key, (bytes, bytearray)):
        if len(key) != 32:
            raise TypeError("a raw Ed25519 public key is 32 bytes")
        return PublicKey("ed25519", bytes(key))
    if isinstance(key, str):
        algorithm, _, hexkey = key.rpartition("/")
        algorithm = algorithm or "ed25519"
        if algorithm not in _KEY_LENGTH:
            raise TypeError(f"unknown key algorithm {algorithm!r}")
        raw = bytes.fromhex(hexkey)
        if len(raw) != _KEY_LENGTH[algorithm]:
            raise TypeError(f"an {algorithm} public key is {_KEY_LENGTH[algorithm]} bytes")
        return PublicKey(algorithm, raw)
    raise TypeError("expected a PublicKey, bytes or a hex string")


def _verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if key.algorithm == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(key.key).verify(signature, data)
        else:
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key.key)
            pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _raw_public(private: ed25519.Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _secret_matches(secret: bytes, key: PublicKey) -> bool:
    """Whether the proof secret belongs to ``key`` (biscuit-rust checks this when it parses)."""
    try:
        if key.algorithm == "ed25519":
            return _raw_public(ed25519.Ed25519PrivateKey.from_private_bytes(secret)) == key.key
        private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        point = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return point == key.key
    except ValueError:
        return False


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def block_signature_payload(
    version: int,
    block: bytes,
    next_key: PublicKey,
    external_signature: Optional[bytes] = None,
    previous_signature: Optional[bytes] = None,
) -> bytes:
    """What a block signature covers; ``previous_signature`` is None for the authority block."""
    alg = _u32(_ALGORITHM_NUMBER[next_key.algorithm])
    if version == 0:
        return block + (external_signature or b"") + alg + next_key.key
    out = b"\0BLOCK\0\0VERSION\0" + _u32(version) + b"\0PAYLOAD\0" + block
    out += b"\0ALGORITHM\0" + alg + b"\0NEXTKEY\0" + next_key.key
    if previous_signature is not None:
        out += b"\0PREVSIG\0" + previous_signature
    if external_signature is not None:
        out += b"\0EXTERNALSIG\0" + external_signature
    return out


def external_signature_payload(version: int, block: bytes, signer: PublicKey, previous_signature: bytes) -> bytes:
    """What a third party signs: v0 binds the key that signs the block, v1 the previous signature."""
    if version == 0:
        return block + _u32(_ALGORITHM_NUMBER[signer.algorithm]) + signer.key
    return b"\0EXTERNAL\0\0VERSION\0" + _u32(version) + b"\0PAYLOAD\0" + block + b"\0PREVSIG\0" + previous_signature


def seal_signature_payload(block: bytes, next_key: PublicKey, signature: bytes) -> bytes:
    """What the final (seal) signature covers."""
    return block + _u32(_ALGORITHM_NUMBER[next_key.algorithm]) + next_key.key + signature


# ---------------------------------------------------------------------------------------------
# container


@dataclass(frozen=True)
class _Signed:
    block: bytes
    next_key: PublicKey
    signature: bytes
    external: Optional[Tuple[bytes, PublicKey]]
    version: int


@dataclass(frozen=True)
class _Container:
    message: "pb.Biscuit"
    root_key_id: Optional[int]
    blocks: Tuple[_Signed, ...]
    proof_kind: str  # "nextSecret" | "finalSignature"
    proof: bytes


def _strict_parse(message, data: bytes, what: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the runtime warns on some garbage before failing
            message.ParseFromString(data)
    except Exception:
        raise malformed(f"{what} is not a protobuf message of the expected type") from None
    if not message.IsInitialized():
        raise malformed(f"{what} lacks a required field or holds an unknown value")
    # Unknown fields or enum values (kept aside by the runtime) would change the meaning silently.
    size = message.ByteSize()
    message.DiscardUnknownFields()
    if message.ByteSize() != size:
        raise malformed(f"{what} holds fields or values this codec does not know")
    return message


def _public_key(raw, where: str) -> PublicKey:
    if raw.algorithm >= len(_ALGORITHMS):
        raise malformed(f"{where}: unknown key algorithm {raw.algorithm}")
    algorithm = _ALGORITHMS[raw.algorithm]
    if len(raw.key) != _KEY_LENGTH[algorithm]:
        raise malformed(f"{where}: {algorithm} key of {len(raw.key)} bytes")
    return PublicKey(algorithm, bytes(raw.key))


def _signature(sig: bytes, algorithm: Optional[str], where: str) -> bytes:
    ok = len(sig) == 64 if algorithm == "ed25519" else 8 <= len(sig) <= 72
    if not ok:
        raise malformed(f"{where}: signature of {len(sig)} bytes")
    return sig


def _decode_container(data: bytes) -> _Container:
    message = _strict_parse(pb.Biscuit(), data, "the token")
    if message.authority.HasField("externalSignature"):
        raise malformed("the authority block has an external signature")
    raw_blocks = [message.authority, *message.blocks]
    blocks: List[_Signed] = []
    for i, b in enumerate(raw_blocks):
        where = f"block {i}"
        next_key = _public_key(b.nextKey, f"{where} next key")
        signer = None if i == 0 else _public_key(raw_blocks[i - 1].nextKey, where).algorithm
        sig = _signature(bytes(b.signature), signer, where)
        external = None
        if b.HasField("externalSignature"):
            ext_key = _public_key(b.externalSignature.publicKey, f"{where} external key")
            ext_sig = _signature(bytes(b.externalSignature.signature), ext_key.algorithm, f"{where} external signature")
            external = (ext_sig, ext_key)
        blocks.append(_Signed(bytes(b.block), next_key, sig, external, b.version if b.HasField("version") else 0))
    kind = message.proof.WhichOneof("Content")
    if kind == "nextSecret":
        proof = bytes(message.proof.nextSecret)
        if len(proof) != 32:
            raise malformed(f"proof secret of {len(proof)} bytes")
    elif kind == "finalSignature":
        proof = _signature(bytes(message.proof.finalSignature), blocks[-1].next_key.algorithm, "final signature")
    else:
        raise malformed("no proof")
    root_key_id = message.rootKeyId if message.HasField("rootKeyId") else None
    return _Container(message, root_key_id, tuple(blocks), kind, proof)


# ---------------------------------------------------------------------------------------------
# symbols


class SymbolTable:
    """Defaults below 1024, then the symbols of the token's first-party blocks, then new ones."""

    def __init__(self, symbols: Sequence[str] = ()) -> None:
        self._symbols = list(symbols)
        self._index: Dict[str, int] = {}
        for i, s in enumerate(self._symbols):
            self._index.setdefault(s, i)
        self._base = len(self._symbols)

    def lookup(self, index: int) -> Optional[str]:
        if index < SYMBOL_OFFSET:
            return DEFAULT_SYMBOLS[index] if index < len(DEFAULT_SYMBOLS) else None
        i = index - SYMBOL_OFFSET
        return self._symbols[i] if i < len(self._symbols) else None

    def insert(self, s: str) -> int:
        if s in _DEFAULT_INDEX:
            return _DEFAULT_INDEX[s]
        i = self._index.get(s)
        if i is None:
            self._symbols.append(s)
            i = len(self._symbols) - 1
            self._index[s] = i
        return SYMBOL_OFFSET + i

    def added(self) -> List[str]:
        return self._symbols[self._base:]


class KeyTable:
    def __init__(self, keys: Sequence[PublicKey] = ()) -> None:
        self.keys: List[PublicKey] = []
        for k in keys:
            self.insert(k)

    def lookup(self, index: int) -> Optional[PublicKey]:
        return self.keys[index] if 0 <= index < len(self.keys) else None

    def insert(self, key: PublicKey) -> Tuple[int, bool]:
        if key in self.keys:
            return self.keys.index(key), False
        self.keys.append(key)
        return len(self.keys) - 1, True


# ---------------------------------------------------------------------------------------------
# decoding blocks


def _text(data: bytes, where: str) -> str:
    try:
        return bytes(data).decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise malformed(f"{where} is not valid UTF-8") from None


class _Reader:
    def __init__(self, symbols: SymbolTable, keys: KeyTable, where: str) -> None:
        self.symbols, self.keys, self.where = symbols, keys, where

    def symbol(self, index: int) -> str:
        s = self.symbols.lookup(index)
        if s is None:
            raise malformed(f"{self.where}: unknown symbol {index}")
        return s

    def term(self, t) -> Term:
        kind = t.WhichOneof("Content")
        if kind == "variable":
            return ("variable", self.symbol(t.variable))
        if kind == "integer":
            return ("integer", t.integer)
        if kind == "string":
            return ("string", self.symbol(t.string))
        if kind == "date":
            if t.date > MAX_DATE_SECONDS:
                raise malformed(f"{self.where}: date beyond year 9999")
            return ("date", t.date)
        if kind == "bytes":
            return ("bytes", bytes(t.bytes))
        if kind == "bool":
            return ("bool", t.bool)
        if kind == "set":
            kinds = {e.WhichOneof("Content") for e in t.set.set}
            if "variable" in kinds or "set" in kinds:
                raise malformed(f"{self.where}: a set holds a variable or a set")
            if len(kinds) > 1:
                raise malformed(f"{self.where}: set elements of different types")
            return ("set", tuple(self.term(e) for e in t.set.set))
        if kind == "null":
            return ("null", None)
        if kind == "array":
            return ("array", tuple(self.term(e) for e in t.array.array))
        if kind == "map":
            entries = []
            for e in t.map.entries:
                key_kind = e.key.WhichOneof("Content")
                if key_kind == "integer":
                    key = e.key.integer
                elif key_kind == "string":
                    key = self.symbol(e.key.string)
                else:
                    raise malformed(f"{self.where}: empty map key")
                entries.append((key, self.term(e.value)))
            return ("map", tuple(entries))
        raise malformed(f"{self.where}: empty term")

    def predicate(self, p) -> Predicate:
        return Predicate(self.symbol(p.name), tuple(self.term(t) for t in p.terms))

    def _ffi(self, o) -> Optional[str]:
        if not o.HasField("ffiName"):
            raise malformed(f"{self.where}: FFI operation without a name")
        return self.symbol(o.ffiName)

    def op(self, o) -> Op:
        kind = o.WhichOneof("Content")
        if kind == "value":
            return ("value", self.term(o.value))
        if kind == "unary":
            name = UNARY_KINDS[o.unary.kind]
            return ("unary", name, self._ffi(o.unary) if name == "ffi" else None)
        if kind == "Binary":
            name = BINARY_KINDS[o.Binary.kind]
            return ("binary", name, self._ffi(o.Binary) if name == "ffi" else None)
        if kind == "closure":
            return ("closure", tuple(self.symbol(p) for p in o.closure.params), tuple(self.op(c) for c in o.closure.ops))
        raise malformed(f"{self.where}: empty operation")

    def scope(self, s):
        kind = s.WhichOneof("Content")
        if kind == "scopeType":
            return "authority" if s.scopeType == 0 else "previous"
        if kind == "publicKey":
            k = self.keys.lookup(s.publicKey)
            if k is None:
                raise malformed(f"{self.where}: unknown public key {s.publicKey}")
            return k
        raise malformed(f"{self.where}: invalid scope")

    def query(self, r) -> Query:
        return Query(
            tuple(self.predicate(p) for p in r.body),
            tuple(tuple(self.op(o) for o in e.ops) for e in r.expressions),
            tuple(self.scope(s) for s in r.scope),
        )

    def rule(self, r) -> Rule:
        q = self.query(r)
        return Rule(self.predicate(r.head), q.body, q.expressions, q.scopes)


@dataclass(frozen=True)
class _Parts:
    container: _Container
    token: DecodedToken


def _decode_parts(token: Union[str, bytes], max_bytes: int = MAX_TOKEN_BYTES) -> _Parts:
    try:
        container = _decode_container(token_bytes(token, max_bytes))
        raws = [_strict_parse(pb.Block(), b.block, f"block {i}") for i, b in enumerate(container.blocks)]
        # token-wide tables: symbols of first-party blocks, keys of every block (biscuit-rust extract_blocks)
        symbols: List[str] = []
        keys = KeyTable()
        for i, (raw, signed) in enumerate(zip(raws, container.blocks)):
            if signed.external:
                keys.insert(signed.external[1])
            else:
                symbols.extend(_text(s, f"block {i} symbol") for s in raw.symbols)
            for k in raw.publicKeys:
                keys.insert(_public_key(k, f"block {i} public key"))
        blocks = tuple(_decode_block(raw, signed, i, symbols, keys.keys) for i, (raw, signed) in enumerate(zip(raws, container.blocks)))
    except BatonError:
        raise
    except (RecursionError, ValueError, IndexError, OverflowError) as err:
        raise malformed(f"undecodable ({type(err).__name__})") from None
    decoded = DecodedToken(
        root_key_id=container.root_key_id,
        blocks=blocks,
        sealed=container.proof_kind == "finalSignature",
        symbols=tuple(symbols),
        keys=tuple(keys.keys),
    )
    return _Parts(container, decoded)


def _decode_block(raw, signed: _Signed, index: int, symbols: List[str], keys: List[PublicKey]) -> DecodedBlock:
    where = f"block {index}"
    version = raw.version if raw.HasField("version") else 0
    if version < SchemaVersion.V3_0 or version > SchemaVersion.V3_3:
        raise malformed(f"{where}: unsupported schema version {version}")
    own = tuple(_text(s, f"{where} symbol") for s in raw.symbols)
    public_keys = tuple(_public_key(k, f"{where} public key") for k in raw.publicKeys)
    if signed.external:
        # a third-party block is written against the default symbols and its own keys only
        reader = _Reader(SymbolTable(own), KeyTable(public_keys), where)
    else:
        reader = _Reader(SymbolTable(symbols), KeyTable(keys), where)
    facts = tuple(reader.predicate(f.predicate) for f in raw.facts_v2)
    rules = tuple(reader.rule(r) for r in raw.rules_v2)
    checks = []
    for c in raw.checks_v2:
        if c.HasField("kind") and version < SchemaVersion.V3_1:
            raise malformed(f"{where}: check kind in a version {version} block")
        checks.append(Check(CHECK_KINDS[c.kind], tuple(reader.query(q) for q in c.queries)))
    scopes = tuple(reader.scope(s) for s in raw.scope)
    needed = required_version(facts, rules, checks, scopes, third_party=signed.external is not None)
    if needed > version:
        raise malformed(f"{where}: uses version {needed} features but declares version {version}")
    return DecodedBlock(
        index=index,
        symbols=own,
        context=_text(raw.context, f"{where} context") if raw.HasField("context") else None,
        version=version,
        signature_version=signed.version,
        facts=facts,
        rules=rules,
        checks=tuple(checks),
        scopes=scopes,
        public_keys=public_keys,
        next_key=signed.next_key,
        signature=signed.signature,
        external_key=signed.external[1] if signed.external else None,
    )


def decode_token(token: Union[str, bytes], max_bytes: int = MAX_TOKEN_BYTES) -> DecodedToken:
    """Decodes a Biscuit v3 token WITHOUT its root key: blocks, Datalog, revocation ids.

    :raises BatonError: ``BATON_ERR_TOKEN_MALFORMED`` on anything that is not a well-formed token.
    """
    return _decode_parts(token, max_bytes).token


# ---------------------------------------------------------------------------------------------
# verification


def verify_signatures(token: Union[str, bytes], root_key: Union[PublicKey, bytes, str], max_bytes: int = MAX_TOKEN_BYTES) -> DecodedToken:
    """Decodes ``token`` and checks its whole signature chain against ``root_key``.

    Checks every block signature (payload format 0 or 1), third-party signatures, and the proof:
    the secret must belong to the last next key, or the final signature must seal the last block.
    Authorization (running the Datalog) is the verifier's job, not the SDK's.

    :raises BatonError: ``BATON_ERR_TOKEN_MALFORMED`` or ``BATON_ERR_TOKEN_SIGNATURE``.
    """
    parts = _decode_parts(token, max_bytes)
    root = parse_public_key(root_key)
    blocks = parts.container.blocks

    def bad(reason: str) -> BatonError:
        return BatonError("BATON_ERR_TOKEN_SIGNATURE", "token signature is invalid", reason)

    signer = root
    previous: Optional[bytes] = None
    for i, b in enumerate(blocks):
        if b.version not in (0, 1):
            raise bad(f"block {i}: unsupported signature version {b.version}")
        external_sig = b.external[0] if b.external else None
        payload = block_signature_payload(b.version, b.block, b.next_key, external_sig, previous)
        if not _verify(signer, b.signature, payload):
            raise bad(f"block {i}: signature does not verify")
        if b.external:
            if i == 0:
                raise bad("the authority block has an external signature")
            ext_payload = external_signature_payload(b.version, b.block, signer, previous or b"")
            if not _verify(b.external[1], b.external[0], ext_payload):
                raise bad(f"block {i}: third-party signature does not verify")
        signer, previous = b.next_key, b.signature
    last = blocks[-1]
    if parts.container.proof_kind == "nextSecret":
        if not _secret_matches(parts.container.proof, last.next_key):
            raise bad("the proof does not match the last block's next key")
    elif not _verify(last.next_key, parts.container.proof, seal_signature_payload(last.block, last.next_key, last.signature)):
        raise bad("the final signature does not verify")
    return parts.token


# ---------------------------------------------------------------------------------------------
# encoding and appending


def _invalid(message: str) -> TypeError:
    return TypeError(f"invalid block: {message}")


def _check_name(n, what: str) -> str:
    if not isinstance(n, str) or not NAME.match(n):
        raise _invalid(f"{what} {n!r} must match {NAME.pattern}")
    return n


def _utf8(s, what: str) -> bytes:
    if not isinstance(s, str):
        raise _invalid(f"{what} must be a string")
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"{what} must be a well-formed string") from None


class _Writer:
    def __init__(self, symbols: SymbolTable, keys: KeyTable) -> None:
        self.symbols, self.keys, self.new_keys = symbols, keys, []

    def sym(self, s: str, what: str) -> int:
        _utf8(s, what)
        return self.symbols.insert(s)

    def term(self, out, t: Term, in_set: bool = False) -> None:
        if not isinstance(t, tuple) or len(t) != 2:
            raise _invalid("a term is a (kind, value) tuple")
        kind, value = t
        if kind == "variable":
            if in_set:
                raise _invalid("a set cannot hold a variable")
            out.variable = self.symbols.insert(_check_name(value, "variable"))
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool) or not _I64_MIN <= value <= _I64_MAX:
                raise _invalid("an integer must be an int in the i64 range")
            out.integer = value
        elif kind == "string":
            out.string = self.sym(value, "a string term")
        elif kind == "date":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DATE_SECONDS:
                raise _invalid("a date must be whole seconds between 1970 and 9999")
            out.date = value
        elif kind == "bytes":
            if not isinstance(value, (bytes, bytearray)):
                raise _invalid("bytes must be bytes")
            out.bytes = bytes(value)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise _invalid("bool must be a bool")
            out.bool = value
        elif kind == "set":
            if in_set:
                raise _invalid("a set cannot hold a set")
            if len({e[0] for e in value}) > 1:
                raise _invalid("set elements must have one type")
            out.set.SetInParent()
            for e in value:
                self.term(out.set.set.add(), e, True)
        elif kind == "null":
            out.null.SetInParent()
        elif kind == "array":
            out.array.SetInParent()
            for e in value:
                self.term(out.array.array.add(), e)
        elif kind == "map":
            out.map.SetInParent()
            for key, v in value:
                entry = out.map.entries.add()
                if isinstance(key, int) and not isinstance(key, bool):
                    entry.key.integer = key
                else:
                    entry.key.string = self.sym(key, "a map key")
                self.term(entry.value, v)
        else:
            raise _invalid(f"unknown term kind {kind!r}")

    def predicate(self, out, p: Predicate, role: str) -> None:
        out.name = self.symbols.insert(_check_name(p.name, "predicate name"))
        if role == "fact" and any(t[0] == "variable" for t in p.terms):
            raise _invalid(f"fact {p.name} holds a variable")
        if role != "head" and not p.terms:
            raise _invalid(f"{role} predicate {p.name} has no terms")
        for t in p.terms:
            self.term(out.terms.add(), t)

    def op(self, out, o: Op) -> None:
        if o[0] == "value":
            self.term(out.value, o[1])
        elif o[0] in ("unary", "binary"):
            kinds = UNARY_KINDS if o[0] == "unary" else BINARY_KINDS
            if o[1] not in kinds:
                raise _invalid(f"unknown {o[0]} operator {o[1]!r}")
            target = out.unary if o[0] == "unary" else out.Binary
            target.kind = kinds.index(o[1])
            if o[1] == "ffi":
                target.ffiName = self.sym(_check_name(o[2] if len(o) > 2 else None, "extern function"), "extern function")
        elif o[0] == "closure":
            out.closure.SetInParent()
            for p in o[1]:
                out.closure.params.append(self.symbols.insert(_check_name(p, "closure parameter")))
            for c in o[2]:
                self.op(out.closure.ops.add(), c)
        else:
            raise _invalid(f"unknown op {o[0]!r}")

    def scope(self, out, s) -> None:
        if s == "authority":
            out.scopeType = 0
        elif s == "previous":
            out.scopeType = 1
        elif isinstance(s, PublicKey) and s.algorithm in _KEY_LENGTH and len(s.key) == _KEY_LENGTH[s.algorithm]:
            index, added = self.keys.insert(s)
            if added:
                self.new_keys.append(s)
            out.publicKey = index
        else:
            raise _invalid(f"invalid scope {s!r}")

    def query(self, out, q, head: Predicate) -> None:
        if not q.body and not q.expressions:
            raise _invalid("a query needs a predicate or an expression")
        self.predicate(out.head, head, "head")
        for p in q.body:
            self.predicate(out.body.add(), p, "body")
        for e in q.expressions:
            from .printer import expression_tree  # well-formed stack or ValueError

            try:
                expression_tree(e)
            except ValueError as err:
                raise _invalid(str(err)) from None
            ex = out.expressions.add()
            for o in e:
                self.op(ex.ops.add(), o)
        for s in q.scopes:
            self.scope(out.scope.add(), s)


_QUERY_HEAD = Predicate("query", ())


def encode_block(block: BlockModel, symbols: Sequence[str], keys: Sequence[PublicKey], max_version: int = DEFAULT_MAX_APPEND_VERSION) -> bytes:
    """Serializes ``block`` as a ``Block`` message against the token's symbol and key tables.

    Symbols are interned as biscuit-rust does: defaults and known symbols keep their index, only
    new strings become the block's ``symbols``. An invalid model raises ``TypeError``.
    """
    for r in block.rules:
        bound = {t[1] for p in r.body for t in p.terms if t[0] == "variable"}
        free = [t[1] for t in r.head.terms if t[0] == "variable" and t[1] not in bound]
        if free:
            raise _invalid(f"rule head {r.head.name} uses unbound variables {', '.join(free)}")
    for c in block.checks:
        if c.kind not in CHECK_KINDS:
            raise _invalid(f"unknown check kind {c.kind!r}")
        if not c.queries:
            raise _invalid("a check needs at least one query")
    version = required_version(block.facts, block.rules, block.checks, block.scopes)
    if version > max_version:
        raise _invalid(f"it needs Datalog schema version {version}, above the supported {max_version}")
    w = _Writer(SymbolTable(symbols), KeyTable(keys))
    message = pb.Block()
    for f in block.facts:
        w.predicate(message.facts_v2.add().predicate, f, "fact")
    for r in block.rules:
        w.query(message.rules_v2.add(), r, r.head)
    for c in block.checks:
        out = message.checks_v2.add()
        for q in c.queries:
            w.query(out.queries.add(), q, _QUERY_HEAD)
        if CHECK_KINDS.index(c.kind):  # `if` is the default; a v3.0 block must not carry the field
            out.kind = CHECK_KINDS.index(c.kind)
    for s in block.scopes:
        w.scope(message.scope.add(), s)
    if block.context is not None:
        message.context = _utf8(block.context, "context")
    message.version = max(version, SchemaVersion.V3_0)
    for s in w.symbols.added():
        message.symbols.append(s.encode("utf-8"))
    for k in w.new_keys:
        message.publicKeys.add(algorithm=_ALGORITHM_NUMBER[k.algorithm], key=k.key)
    return message.SerializeToString()


def _proof_secret(parts: _Parts) -> bytes:
    if parts.container.proof_kind == "finalSignature":
        raise BatonError("BATON_ERR_TOKEN_SEALED", "the token is sealed and cannot be attenuated")
    if parts.container.blocks[-1].next_key.algorithm != "ed25519":
        raise malformed("only Ed25519 chains can be extended offline")
    return parts.container.proof


def _sign_with_proof(secret: bytes, last_next_key: PublicKey, payload: bytes) -> bytes:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    if _raw_public(key) != last_next_key.key:
        raise malformed("the proof does not match the last block's next key")
    return key.sign(payload)


def append_block(
    token: Union[str, bytes],
    block: BlockModel,
    max_version: int = DEFAULT_MAX_APPEND_VERSION,
    max_bytes: int = MAX_TOKEN_BYTES,
) -> str:
    """Appends a block to a token offline (no root key needed); returns the child token text.

    The signature payload format follows biscuit-rust: version 1 when the chain already uses it or
    the block needs Datalog v3.3, else version 0 (the only one biscuit-wasm 0.5 reads).

    :raises BatonError: ``BATON_ERR_TOKEN_SEALED``, ``BATON_ERR_TOKEN_MALFORMED``.
    :raises TypeError: the block model is not a valid block.
    """
    parts = _decode_parts(token, max_bytes)
    secret = _proof_secret(parts)
    encoded = encode_block(block, parts.token.symbols, parts.token.keys, max_version)
    next_private = ed25519.Ed25519PrivateKey.generate()
    next_key = PublicKey("ed25519", _raw_public(next_private))
    last = parts.container.blocks[-1]
    datalog_version = pb.Block.FromString(encoded).version
    sig_version = max([b.version for b in parts.container.blocks] + [1 if datalog_version >= SchemaVersion.V3_3 else 0])
    payload = block_signature_payload(sig_version, encoded, next_key, None, last.signature)
    signature = _sign_with_proof(secret, last.next_key, payload)
    message = pb.Biscuit()
    message.CopyFrom(parts.container.message)
    signed = message.blocks.add(block=encoded, signature=signature)
    signed.nextKey.algorithm = 0
    signed.nextKey.key = next_key.key
    if sig_version:
        signed.version = sig_version
    seed = next_private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    message.proof.nextSecret = seed
    return token_text(message.SerializeToString())


def seal_token(token: Union[str, bytes], max_bytes: int = MAX_TOKEN_BYTES) -> str:
    """Seals a token offline: the proof secret becomes a final signature; nothing can be appended.

    :raises BatonError: ``BATON_ERR_TOKEN_SEALED`` if already sealed, ``BATON_ERR_TOKEN_MALFORMED``.
    """
    parts = _decode_parts(token, max_bytes)
    secret = _proof_secret(parts)
    last = parts.container.blocks[-1]
    final = _sign_with_proof(secret, last.next_key, seal_signature_payload(last.block, last.next_key, last.signature))
    message = pb.Biscuit()
    message.CopyFrom(parts.container.message)
    message.proof.finalSignature = final
    return token_text(message.SerializeToString())
