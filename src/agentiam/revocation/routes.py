"""The revocation feed and the admin revocation API, both at /v1/revocations.

``GET /v1/revocations?since=<seq>`` is readable by a registered resource-server
client (HTTP Basic) or an administrator session. The response carries
``ETag: "<latest seq>"``, and a request whose ``If-None-Match`` names the current
tag (weak comparison, a list of tags, or ``*``) returns 304 with no body.

``POST /v1/revocations`` with an administrator session and the JSON body
``{"kind": "grant|task|instance|session|token", "id": "..."}`` revokes the id
(see ``agentiam.revocation.by_id``); repeating it returns the same entry.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentiam.api.openapi import operation
from agentiam.errors import InvalidRequestError
from agentiam.identity.authn import require_admin, require_client
from agentiam.identity.json_body import read_json_object
from agentiam.revocation.by_id import revoke_id_in, verify_target

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


def _none_match_fails(header: str | None, etag: str) -> bool:
    """Return whether ``If-None-Match`` names the current tag (RFC 9110 13.1.2).

    The comparison is weak, so ``W/"7"`` matches ``"7"``; ``*`` matches any
    current representation, and the header may list several tags.
    """
    if header is None:
        return False
    if header.strip() == "*":
        return True
    tags = (tag.strip() for tag in header.split(","))
    return any(tag.removeprefix("W/") == etag for tag in tags)


async def revocation_feed(request: Request, ctx: ServerContext) -> Response:
    """Return the entries with a seq above ``since`` and the latest seq."""
    scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
    # Resource servers poll the feed, so a request without credentials gets their
    # Basic challenge rather than the Bearer challenge of an admin session.
    if scheme in ("basic", ""):
        await require_client(request, ctx)
    else:
        await require_admin(request, ctx)

    since = _since(request)
    latest, entries = await asyncio.to_thread(ctx.revocations.feed, since)
    etag = f'"{latest}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _none_match_fails(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)

    body = {"seq": latest, "entries": [entry.to_dict() for entry in entries]}
    return JSONResponse(body, headers=headers)


_REVOCATION_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "id"],
    "properties": {
        "kind": {"enum": ["grant", "task", "instance", "session", "token"]},
        "id": {"type": "string"},
    },
    "additionalProperties": False,
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


@operation(
    "Revoke a grant, task, instance, session or token by id",
    request=_REVOCATION_REQUEST,
    response=_REVOCATION,
    tags=("admin",),
)
async def create_revocation(request: Request, ctx: ServerContext) -> Response:
    """Revoke one id of any kind as an administrator; repeating it is harmless."""
    session = await require_admin(request, ctx)
    body = await read_json_object(
        request, ctx, members=_REVOCATION_REQUEST["properties"]
    )
    kind, target = verify_target(body.get("kind"), body.get("id"), ctx.settings)

    def work(conn: Connection) -> dict[str, Any]:
        revoked = revoke_id_in(
            conn,
            ctx,
            kind=kind,
            target=target,
            revoked_by=f"user:{session.sub}",
            now=ctx.clock(),
        )
        return revoked.to_dict()

    result = await ctx.writer.submit(work)
    return JSONResponse(result)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the revocation feed and admin revocation routes bound to ``ctx``."""

    async def feed(request: Request) -> Response:
        return await revocation_feed(request, ctx)

    @functools.wraps(create_revocation)
    async def revoke(request: Request) -> Response:
        return await create_revocation(request, ctx)

    return [
        Route("/v1/revocations", feed, methods=["GET"]),
        Route("/v1/revocations", revoke, methods=["POST"]),
    ]
