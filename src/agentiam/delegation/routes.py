"""Routes of the delegation package: /introspect, /revoke and the human's grants.

``POST /token`` is mounted by ``agentiam.api.app`` with the handlers of
``agentiam.delegation.token_endpoint.grant_handlers``. ``GET /v1/grants`` lists the
grants the session's human approved, and ``POST /v1/grants/{id}/revoke`` revokes one
of them; another human's grant and an unknown id get the same 404.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentiam.api.openapi import operation
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.delegation.introspect import introspect_endpoint
from agentiam.delegation.revoke import revoke_endpoint
from agentiam.errors import NotFoundError
from agentiam.identity.authn import require_session
from agentiam.revocation.by_id import revoke_id_in

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

_GRANT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "agent_class": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "audiences": {"type": "array", "items": {"type": "string"}},
        "max_depth": {"type": "integer"},
        "expires_at": {"type": "number"},
        "created_at": {"type": "number"},
        "revoked_at": {"type": ["number", "null"]},
        "receipt_hash": {"type": "string"},
    },
}
_GRANT_LIST = {
    "type": "object",
    "properties": {"grants": {"type": "array", "items": _GRANT}},
}
_REVOCATION = {
    "type": "object",
    "properties": {
        "kind": {"type": "string"},
        "id": {"type": "string"},
        "expires_at": {"type": "number"},
        "already_revoked": {"type": "boolean"},
    },
}


def grant_summary(grant: Grant) -> dict[str, Any]:
    """Return the listed fields of a grant; the receipt JWS itself is left out."""
    return {
        "id": grant.id,
        "user_id": grant.user_id,
        "agent_class": grant.agent_class,
        "scopes": list(grant.scopes),
        "audiences": list(grant.audiences),
        "max_depth": grant.max_depth,
        "expires_at": grant.expires_at,
        "created_at": grant.created_at,
        "revoked_at": grant.revoked_at,
        "receipt_hash": grant.receipt_hash,
    }


@operation("List the session's own grants", response=_GRANT_LIST, tags=("grants",))
async def list_own_grants(request: Request, ctx: ServerContext) -> Response:
    """List the grants the session's human approved, newest first."""
    session = await require_session(request, ctx)
    found = GrantStore(ctx.engine).list_for_user(session.sub)
    return JSONResponse({"grants": [grant_summary(grant) for grant in found]})


@operation("Revoke one of the session's grants", response=_REVOCATION, tags=("grants",))
async def revoke_own_grant(request: Request, ctx: ServerContext) -> Response:
    """Revoke a grant the session's human approved; repeating it is harmless."""
    session = await require_session(request, ctx)
    grant_id = request.path_params["id"]
    grant = GrantStore(ctx.engine).get(grant_id)
    # The same response for a grant that does not exist and one of another human.
    if grant is None or grant.user_id != session.sub:
        raise NotFoundError(f"Grant '{grant_id[:64]}' was not found.")

    def work(conn: Connection) -> dict[str, Any]:
        revoked = revoke_id_in(
            conn,
            ctx,
            kind="grant",
            target=grant_id,
            revoked_by=f"user:{session.sub}",
            now=ctx.clock(),
        )
        return revoked.to_dict()

    return JSONResponse(await ctx.writer.submit(work))


def _bind(
    handler: Callable[[Request, ServerContext], Awaitable[Response]],
    ctx: ServerContext,
) -> Callable[[Request], Awaitable[Response]]:
    # functools.wraps also copies the OpenAPI metadata that ``operation`` set.
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request, ctx)

    return endpoint


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the introspection, revocation and grant routes bound to ``ctx``."""
    return [
        Route("/introspect", _bind(introspect_endpoint, ctx), methods=["POST"]),
        Route("/revoke", _bind(revoke_endpoint, ctx), methods=["POST"]),
        Route("/v1/grants", _bind(list_own_grants, ctx), methods=["GET"]),
        Route("/v1/grants/{id}/revoke", _bind(revoke_own_grant, ctx), methods=["POST"]),
    ]
