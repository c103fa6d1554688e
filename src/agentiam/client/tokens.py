"""DelegatedToken, the access token an agent holds, and its unverified claims."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from agentiam.client.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class DelegatedToken:
    """A delegated access token as the holder sees it.

    Attributes:
        access_token: the compact JWS to send as ``Authorization: DPoP <token>``.
        expires_at: Unix seconds after which the token is no longer valid.
        scope: the space-separated scope the server granted.
        task_id: the id of the task the token belongs to, if any.
        unverified_claims: the payload decoded WITHOUT a signature check; it is a
            convenience for the holder and must never be used for an access decision.
    """

    access_token: str = field(repr=False)
    expires_at: float
    scope: str
    task_id: str | None
    unverified_claims: dict[str, Any] = field(repr=False, compare=False)

    @property
    def scopes(self) -> frozenset[str]:
        """The granted scope as a set of scope tokens."""
        return frozenset(self.scope.split())


def decode_unverified_claims(token: str) -> dict[str, Any]:
    """Decode the payload of a compact JWS without checking its signature.

    Raises:
        ProtocolError: the token is not a three-part JWS with a JSON object payload.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ProtocolError("The server returned a token that is not a compact JWS.")

    payload = parts[1]
    padded = payload + "=" * (-len(payload) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError) as err:
        raise ProtocolError("The server returned a token with a bad payload.") from err

    if not isinstance(claims, dict):
        raise ProtocolError(
            "The server returned a token whose payload is not an object."
        )
    return claims


def delegated_token_from_response(body: dict[str, Any], now: float) -> DelegatedToken:
    """Build a DelegatedToken from an RFC 6749 section 5.1 token response.

    Raises:
        ProtocolError: ``access_token`` is missing or the token type is not DPoP.
    """
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProtocolError("The token response has no 'access_token'.")

    token_type = body.get("token_type", "DPoP")
    if not isinstance(token_type, str) or token_type.lower() != "dpop":
        raise ProtocolError(
            f"The token response has token_type '{token_type}', expected 'DPoP'."
        )

    claims = decode_unverified_claims(access_token)
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expires_at = now + float(expires_in)
    else:
        expires_at = float(claims.get("exp", now))

    scope = body.get("scope", claims.get("scope", ""))
    task_id = body.get("task_id")
    task = claims.get("task")
    if task_id is None and isinstance(task, dict):
        task_id = task.get("id")

    return DelegatedToken(
        access_token=access_token,
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) else "",
        task_id=task_id if isinstance(task_id, str) else None,
        unverified_claims=claims,
    )
