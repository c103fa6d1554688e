"""HTTP routes of the approvals package.

``POST /bc-authorize`` takes a CIBA authentication request from an agent instance
(SVID and DPoP). ``GET /v1/approvals`` lists the signed-in human's pending requests,
and ``POST /v1/approvals/{id}/approve`` or ``/deny`` decides one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from agentiam.api.forms import TARGET_PARAMETERS, parse_form
from agentiam.api.openapi import operation
from agentiam.approvals.authorize import (
    AuthRequestCaller,
    create_request_work,
    refused_event,
    require_known_user,
)
from agentiam.approvals.decisions import DecisionContext, approve_work, deny_work
from agentiam.approvals.request import parse_auth_request
from agentiam.approvals.store import CIBARequestStore
from agentiam.errors import OAuthError, UnauthorizedClientError
from agentiam.identity.authn import AgentCaller, require_agent, require_session
from agentiam.identity.classes import AgentClassStore
from agentiam.identity.json_body import read_json_object
from agentiam.identity.users import UserStore

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

logger = logging.getLogger(__name__)

# RFC 6749 section 5.1 and CIBA section 7.3: responses that carry a secret are not
# cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_STRINGS = {"type": "array", "items": {"type": "string"}}

_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["approvals"],
    "properties": {
        "approvals": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string"},
                    "agent_class": {"type": "string"},
                    "instance": {"type": "string"},
                    "binding_message": {"type": "string"},
                    "scope": {"type": "string"},
                    "audiences": _STRINGS,
                    "authorization_details": {
                        "type": "array",
                        "items": {"type": "object"},
                    },
                    "max_depth": {"type": "integer"},
                    "grant_expires_in": {"type": "integer"},
                    "created_at": {"type": "number"},
                    "expires_at": {"type": "number"},
                },
            },
        }
    },
}

_APPROVED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status", "grant_id", "receipt_hash", "grant_expires_at"],
    "properties": {
        "id": {"type": "string"},
        "status": {"const": "approved"},
        "grant_id": {"type": "string"},
        "receipt_hash": {"type": "string"},
        "grant_expires_at": {"type": "number"},
    },
}

_DENIED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {"id": {"type": "string"}, "status": {"const": "denied"}},
}


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the routes of the approvals package, bound to ``ctx``."""

    async def bc_authorize(request: Request) -> JSONResponse:
        caller = await require_agent(request, ctx)
        try:
            body = await _authorize(request, ctx, caller)
        except OAuthError as err:
            logger.debug(
                "CIBA authentication request rejected",
                extra={"error": err.error, "agent": caller.spiffe_id},
            )
            await ctx.audit.record(
                refused_event(caller.spiffe_id, err.error, err.reason)
            )
            raise
        return JSONResponse(body, headers=_NO_STORE)

    @operation(
        "List the signed-in user's pending approval requests",
        response=_LIST_SCHEMA,
        tags=("approvals",),
    )
    async def list_approvals(request: Request) -> JSONResponse:
        session = await require_session(request, ctx)
        pending = CIBARequestStore(ctx.engine).list_pending(
            session.sub, now=ctx.clock()
        )
        return JSONResponse(
            {"approvals": [item.to_public_dict() for item in pending]},
            headers=_NO_STORE,
        )

    @operation(
        "Approve a request, creating the grant and its consent receipt",
        response=_APPROVED_SCHEMA,
        tags=("approvals",),
    )
    async def approve(request: Request) -> JSONResponse:
        session = await require_session(request, ctx)
        await _read_decision_body(request, ctx)
        request_id = request.path_params["id"]
        work = approve_work(
            DecisionContext.from_server(ctx),
            request_id,
            user_id=session.sub,
            channel="api",
        )
        grant = await ctx.writer.submit(work)
        return JSONResponse(
            {
                "id": request_id,
                "status": "approved",
                "grant_id": grant.id,
                "receipt_hash": grant.receipt_hash,
                "grant_expires_at": grant.expires_at,
            }
        )

    @operation("Deny a request", response=_DENIED_SCHEMA, tags=("approvals",))
    async def deny(request: Request) -> JSONResponse:
        session = await require_session(request, ctx)
        await _read_decision_body(request, ctx)
        request_id = request.path_params["id"]
        work = deny_work(
            DecisionContext.from_server(ctx),
            request_id,
            user_id=session.sub,
            channel="api",
        )
        await ctx.writer.submit(work)
        return JSONResponse({"id": request_id, "status": "denied"})

    return [
        Route("/bc-authorize", bc_authorize, methods=["POST"]),
        Route("/v1/approvals", list_approvals, methods=["GET"]),
        Route("/v1/approvals/{id}/approve", approve, methods=["POST"]),
        Route("/v1/approvals/{id}/deny", deny, methods=["POST"]),
    ]


async def _read_decision_body(request: Request, ctx: ServerContext) -> None:
    """Accept an empty body or a strict JSON object with no members.

    Approve and deny take no parameters, so any member, and any body that is not
    strict JSON, is rejected with 400 before the request is decided.
    """
    await read_json_object(request, ctx, members=(), allow_empty=True)


async def _authorize(
    request: Request, ctx: ServerContext, caller: AgentCaller
) -> dict[str, Any]:
    # A sub-agent works inside a task of an existing grant, so only a root instance
    # may request a new grant from a human.
    if caller.claims.parent is not None:
        raise UnauthorizedClientError(
            "Only a root agent instance can make an authentication request."
        )

    agent_class = AgentClassStore(ctx.engine).get(caller.agent_class)
    if agent_class is None:
        raise UnauthorizedClientError(
            reason=f"agent class '{caller.agent_class}' does not exist"
        )

    form = await parse_form(
        request,
        max_bytes=ctx.settings.form_max_bytes,
        repeatable=TARGET_PARAMETERS,
    )
    params = parse_auth_request(form, agent_class)
    user = require_known_user(
        UserStore(ctx.engine).find_by_login(params.login_hint), params.login_hint
    )

    settings = ctx.settings
    auth_req_id, work = create_request_work(
        AuthRequestCaller(caller.spiffe_id, caller.agent_class, caller.jkt),
        params,
        user,
        audit=ctx.audit,
        now=ctx.clock(),
        expires_in=settings.ciba_expires_in,
        interval=settings.ciba_interval,
    )
    await ctx.writer.submit(work)

    return {
        "auth_req_id": auth_req_id,
        "expires_in": settings.ciba_expires_in,
        "interval": settings.ciba_interval,
    }
