"""The revocation feed: GET /v1/revocations?since=<seq>.

Readable by a registered resource-server client (HTTP Basic) or an administrator
session. The response carries ``ETag: "<latest seq>"``, and a request whose
``If-None-Match`` equals the current tag returns 304 with no body.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentiam.errors import InvalidRequestError
from agentiam.identity.authn import require_admin, require_client

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

MAX_SINCE_DIGITS = 18


def _since(request: Request) -> int:
    values = request.query_params.getlist("since")
    if not values:
        return 0
    if len(values) > 1:
        raise InvalidRequestError("The parameter 'since' is repeated.")
    text = values[0]
    if not text.isascii() or not text.isdigit() or len(text) > MAX_SINCE_DIGITS:
        raise InvalidRequestError(
            f"The parameter 'since' must be a non-negative integer, got {text[:20]!r}."
        )
    return int(text)


async def revocation_feed(request: Request, ctx: ServerContext) -> Response:
    """Return the entries with a seq above ``since`` and the latest seq."""
    scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
    if scheme == "basic":
        await require_client(request, ctx)
    else:
        await require_admin(request, ctx)

    since = _since(request)
    latest, entries = await asyncio.to_thread(ctx.revocations.feed, since)
    etag = f'"{latest}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)

    body = {"seq": latest, "entries": [entry.to_dict() for entry in entries]}
    return JSONResponse(body, headers=headers)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the revocation feed route bound to ``ctx``."""

    async def feed(request: Request) -> Response:
        return await revocation_feed(request, ctx)

    return [Route("/v1/revocations", feed, methods=["GET"])]
