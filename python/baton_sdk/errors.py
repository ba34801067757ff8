"""Typed errors with the same stable codes as the TypeScript SDK (src/errors.ts)."""
from __future__ import annotations


class BatonError(Exception):
    """A refusal with a stable ``code`` (``BATON_ERR_…``), as the TypeScript ``BatonError``.

    Codes raised by this SDK: ``BATON_ERR_TOKEN_MALFORMED``, ``BATON_ERR_TOKEN_SIGNATURE``,
    ``BATON_ERR_TOKEN_UNKNOWN_KEY``, ``BATON_ERR_TOKEN_EXPIRED``, ``BATON_ERR_TOKEN_TOO_COMPLEX``,
    ``BATON_ERR_TOKEN_RESERVED_NAME``, ``BATON_ERR_TOKEN_SEALED``, ``BATON_ERR_ATTENUATION_WIDENS``,
    ``BATON_ERR_INVALID_REQUEST``.
    """

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ExchangeError(Exception):
    """The broker refused the token exchange; ``error`` is the RFC 6749 §5.2 code."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"token exchange failed: {error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def malformed(reason: str) -> BatonError:
    """The one error every decoding failure surfaces as (raise it)."""
    return BatonError("BATON_ERR_TOKEN_MALFORMED", f"malformed token: {reason}", reason)
