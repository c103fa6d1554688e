"""The CIBA grant at the token endpoint (OIDC CIBA core 1.0 sections 10 and 11).

The requesting instance polls ``/token`` with ``grant_type`` set to
``urn:openid:params:grant-type:ciba``, its ``auth_req_id`` and a DPoP proof made
without ``ath`` (RFC 9449 section 4.3). The proof key must be the one the instance
authenticated with at ``/bc-authorize``, so the auth_req_id alone is useless to
anyone else. Once the human approved, the first poll opens the root task and
returns the first delegated access token of the grant. Any later poll with the same
auth_req_id is ``invalid_grant``.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection
from starlette.requests import Request

from agentiam.approvals.errors import (
    AuthorizationPendingError,
    CIBAAccessDeniedError,
    ExpiredTokenError,
    SlowDownError,
)
from agentiam.approvals.store import CIBARequest, CIBARequestStore
from agentiam.audit.events import AuditEvent
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.errors import InvalidGrantError, InvalidRequestError, OAuthError
from agentiam.identity.authn import require_dpop_proof
from agentiam.identity.classes import AgentClassStore
from agentiam.jose import sign_jws
from agentiam.tasks.store import Task, task_store
from agentiam.tokens import AccessTokenClaims, Actor, GrantRef, TaskRef

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

logger = logging.getLogger(__name__)

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a JOSE typ value, not a secret

#: Seconds added to the interval on each slow_down (CIBA core 1.0 section 11).
SLOW_DOWN_STEP = 5


#: The result of one poll: the token response, or the error to send. An error is
#: returned rather than raised, so the poll's bookkeeping (the time of the poll, a
#: longer interval, the expired status) is committed with it.
PollOutcome = dict[str, Any] | OAuthError


class CIBAGrantHandler:
    """The token endpoint's handler of the CIBA grant type, poll mode."""

    grant_type = CIBA_GRANT_TYPE

    async def handle(
        self, form: Mapping[str, str], request: Request, ctx: ServerContext
    ) -> dict[str, Any]:
        """Redeem an auth_req_id for the first delegated access token of its grant.

        Raises:
            InvalidRequestError: auth_req_id is missing.
            InvalidDPoPProofError: the DPoP proof is missing or invalid.
            AuthorizationPendingError, SlowDownError, ExpiredTokenError,
            CIBAAccessDeniedError: the CIBA section 11 states of the request.
            InvalidGrantError: the auth_req_id is unknown, bound to another key,
                already redeemed, or its grant is revoked or expired.
        """
        auth_req_id = form.get("auth_req_id")
        if not auth_req_id:
            raise InvalidRequestError("The parameter 'auth_req_id' is missing.")

        proof = require_dpop_proof(request, ctx, access_token=None)
        outcome = await ctx.writer.submit(poll_work(ctx, auth_req_id, proof.jkt))

        if isinstance(outcome, OAuthError):
            logger.debug(
                "CIBA poll not redeemed",
                extra={"error": outcome.error, "reason": outcome.reason},
            )
            raise outcome
        return outcome


def poll_work(
    ctx: ServerContext, auth_req_id: str, jkt: str
) -> Callable[[Connection], PollOutcome]:
    """Return the unit of work of one poll by the key with thumbprint ``jkt``."""

    def work(conn: Connection) -> PollOutcome:
        now = ctx.clock()
        store = CIBARequestStore(conn.engine)
        request = store.find_by_auth_req_id_in(conn, auth_req_id)

        if request is None:
            return InvalidGrantError("Unknown auth_req_id.")

        # The same message as an unknown auth_req_id, so a leaked id reveals nothing
        # about its state to the holder of another key.
        if not hmac.compare_digest(jkt, request.instance_jkt):
            return InvalidGrantError(
                "Unknown auth_req_id.",
                reason=f"proof key is not the one of '{request.instance_id}'",
            )

        if ctx.revocations.is_revoked("instance", request.instance_id):
            return InvalidGrantError(
                "The requesting instance is revoked.",
                reason=f"instance '{request.instance_id}' is revoked",
            )

        return _poll_request(ctx, conn, store, request, now)

    return work


def _poll_request(
    ctx: ServerContext,
    conn: Connection,
    store: CIBARequestStore,
    request: CIBARequest,
    now: float,
) -> PollOutcome:
    if request.status == "issued":
        return InvalidGrantError("The auth_req_id has already been redeemed.")

    if request.status == "denied":
        return CIBAAccessDeniedError()

    if request.status == "expired" or request.is_expired(now):
        store.transition_in(
            conn, request.id, from_status="pending", to_status="expired"
        )
        return ExpiredTokenError()

    if request.status == "pending":
        return _pending(conn, store, request, now)

    return issue_first_token(ctx, conn, request, now)


def _pending(
    conn: Connection, store: CIBARequestStore, request: CIBARequest, now: float
) -> PollOutcome:
    last = request.last_polled_at
    if last is not None and now - last < request.interval:
        interval = request.interval + SLOW_DOWN_STEP
        store.record_poll_in(conn, request.id, now=now, interval=interval)
        return SlowDownError()

    store.record_poll_in(conn, request.id, now=now, interval=request.interval)
    return AuthorizationPendingError()


