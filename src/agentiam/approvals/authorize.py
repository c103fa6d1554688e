"""The CIBA authentication request (OIDC CIBA core 1.0 section 7), poll mode.

An authenticated root agent instance requests a grant on behalf of the user named by
``login_hint``. The request is stored as pending, with only the SHA-256 of the
``auth_req_id`` it returns, until the human approves or denies it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from agentiam.approvals.decisions import AuditRecorder
from agentiam.approvals.errors import UnknownUserIdError
from agentiam.approvals.request import AuthRequestParams
from agentiam.approvals.store import CIBARequest, CIBARequestStore, hash_auth_req_id
from agentiam.audit.events import AuditEvent
from agentiam.identity.users import User


def new_request_id() -> str:
    """Return a new public id of an approval request."""
    return "apr_" + secrets.token_urlsafe(18)


def new_auth_req_id() -> str:
    """Return a new auth_req_id: 256 random bits, a bearer secret for polling."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class AuthRequestCaller:
    """The authenticated instance making the request."""

    spiffe_id: str
    agent_class: str
    jkt: str


def require_known_user(user: User | None, login_hint: str) -> User:
    """Return the user a login_hint names, or raise ``unknown_user_id``.

    A disabled user is rejected with the same error as an unknown one.
    """
    if user is None or user.disabled:
        raise UnknownUserIdError(reason=f"no enabled user with login '{login_hint}'")
    return user


def create_request_work(
    caller: AuthRequestCaller,
    params: AuthRequestParams,
    user: User,
    *,
    audit: AuditRecorder,
    now: float,
    expires_in: int,
    interval: int,
) -> tuple[str, Callable[[Connection], CIBARequest]]:
    """Build a pending request and the unit of work that stores and audits it.

    Returns:
        The auth_req_id to send to the client, and the unit of work.
    """
    auth_req_id = new_auth_req_id()
    request = CIBARequest(
        id=new_request_id(),
        auth_req_id_hash=hash_auth_req_id(auth_req_id),
        status="pending",
        agent_class=caller.agent_class,
        instance_id=caller.spiffe_id,
        instance_jkt=caller.jkt,
        user_id=user.id,
        binding_message=params.binding_message,
        scopes=params.scopes,
        audiences=params.audiences,
        authorization_details=params.authorization_details,
        max_depth=params.max_depth,
        grant_ttl=params.grant_ttl,
        created_at=now,
        expires_at=now + expires_in,
        interval=interval,
    )

    def work(conn: Connection) -> CIBARequest:
        CIBARequestStore(conn.engine).insert_in(conn, request)
        audit.record_in(conn, requested_event(request))
        return request

    return auth_req_id, work


def requested_event(request: CIBARequest) -> AuditEvent:
    """Return the audit event of a stored authentication request."""
    return AuditEvent(
        type="approval.requested",
        decision="none",
        outcome="pending",
        human=request.user_id,
        actors=(request.instance_id,),
        request={"method": "POST", "endpoint": "/bc-authorize"},
        details={
            "approval_id": request.id,
            "agent_class": request.agent_class,
            "scope": " ".join(request.scopes),
            "audiences": list(request.audiences),
            "authorization_details_types": [
                str(detail.get("type")) for detail in request.authorization_details
            ],
            "max_depth": request.max_depth,
            "grant_ttl": request.grant_ttl,
            "binding_message": request.binding_message,
            "expires_at": request.expires_at,
        },
    )


def refused_event(spiffe_id: str, error_code: str, reason: str | None) -> AuditEvent:
    """Return the audit event of an authentication request that was rejected."""
    return AuditEvent(
        type="approval.requested",
        decision="deny",
        outcome="refused",
        reason=reason,
        actors=(spiffe_id,),
        request={"method": "POST", "endpoint": "/bc-authorize", "status": 400},
        details={"error": error_code},
    )
