"""A human's decision on a CIBA request: approval makes a grant, denial ends it.

Both decisions are units of work for the group-commit writer. Approval signs the
consent receipt, inserts the grant, marks the request approved and records the audit
event in one transaction, so a grant never exists without its receipt and event.
The HTTP routes and the CLI share these functions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy.engine import Connection, Engine

from agentiam.approvals.errors import ApprovalDecidedError
from agentiam.approvals.store import CIBARequest, CIBARequestStore
from agentiam.audit.events import AuditEvent
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.delegation.receipts import ConsentReceipt, sign_receipt
from agentiam.errors import NotFoundError
from agentiam.jose import SigningKey

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

#: The channel of a decision: the HTTP API, or the CLI on the data directory.
DecisionChannel = Literal["api", "cli"]


class AuditRecorder(Protocol):
    """The part of ``AuditLog`` a decision needs: recording inside a unit of work."""

    def record_in(self, conn: Connection, event: AuditEvent) -> object:
        """Record an event on the unit of work's connection."""
        ...


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """The server services a decision uses, whether run by a route or the CLI."""

    engine: Engine
    issuer: str
    signing_key: Callable[[], SigningKey]
    audit: AuditRecorder
    clock: Callable[[], float]

    @classmethod
    def from_server(cls, ctx: ServerContext) -> DecisionContext:
        """Take what a decision needs from the server context."""
        return cls(
            engine=ctx.engine,
            issuer=ctx.settings.issuer,
            signing_key=ctx.keyring.active,
            audit=ctx.audit,
            clock=ctx.clock,
        )


def new_grant_id() -> str:
    """Return a new random grant id."""
    return "grt_" + secrets.token_urlsafe(18)


def new_receipt_id() -> str:
    """Return a new random consent receipt id (its ``jti``)."""
    return "rcp_" + secrets.token_urlsafe(18)


def _load_pending(
    conn: Connection, request_id: str, user_id: str, now: float
) -> CIBARequest:
    request = CIBARequestStore(conn.engine).get_in(conn, request_id)

    # Another user's request gets the same error as a missing one, so ids of other
    # people's requests cannot be probed.
    if request is None or request.user_id != user_id:
        raise NotFoundError(f"Approval request '{request_id}' was not found.")

    if request.status != "pending" or request.is_expired(now):
        raise ApprovalDecidedError(_decided_hint(request, request_id, now))

    return request


def _decided_hint(request: CIBARequest | None, request_id: str, now: float) -> str:
    """Say in the user's words why a request can no longer be decided.

    An approved request becomes ``issued`` once the agent redeems it, so both
    statuses read as approved.
    """
    name = f"Approval request '{request_id}'"
    if request is None:
        return f"{name} was already decided."
    if request.status in ("approved", "issued"):
        return f"{name} was already approved."
    if request.status == "denied":
        return f"{name} was already denied."
    if request.status == "expired" or request.is_expired(now):
        return f"{name} has expired."
    return f"{name} was already decided."


def _changed_meanwhile(conn: Connection, request_id: str, now: float) -> str:
    """Return the hint for a request whose status changed after it was loaded."""
    request = CIBARequestStore(conn.engine).get_in(conn, request_id)
    return _decided_hint(request, request_id, now)


def approve_work(
    dctx: DecisionContext,
    request_id: str,
    *,
    user_id: str,
    channel: DecisionChannel,
) -> Callable[[Connection], Grant]:
    """Return the unit of work that approves a request and creates its grant.

    The unit raises ``NotFoundError`` when the request is missing or not the user's,
    and ``ApprovalDecidedError`` when it was already decided or has expired.
    """

    def work(conn: Connection) -> Grant:
        now = dctx.clock()
        request = _load_pending(conn, request_id, user_id, now)
        grant_id = new_grant_id()

        changed = CIBARequestStore(conn.engine).transition_in(
            conn,
            request.id,
            from_status="pending",
            to_status="approved",
            decided_at=now,
            decided_by=user_id,
            grant_id=grant_id,
        )
        if not changed:
            raise ApprovalDecidedError(_changed_meanwhile(conn, request_id, now))

        grant = _make_grant(dctx, request, grant_id, now)
        GrantStore(conn.engine).insert_in(conn, grant)
        dctx.audit.record_in(conn, _approved_event(request, grant, channel))
        return grant

    return work


