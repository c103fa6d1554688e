"""Routes of the delegation package: /introspect and /revoke.

``POST /token`` is mounted by ``agentiam.api.app`` with the handlers of
``agentiam.delegation.token_endpoint.grant_handlers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentiam.delegation.introspect import introspect_endpoint
from agentiam.delegation.revoke import revoke_endpoint

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the introspection and revocation routes bound to ``ctx``."""

    async def introspect(request: Request) -> Response:
        return await introspect_endpoint(request, ctx)

    async def revoke(request: Request) -> Response:
        return await revoke_endpoint(request, ctx)

    return [
        Route("/introspect", introspect, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
    ]
