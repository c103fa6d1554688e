"""The Starlette application: every package's routes, the error mapper, logging.

``create_app(ctx)`` imports each package's ``routes`` module from
``ROUTE_MODULES`` by name and mounts ``routes(ctx)``.  A missing module is an
``ImportError`` at start, so a server never runs without one of its parts.  The
lifespan starts the group-commit writer and the audit log, refreshes the key ring
in the background, and on shutdown flushes them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentiam.api import discovery, openapi
from agentiam.api.context import ServerContext
from agentiam.api.errors import UnexpectedErrorMiddleware, exception_handlers
from agentiam.api.forms import TARGET_PARAMETERS, parse_form
from agentiam.errors import UnsupportedGrantTypeError

log = logging.getLogger("agentiam.api")

#: Modules whose ``routes(ctx)`` the app mounts, in this order.
ROUTE_MODULES: tuple[str, ...] = (
    "agentiam.identity.routes",
    "agentiam.approvals.routes",
    "agentiam.delegation.routes",
    "agentiam.tasks.routes",
    "agentiam.revocation.routes",
    "agentiam.audit.routes",
)

#: The module whose ``grant_handlers(ctx)`` serve ``POST /token``.
TOKEN_ENDPOINT_MODULE = "agentiam.delegation.token_endpoint"  # noqa: S105

KEYRING_REFRESH_SECONDS = 5.0

# The encoding of JSONResponse, with the encoder built once for every token
# response instead of once per call.
_TOKEN_JSON = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
)
# RFC 6749 section 5.1 requires both headers on every token response.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

VERSION = "0.1.0"


def create_app(ctx: ServerContext) -> Starlette:
    """Build the server application for ``ctx``."""
    routes: list[BaseRoute] = [*discovery.routes(ctx), token_route(ctx)]
    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        routes.extend(module.routes(ctx))

    def document() -> dict[str, Any]:
        return openapi.build_document(app.routes, title="agentiam", version=VERSION)

    routes.append(openapi.route(document))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with run_services(ctx):
            yield

    app = Starlette(
        routes=routes,
        exception_handlers=dict(exception_handlers()),
        middleware=[Middleware(UnexpectedErrorMiddleware)],
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def token_route(ctx: ServerContext) -> Route:
    """Return ``POST /token``, dispatching on ``grant_type`` to the grant handlers."""
    module = importlib.import_module(TOKEN_ENDPOINT_MODULE)
    handlers = {handler.grant_type: handler for handler in module.grant_handlers(ctx)}

    async def token(request: Request) -> Response:
        form = await parse_form(
            request,
            max_bytes=ctx.settings.form_max_bytes,
            repeatable=TARGET_PARAMETERS,
        )
        grant_type = form.require("grant_type")

        handler = handlers.get(grant_type)
        if handler is None:
            raise UnsupportedGrantTypeError(
                f"The grant type {grant_type!r} is unknown."
            )

        body = await handler.handle(form, request, ctx)
        return Response(
            _TOKEN_JSON.encode(body).encode(),
            media_type="application/json",
            headers=_NO_STORE,
        )

    return Route("/token", token, methods=["POST"])


@contextlib.asynccontextmanager
async def run_services(ctx: ServerContext) -> AsyncIterator[None]:
    """Start the writer, the audit log and the background loops; stop them on exit.

    The loops refresh the key ring and the revocation set from the tables (rows
    that other processes wrote: the CLI, other server nodes), and sweep expired
    tasks.
    """
    from agentiam.audit.siem.sink import start_audit_sink
    from agentiam.tasks.sweep import run_sweeper

    ctx.writer.start()
    await ctx.audit.start()
    loops = [
        asyncio.create_task(_refresh_keyring(ctx), name="keyring-refresh"),
        asyncio.create_task(run_sweeper(ctx), name="task-sweeper"),
        asyncio.create_task(
            ctx.revocations.run_refresher(ctx.settings.revocation_refresh_ms / 1000),
            name="revocation-refresh",
        ),
    ]

    # SIEM export: push committed audit events when audit_sink_url is set.
    audit_sink = start_audit_sink(ctx.settings, ctx.engine)
    if audit_sink is not None:
        loops.append(audit_sink)

    log.info("server services started", extra={"issuer": ctx.settings.issuer})

    try:
        yield
    finally:
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await ctx.audit.close()
        await asyncio.to_thread(ctx.writer.close)
        log.info("server services stopped")


async def _refresh_keyring(ctx: ServerContext) -> None:
    # Picks up a key rotated by `agentiam key rotate` in another process.
    while True:
        await asyncio.sleep(KEYRING_REFRESH_SECONDS)
        try:
            await asyncio.to_thread(ctx.keyring.refresh)
        except Exception as exc:
            log.warning("key ring refresh failed", extra={"error": repr(exc)})


class JSONFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, event and fields.

    The message is the constant event text; per-call values go in ``extra=``.
    """

    # uvicorn adds ``color_message``, the event text with terminal colour codes,
    # which a JSON line must not carry.
    _STANDARD = frozenset(
        vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
        | {"message", "asctime", "taskName", "color_message"}
    )

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for ``record``."""
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", *, stream: Any = None) -> None:
    """Send every ``agentiam`` and ``uvicorn`` log record to stderr as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter())

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