def _make_grant(
    dctx: DecisionContext, request: CIBARequest, grant_id: str, now: float
) -> Grant:
    expires_at = float(int(now) + request.grant_ttl)
    receipt = ConsentReceipt(
        issuer=dctx.issuer,
        issued_at=int(now),
        receipt_id=new_receipt_id(),
        human=request.user_id,
        grant_id=grant_id,
        agent_class=request.agent_class,
        scopes=request.scopes,
        audiences=request.audiences,
        authorization_details=request.authorization_details,
        max_depth=request.max_depth,
        grant_expires_at=int(expires_at),
        method="ciba",
        auth_req_id=request.auth_req_id_hash,
        binding_message=request.binding_message,
        approved_at=int(now),
    )
    receipt_jws, receipt_digest = sign_receipt(receipt, dctx.signing_key())

    return Grant(
        id=grant_id,
        user_id=request.user_id,
        agent_class=request.agent_class,
        scopes=request.scopes,
        audiences=request.audiences,
        authorization_details=request.authorization_details,
        max_depth=request.max_depth,
        expires_at=expires_at,
        receipt=receipt_jws,
        receipt_hash=receipt_digest,
        created_at=now,
    )


def _approved_event(
    request: CIBARequest, grant: Grant, channel: DecisionChannel
) -> AuditEvent:
    return AuditEvent(
        type="grant.approved",
        decision="allow",
        outcome="approved",
        human=request.user_id,
        receipt_hash=grant.receipt_hash,
        grant_id=grant.id,
        actors=(request.instance_id,),
        request={"method": "POST", "endpoint": _endpoint(channel)},
        details=_decision_details(request, channel)
        | {"grant_expires_at": grant.expires_at},
    )


def deny_work(
    dctx: DecisionContext,
    request_id: str,
    *,
    user_id: str,
    channel: DecisionChannel,
) -> Callable[[Connection], CIBARequest]:
    """Return the unit of work that denies a request.

    The unit raises the same errors as the one of ``approve_work``.
    """

    def work(conn: Connection) -> CIBARequest:
        now = dctx.clock()
        request = _load_pending(conn, request_id, user_id, now)

        changed = CIBARequestStore(conn.engine).transition_in(
            conn,
            request.id,
            from_status="pending",
            to_status="denied",
            decided_at=now,
            decided_by=user_id,
        )
        if not changed:
            raise ApprovalDecidedError(_changed_meanwhile(conn, request_id, now))

        event = AuditEvent(
            type="approval.denied",
            decision="deny",
            outcome="denied",
            reason="denied by the user",
            human=request.user_id,
            actors=(request.instance_id,),
            request={"method": "POST", "endpoint": _endpoint(channel)},
            details=_decision_details(request, channel),
        )
        dctx.audit.record_in(conn, event)
        return request

    return work


def _endpoint(channel: DecisionChannel) -> str:
    if channel == "api":
        return "/v1/approvals/{id}"
    return "cli:approval"


def _decision_details(request: CIBARequest, channel: DecisionChannel) -> dict[str, Any]:
    return {
        "approval_id": request.id,
        "method": "ciba",
        "channel": channel,
        "agent_class": request.agent_class,
        "scope": " ".join(request.scopes),
        "audiences": list(request.audiences),
        "authorization_details_types": [
            str(detail.get("type")) for detail in request.authorization_details
        ],
        "binding_message": request.binding_message,
    }
