"""Reading a token's lineage and effective rights, its signatures verified when keys are given
(src/sdk/inspect.ts)."""
from __future__ import annotations

import json
import urllib.request
from typing import Any, Dict, Mapping, Optional, Union

from .errors import BatonError
from .lineage import MAX_TOKEN_TEXT, admission_error, effective_rights, read_lineage
from .wire import decode_token, parse_public_key, verify_signatures

KeySet = Union[Mapping[str, Any], Mapping[int, str]]


def _resolve(public_keys: KeySet, key_id: Optional[int]):
    """``public_keys``: the broker's key set document (``/.well-known/baton-keys.json``) or ``{id: hex}``."""
    if key_id is None:
        raise BatonError("BATON_ERR_TOKEN_UNKNOWN_KEY", "token names no root key id")
    if "keys" in public_keys and isinstance(public_keys["keys"], list):
        found = [k for k in public_keys["keys"] if k.get("id") == key_id and k.get("algorithm", "ed25519") == "ed25519"]
        hexkey = found[0].get("public_key") if found else None
    else:
        hexkey = public_keys.get(key_id, public_keys.get(str(key_id)))
    if not hexkey:
        raise BatonError("BATON_ERR_TOKEN_UNKNOWN_KEY", f"token was signed by unknown or retired key {key_id}")
    try:
        return parse_public_key(hexkey)
    except (TypeError, ValueError):
        raise BatonError("BATON_ERR_TOKEN_UNKNOWN_KEY", f"key {key_id} in the key set is not an Ed25519 key") from None


def inspect(token: str, public_keys: Optional[KeySet] = None) -> Dict[str, Any]:
    """Decodes ``token`` into ``{verified, root_key_id, sealed, lineage, effective[, refusal]}``.

    Without ``public_keys`` nothing is authenticated (``verified`` is False) and a structure every
    verifier would refuse is reported in ``refusal``. With them, every signature is checked against
    the root key named by the token's ``root_key_id`` and such refusals are raised instead.

    :raises BatonError: ``BATON_ERR_TOKEN_MALFORMED``; with keys also ``BATON_ERR_TOKEN_TOO_COMPLEX``,
        ``BATON_ERR_TOKEN_RESERVED_NAME``, ``BATON_ERR_TOKEN_UNKNOWN_KEY``, ``BATON_ERR_TOKEN_SIGNATURE``.
    """
    if not isinstance(token, str) or not token.strip():
        raise BatonError("BATON_ERR_TOKEN_MALFORMED", "token is missing")
    text = token.strip()
    refusal = None
    if public_keys is not None:
        if len(text) > MAX_TOKEN_TEXT:
            raise BatonError("BATON_ERR_TOKEN_TOO_COMPLEX", f"token refused: token is larger than MAX_TOKEN_BYTES={MAX_TOKEN_TEXT}", "MAX_TOKEN_BYTES")
        decoded = decode_token(text)
        err = admission_error(decoded)
        if err:
            raise err
        decoded = verify_signatures(text, _resolve(public_keys, decoded.root_key_id))
    else:
        decoded = decode_token(text)
        err = admission_error(decoded, len(text))
        if err:
            refusal = {"code": err.code, "message": err.message}
    out: Dict[str, Any] = {"verified": public_keys is not None}
    if decoded.root_key_id is not None:
        out["root_key_id"] = decoded.root_key_id
    out.update(sealed=decoded.sealed, lineage=read_lineage(decoded), effective=effective_rights(decoded))
    if refusal:
        out["refusal"] = refusal
    return out


def fetch_public_keys(broker: str, timeout: float = 10.0) -> Dict[str, Any]:
    """The broker's key set document, ``GET {broker}/.well-known/baton-keys.json``."""
    with urllib.request.urlopen(broker.rstrip("/") + "/.well-known/baton-keys.json", timeout=timeout) as res:
        return json.loads(res.read().decode("utf-8"))
