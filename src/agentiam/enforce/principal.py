"""Principal, the verified caller the middleware hands to the application."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request, built from a verified delegated access token.

    Attributes:
        human: the user id of the human who granted the delegation (``sub``).
        client_id: the SPIFFE ID of the acting agent instance.
        actors: the SPIFFE IDs of the delegation chain, acting instance first.
        task_id: the id of the task the token belongs to, if any.
        task_path: the task ids from the root task to ``task_id``.
        grant_id: the id of the grant the token derives from.
        receipt_hash: the base64url SHA-256 of the grant's consent receipt.
        scopes: the scope tokens of the access token.
        authorization_details: the RFC 9396 objects of the token.
        jti: the token id.
        exp: the token's expiry in Unix seconds.
    """

    human: str
    client_id: str
    actors: tuple[str, ...]
    task_id: str | None
    task_path: tuple[str, ...]
    grant_id: str | None
    receipt_hash: str | None
    scopes: frozenset[str]
    authorization_details: tuple[dict[str, Any], ...] = field(repr=False)
    jti: str
    exp: float
