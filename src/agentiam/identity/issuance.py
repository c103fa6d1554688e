"""Signing of the tokens the identity package issues: JWT-SVIDs and sessions.

Claim sets are built from the ``agentiam.tokens`` value types, so they have the
shape the verifiers expect, ``ver`` included.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentiam.jose import sign_jws
from agentiam.spiffe import agent_spiffe_id
from agentiam.tokens import SESSION_TYP, SVID_TYP, SessionClaims, SVIDClaims, TaskRef

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext


@dataclass(frozen=True, slots=True)
class IssuedSVID:
    """A signed JWT-SVID and the values a response or audit event needs."""

    svid: str
    spiffe_id: str
    jti: str
    expires_in: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A signed session token with its session id and lifetime."""

    token: str
    sid: str
    jti: str
    expires_in: int


def new_instance_id() -> str:
    """Return a fresh random instance id, a valid SPIFFE path segment."""
    return secrets.token_hex(16)


def issue_svid(
    ctx: ServerContext,
    *,
    agent_class: str,
    jkt: str,
    now: float,
    parent: str | None = None,
    task: TaskRef | None = None,
    spiffe_id: str | None = None,
    not_after: float | None = None,
    ancestors: tuple[str, ...] = (),
) -> IssuedSVID:
    """Sign a JWT-SVID for an instance of a class, bound to the key ``jkt``.

    Args:
        parent: the parent instance's SPIFFE ID, for a sub-agent.
        task: the task the sub-agent works in.
        spiffe_id: the SPIFFE ID of an instance that renews its SVID; a new
            instance id is drawn when it is None.
        not_after: the latest ``exp`` the SVID may have, e.g. the ``exp`` of the
            parent's access token; ``svid_ttl`` from now applies when it is later.
        ancestors: for a sub-agent, the SPIFFE IDs of its parent chain, root
            first and ending with ``parent``.
    """
    settings = ctx.settings
    if spiffe_id is None:
        spiffe_id = str(
            agent_spiffe_id(settings.trust_domain, agent_class, new_instance_id())
        )
    issued_at = int(now)
    expires_at = issued_at + settings.svid_ttl
    if not_after is not None:
        expires_at = min(expires_at, int(not_after))
    jti = secrets.token_urlsafe(16)

    claims = SVIDClaims(
        iss=settings.issuer,
        aud=(settings.issuer,),
        sub=spiffe_id,
        iat=issued_at,
        exp=expires_at,
        jti=jti,
        cnf_jkt=jkt,
        parent=parent,
        task=task,
        ancestors=ancestors,
    )
    svid = sign_jws(claims.to_dict(), ctx.keyring.active(), typ=SVID_TYP)
    return IssuedSVID(svid, spiffe_id, jti, max(0, expires_at - issued_at), expires_at)


def issue_session(
    ctx: ServerContext, *, user_id: str, admin: bool, now: float
) -> IssuedSession:
    """Sign a session token for a human who logged in with a password."""
    settings = ctx.settings
    issued_at = int(now)
    sid = secrets.token_urlsafe(16)
    jti = secrets.token_urlsafe(16)

    claims = SessionClaims(
        iss=settings.issuer,
        aud=(settings.issuer,),
        sub=user_id,
        sid=sid,
        amr=("pwd",),
        iat=issued_at,
        exp=issued_at + settings.session_ttl,
        jti=jti,
        admin=admin,
    )
    token = sign_jws(claims.to_dict(), ctx.keyring.active(), typ=SESSION_TYP)
    return IssuedSession(token, sid, jti, settings.session_ttl)
