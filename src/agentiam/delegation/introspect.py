"""RFC 7662 token introspection at POST /introspect, for resource-server clients.

A token is active only when it verifies as a delegated access token, has not
expired, is not killed by the revocation set, and names one of the client's
audiences. Every other case, including tokens of another kind, returns
``{"active": false}`` with no reason (RFC 7662 section 2.2). Every request
that passes client authentication writes a ``token.introspected`` audit event with
the client id, ``active``, and the jti when the token verifies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from agentiam.api.forms import parse_form
from agentiam.audit import AuditEvent
from agentiam.errors import InvalidRequestError
from agentiam.identity.authn import require_client
from agentiam.identity.clients import Client
from agentiam.tokens import AccessTokenClaims, verify_access_token
from agentiam.tokens.errors import TokenError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

NO_STORE = {"Cache-Control": "no-store"}

_ACTIVE_MEMBERS = (
    "sub",
    "client_id",
    "scope",
    "exp",
    "iat",
    "iss",
    "aud",
    "jti",
    "act",
    "grant",
    "task",
    "authorization_details",
    "cnf",
)


def _verified(token: str, ctx: ServerContext) -> AccessTokenClaims | None:
    try:
        return verify_access_token(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            audience=None,
            now=ctx.clock(),
            leeway=ctx.settings.leeway,
        )
    except TokenError:
        return None


def _response(
    claims: AccessTokenClaims | None, client: Client, ctx: ServerContext
) -> dict[str, Any]:
    if claims is None:
        return {"active": False}
    if not set(claims.aud) & client.audiences:
        return {"active": False}
    if ctx.revocations.kills(claims) is not None:
        return {"active": False}

    wire = claims.to_dict()
    response: dict[str, Any] = {"active": True}
    for name in _ACTIVE_MEMBERS:
        if name in wire:
            response[name] = wire[name]
    response["token_type"] = "DPoP"  # noqa: S105
    return response


def introspect(token: str, client: Client, ctx: ServerContext) -> dict[str, Any]:
    """Return the RFC 7662 response for ``token`` as seen by ``client``."""
    return _response(_verified(token, ctx), client, ctx)


def _introspected_event(
    claims: AccessTokenClaims | None, client: Client, active: bool
) -> AuditEvent:
    # A token that does not verify has no trustworthy jti, so none is recorded.
    details: dict[str, Any] = {
        "client_id": client.client_id,
        "active": active,
        "jti": claims.jti if claims is not None else None,
    }
    if claims is None:
        return AuditEvent(
            type="token.introspected",
            outcome="inactive",
            request={"method": "POST", "endpoint": "/introspect"},
            details=details,
        )
    return AuditEvent(
        type="token.introspected",
        outcome="active" if active else "inactive",
        human=claims.sub,
        receipt_hash=claims.grant.receipt_hash,
        grant_id=claims.grant.id,
        actors=list(claims.actors) or [claims.client_id],
        task_path=list(claims.task.path) if claims.task is not None else [],
        request={"method": "POST", "endpoint": "/introspect"},
        details=details,
    )


async def introspect_endpoint(request: Request, ctx: ServerContext) -> JSONResponse:
    """POST /introspect: authenticate the client, introspect ``token``, record it."""
    client = await require_client(request, ctx)
    form = await parse_form(request, max_bytes=ctx.settings.form_max_bytes)
    token = form.get("token")
    if not token:
        raise InvalidRequestError("The parameter 'token' is missing.")

    # RFC 7662 section 2.1: token_type_hint is optional and only a hint.
    claims = _verified(token, ctx)
    response = _response(claims, client, ctx)
    await ctx.audit.record(_introspected_event(claims, client, response["active"]))
    return JSONResponse(response, headers=NO_STORE)
