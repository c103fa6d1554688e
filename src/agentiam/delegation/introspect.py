"""RFC 7662 token introspection at POST /introspect, for resource-server clients.

A token is active only when it verifies as a delegated access token, has not
expired, is not killed by the revocation set, and names one of the client's
audiences. Every other case, including tokens of another kind, returns
``{"active": false}`` with no reason (RFC 7662 section 2.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from agentiam.api.forms import parse_form
from agentiam.errors import InvalidRequestError
from agentiam.identity.authn import require_client
from agentiam.identity.clients import Client
from agentiam.tokens import verify_access_token
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


def introspect(token: str, client: Client, ctx: ServerContext) -> dict[str, Any]:
    """Return the RFC 7662 response for ``token`` as seen by ``client``."""
    try:
        claims = verify_access_token(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            audience=None,
            now=ctx.clock(),
            leeway=ctx.settings.leeway,
        )
    except TokenError:
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


async def introspect_endpoint(request: Request, ctx: ServerContext) -> JSONResponse:
    """POST /introspect: authenticate the client, then introspect ``token``."""
    client = await require_client(request, ctx)
    form = await parse_form(request, max_bytes=ctx.settings.form_max_bytes)
    token = form.get("token")
    if not token:
        raise InvalidRequestError("The parameter 'token' is missing.")
    # RFC 7662 section 2.1: token_type_hint is optional and only a hint.
    return JSONResponse(introspect(token, client, ctx), headers=NO_STORE)
