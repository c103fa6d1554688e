"""Routes of the task tree: open a subtask, close a task, read a task.

``POST /v1/tasks`` takes a JSON object: ``purpose`` (required), ``scope``
(space-separated, default the caller token's scope), ``audience`` (a list, default the
token's ``aud``) and ``expires_in`` (seconds, default until the parent task ends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentiam.audit import AuditEvent
from agentiam.delegation.caches import delegation_cache
from agentiam.errors import (
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    NotFoundError,
)
from agentiam.identity.authn import require_delegate, require_session
from agentiam.identity.json_body import read_json_object
from agentiam.scope import split_scope
from agentiam.tasks.store import MAX_PURPOSE_LENGTH, Task, close_result, task_store

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

_OPEN_TASK_MEMBERS = frozenset({"purpose", "scope", "audience", "expires_in"})


async def open_task(request: Request, ctx: ServerContext) -> Response:
    """POST /v1/tasks: open a subtask under the caller token's task."""
    caller = await require_delegate(request, ctx)
    body = await read_json_object(request, ctx, members=_OPEN_TASK_MEMBERS)
    claims = caller.claims
    if claims.task is None:
        raise InvalidRequestError("The access token names no task.")

    purpose = body.get("purpose")
    if not isinstance(purpose, str) or not purpose or len(purpose) > MAX_PURPOSE_LENGTH:
        raise InvalidRequestError(
            f"The member 'purpose' must be a string of 1 to {MAX_PURPOSE_LENGTH} "
            "characters."
        )
    scopes = _scopes(body, claims.scopes)
    audiences = _audiences(body, frozenset(claims.aud))
    now = ctx.clock()
    store = task_store(ctx.engine, ctx.revocations)
    parent = store.get(claims.task.id)
    if parent is None:
        raise NotFoundError()
    expires_at = _expiry(body, parent, now)

    def work(conn: Connection) -> Task:
        task = store.open_in(
            conn,
            grant_id=claims.grant.id,
            parent_id=parent.id,
            purpose=purpose,
            scopes=scopes,
            audiences=audiences,
            expires_at=expires_at,
            opened_by=caller.spiffe_id,
            now=now,
        )
        ctx.audit.record_in(
            conn,
            _event(
                "task.opened",
                "opened",
                task,
                claims.sub,
                caller.spiffe_id,
                claims.grant.receipt_hash,
            ),
        )
        return task

    task = await ctx.writer.submit(work)
    return JSONResponse(task.to_dict(now), status_code=201)


async def close_task(request: Request, ctx: ServerContext) -> Response:
    """POST /v1/tasks/{id}/close: close the task and its subtree."""
    task_id = request.path_params["task_id"]
    store = task_store(ctx.engine, ctx.revocations)
    task, closed_by = await _authorized_task(request, ctx, task_id)
    now = ctx.clock()
    grant = delegation_cache(ctx.engine).grant(task.grant_id, ctx.revocations)
    human = grant.user_id if grant is not None else None

    def work(conn: Connection) -> dict[str, Any]:
        closed = store.close_in(conn, task.id, closed_by=closed_by, now=now)
        event = _event(
            "task.closed",
            "closed",
            task,
            human,
            closed_by,
            None,
            already_closed=not closed,
        )
        ctx.audit.record_in(conn, event)
        return close_result(store.get_in(conn, task.id) or task, closed)

    # Closing a closed task succeeds, because the end state is the one requested,
    # and "already_closed" with "closed_at" gives the time of the earlier close.
    return JSONResponse(await ctx.writer.submit(work))


async def get_task(request: Request, ctx: ServerContext) -> Response:
    """GET /v1/tasks/{id}: the task, for an agent in it, its human or an admin."""
    task, _caller = await _authorized_task(request, ctx, request.path_params["task_id"])
    return JSONResponse(task.to_dict(ctx.clock()))


async def _authorized_task(
    request: Request, ctx: ServerContext, task_id: str
) -> tuple[Task, str]:
    """Return the task and the caller's id, or raise NotFoundError for both
    a missing task and one the caller may not see.

    An agent may act on its token's task and the tasks below it, but not the ancestors
    in its token's ``task.path``, so that a sub-agent cannot close its parent's
    task. The grant's human and an admin see every task of the grant.
    """
    store = task_store(ctx.engine, ctx.revocations)
    missing = f"Task '{task_id[:64]}' was not found."
    scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
    if scheme == "dpop":
        caller = await require_delegate(request, ctx)
        own = caller.claims.task.id if caller.claims.task is not None else None
        task = store.get(task_id) if own is not None else None
        if task is None or own not in task.path:
            raise NotFoundError(missing)
        return task, caller.spiffe_id

    session = await require_session(request, ctx)
    task = store.get(task_id)
    if task is None:
        raise NotFoundError(missing)
    if session.admin:
        return task, session.sub
    grant = delegation_cache(ctx.engine).grant(task.grant_id, ctx.revocations)
    if grant is None or grant.user_id != session.sub:
        raise NotFoundError(missing)
    return task, session.sub


def _scopes(body: dict[str, Any], allowed: frozenset[str]) -> list[str]:
    value = body.get("scope")
    if value is None:
        return sorted(allowed)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("The member 'scope' must be a non-empty string.")
    scopes = set(split_scope(value))
    extra = sorted(scopes - allowed)
    if extra:
        raise InvalidScopeError(f"Scopes {' '.join(extra)!r} are not in the token.")
    return sorted(scopes)


def _audiences(body: dict[str, Any], allowed: frozenset[str]) -> list[str]:
    value = body.get("audience")
    if value is None:
        return sorted(allowed)
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) for item in value)
    ):
        raise InvalidRequestError("The member 'audience' must be a list of strings.")
    extra = sorted(set(value) - allowed)
    if extra:
        raise InvalidTargetError(f"Audiences {' '.join(extra)!r} are not in the token.")
    return sorted(set(value))


def _expiry(body: dict[str, Any], parent: Task, now: float) -> float:
    value = body.get("expires_in")
    if value is None:
        return parent.expires_at
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError("The member 'expires_in' must be a positive integer.")
    if now + value > parent.expires_at:
        raise InvalidRequestError(
            f"The expires_in of {value} seconds ends after the parent task, which "
            f"expires in {max(0, int(parent.expires_at - now))} seconds."
        )
    return now + value


def _event(
    kind: str,
    outcome: str,
    task: Task,
    human: str | None,
    actor: str,
    receipt_hash: str | None,
    **details: Any,
) -> AuditEvent:
    return AuditEvent(
        type=kind,
        decision="none",
        outcome=outcome,
        human=human,
        receipt_hash=receipt_hash,
        grant_id=task.grant_id,
        actors=[actor] if actor.startswith("spiffe://") else [],
        task_path=list(task.path),
        details={"by": actor, "purpose": task.purpose[:512], **details},
    )


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the /v1/tasks routes bound to ``ctx``."""

    async def post_task(request: Request) -> Response:
        return await open_task(request, ctx)

    async def post_close(request: Request) -> Response:
        return await close_task(request, ctx)

    async def read_task(request: Request) -> Response:
        return await get_task(request, ctx)

    return [
        Route("/v1/tasks", post_task, methods=["POST"]),
        Route("/v1/tasks/{task_id}/close", post_close, methods=["POST"]),
        Route("/v1/tasks/{task_id}", read_task, methods=["GET"]),
    ]
