"""Client for the broker's RFC 8693 token exchange (src/sdk/exchange.ts), on urllib only."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterable, Optional, Union

from .errors import ExchangeError

GRANT_TYPE_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_BATON = "urn:baton:params:token-type:biscuit"


def exchange(
    broker: str,
    subject_token: str,
    subject_token_type: str = "jwt",
    actor_token: Optional[str] = None,
    resources: Optional[Iterable[str]] = None,
    scope: Optional[Iterable[str]] = None,
    ttl: Union[str, int, None] = None,
    timeout: float = 30.0,
) -> str:
    """Exchanges an OIDC token for a Baton token (``POST {broker}/v1/token``).

    :param broker: broker base URL, e.g. ``http://127.0.0.1:8080``.
    :param subject_token: the subject's OIDC token (JWT).
    :param subject_token_type: ``jwt``, ``id_token`` or ``access_token``.
    :param actor_token: the agent's own OIDC token when it acts for the subject (delegation).
    :param resources: narrow to these resources / upstreams.
    :param scope: narrow to these operations.
    :param ttl: requested lifetime (``"15m"`` or seconds); the broker clamps it to policy.
    :raises ExchangeError: with the broker's RFC 6749 error code (``invalid_grant``, …), or
        ``server_error`` when the broker cannot be reached or answers garbage.
    """
    form = [
        ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
        ("subject_token", subject_token),
        ("subject_token_type", f"urn:ietf:params:oauth:token-type:{subject_token_type}"),
        ("requested_token_type", TOKEN_TYPE_BATON),
    ]
    if actor_token:
        form += [("actor_token", actor_token), ("actor_token_type", "urn:ietf:params:oauth:token-type:jwt")]
    form += [("resource", r) for r in resources or []]
    scope = list(scope or [])
    if scope:
        form.append(("scope", " ".join(scope)))
    if ttl is not None:
        form.append(("requested_lifetime", str(ttl)))
    request = urllib.request.Request(
        broker.rstrip("/") + "/v1/token",
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        raise ExchangeError("server_error", f"broker unreachable: {err}", 0) from None
    try:
        body = json.loads(raw.decode("utf-8"))
        if not isinstance(body, dict):
            body = {}
    except (ValueError, UnicodeDecodeError):
        body = {}
    token = body.get("access_token")
    if status >= 400 or not isinstance(token, str) or not token:
        raise ExchangeError(str(body.get("error") or "server_error"), str(body.get("error_description") or f"HTTP {status}"), status)
    return token