def issue_first_token(
    ctx: ServerContext, conn: Connection, request: CIBARequest, now: float
) -> dict[str, Any]:
    """Open the root task and mint the grant's first delegated access token.

    Runs inside the poll's unit of work, so the issued status, the task, the audit
    events and the token either all exist or none does.

    Raises:
        InvalidGrantError: the grant or its agent class is gone, revoked or expired,
            or another poll redeemed the auth_req_id first.
    """
    store = CIBARequestStore(conn.engine)
    redeemed = store.transition_in(
        conn, request.id, from_status="approved", to_status="issued"
    )
    if not redeemed:
        raise InvalidGrantError("The auth_req_id has already been redeemed.")

    grant = _require_live_grant(ctx, conn, request, now)
    agent_class = AgentClassStore(ctx.engine).get(grant.agent_class)
    if agent_class is None:
        raise InvalidGrantError(
            "The grant's agent class no longer exists.",
            reason=f"agent class '{grant.agent_class}' is gone",
        )

    # The class ceiling may have been narrowed since the request was made, and a
    # token is never wider than the class it is issued to.
    if not set(grant.scopes) <= agent_class.scopes or not (
        set(grant.audiences) <= agent_class.audiences
    ):
        raise InvalidGrantError(
            "The grant is wider than its agent class now allows.",
            reason=f"agent class '{agent_class.name}' was narrowed",
        )

    # The root task lasts as long as the grant unless it is closed earlier.
    task = task_store(ctx.engine, ctx.revocations).open_in(
        conn,
        grant_id=grant.id,
        parent_id=None,
        purpose=request.binding_message,
        scopes=grant.scopes,
        audiences=grant.audiences,
        expires_at=grant.expires_at,
        opened_by=request.instance_id,
        now=now,
    )

    lifetime = min(
        ctx.settings.access_token_ttl,
        agent_class.default_ttl,
        int(grant.expires_at - now),
    )
    claims = access_token_claims(
        ctx.settings.issuer, request, grant, task, now=now, lifetime=lifetime
    )
    token = sign_jws(claims.to_dict(), ctx.keyring.active(), typ=ACCESS_TOKEN_TYP)

    ctx.audit.record_in(conn, _task_opened_event(request, grant, task))
    ctx.audit.record_in(conn, _token_issued_event(request, grant, task, claims))

    return {
        "access_token": token,
        "token_type": "DPoP",
        "expires_in": lifetime,
        "scope": claims.scope,
    }


def _require_live_grant(
    ctx: ServerContext, conn: Connection, request: CIBARequest, now: float
) -> Grant:
    grant = None
    if request.grant_id is not None:
        grant = GrantStore(conn.engine).get_in(conn, request.grant_id)

    if grant is None:
        raise InvalidGrantError(
            "The grant does not exist.",
            reason=f"approved request '{request.id}' has no grant",
        )

    # A grant needs at least one whole second left to back a token.
    if not grant.is_active(now + 1) or ctx.revocations.is_revoked("grant", grant.id):
        raise InvalidGrantError(
            "The grant is revoked or expired.", reason=f"grant '{grant.id}'"
        )

    return grant


def access_token_claims(
    issuer: str,
    request: CIBARequest,
    grant: Grant,
    task: Task,
    *,
    now: float,
    lifetime: int,
) -> AccessTokenClaims:
    """Build the claims of the first delegated access token of a grant.

    The token has depth 1: the requesting instance is both ``client_id`` and the
    only actor, and it derives from no other token.
    """
    issued_at = int(now)
    details = grant.authorization_details or None

    return AccessTokenClaims(
        iss=issuer,
        aud=grant.audiences,
        exp=issued_at + lifetime,
        iat=issued_at,
        nbf=issued_at,
        jti=secrets.token_urlsafe(16),
        sub=grant.user_id,
        client_id=request.instance_id,
        scope=" ".join(grant.scopes),
        depth=1,
        grant=GrantRef(id=grant.id, receipt_hash=grant.receipt_hash),
        cnf_jkt=request.instance_jkt,
        act=Actor(sub=request.instance_id),
        task=TaskRef(id=task.id, path=task.path),
        derived_from=(),
        authorization_details=details,
    )


def _task_opened_event(request: CIBARequest, grant: Grant, task: Task) -> AuditEvent:
    return AuditEvent(
        type="task.opened",
        decision="allow",
        outcome="opened",
        human=grant.user_id,
        receipt_hash=grant.receipt_hash,
        grant_id=grant.id,
        actors=(request.instance_id,),
        task_path=task.path,
        request={"method": "POST", "endpoint": "/token"},
        details={
            "purpose": task.purpose,
            "scope": " ".join(task.scopes),
            "audiences": list(task.audiences),
            "expires_at": task.expires_at,
        },
    )


def _token_issued_event(
    request: CIBARequest, grant: Grant, task: Task, claims: AccessTokenClaims
) -> AuditEvent:
    return AuditEvent(
        type="token.issued",
        decision="allow",
        outcome="issued",
        human=grant.user_id,
        receipt_hash=grant.receipt_hash,
        grant_id=grant.id,
        actors=(request.instance_id,),
        task_path=task.path,
        request={
            "method": "POST",
            "endpoint": "/token",
            "parameters": {"grant_type": CIBA_GRANT_TYPE},
            "audience": list(grant.audiences),
        },
        details={
            "approval_id": request.id,
            "jti": claims.jti,
            "exp": claims.exp,
            "depth": claims.depth,
            "scope": claims.scope,
            "jkt": request.instance_jkt,
        },
    )
