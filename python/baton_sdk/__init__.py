"""Baton agent SDK for Python: exchange an OIDC token, attenuate offline, inspect.

Pure Python on ``cryptography`` and ``protobuf``; the same token vocabulary and error codes as the
TypeScript SDK (``baton/sdk``).
"""
from .attenuation import attenuate, attenuation_block, parse_duration
from .errors import BatonError, ExchangeError
from .exchange import exchange
from .inspection import fetch_public_keys, inspect
from .lineage import effective_rights, read_lineage
from .printer import block_to_datalog
from .wire import append_block, decode_token, seal_token, verify_signatures

__version__ = "0.1.0"
__all__ = [
    "BatonError",
    "ExchangeError",
    "append_block",
    "attenuate",
    "attenuation_block",
    "block_to_datalog",
    "decode_token",
    "effective_rights",
    "exchange",
    "fetch_public_keys",
    "inspect",
    "parse_duration",
    "read_lineage",
    "seal_token",
    "verify_signatures",
]
