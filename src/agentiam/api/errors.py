"""The one error mapper: every exception a route raises becomes a JSON response.

An ``OAuthError`` becomes the RFC 6749 section 5.2 body ``{"error",
"error_description"}`` with its status, and a 401 adds ``WWW-Authenticate``.  Any
other ``AgentIAMError`` is a 400 ``invalid_request``.  Anything else is a 500
``server_error`` whose traceback goes only to the log.  Starlette's own 404 and 405
responses use the same JSON shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentiam.errors import AgentIAMError, InvalidTokenError, OAuthError

log = logging.getLogger("agentiam.api")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_HTTP_ERRORS = {
    404: ("not_found", "The requested resource was not found."),
    405: ("method_not_allowed", "The method is not allowed for this resource."),
}


def error_response(error: OAuthError) -> JSONResponse:
    """Build the RFC 6749 section 5.2 JSON response for ``error``."""
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = www_authenticate(error)
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


def www_authenticate(error: OAuthError) -> str:
    """Return the ``WWW-Authenticate`` value for a 401 response.

    ``invalid_token`` is a DPoP challenge (RFC 9449 section 7.1) and every other
    401, such as ``invalid_client``, a Basic challenge (RFC 6749 section 5.2).
    """
    description = error.wire_description.replace("\\", "\\\\").replace('"', '\\"')
    # Header values are Latin-1 and RFC 6750 section 3 allows only printable ASCII
    # in error_description, so anything else is written as a backslash escape.
    if not description.isascii() or not description.isprintable():
        description = "".join(
            char if " " <= char <= "~" else char.encode("unicode_escape").decode()
            for char in description
        )
    scheme = "DPoP" if isinstance(error, InvalidTokenError) else "Basic"
    return (
        f'{scheme} realm="agentiam", error="{error.error}", '
        f'error_description="{description}"'
    )


async def handle_oauth_error(request: Request, exc: Exception) -> Response:
    """Map an ``OAuthError`` to its JSON response and log its internal reason."""
    assert isinstance(exc, OAuthError)
    log.info(
        "request rejected",
        extra=_request_fields(request, error=exc.error, reason=exc.reason),
    )
    return error_response(exc)


async def handle_agentiam_error(request: Request, exc: Exception) -> Response:
    """Map an ``AgentIAMError`` without a wire code to 400 ``invalid_request``."""
    log.info(
        "request rejected",
        extra=_request_fields(
            request, error="invalid_request", reason=f"{type(exc).__name__}: {exc}"
        ),
    )
    body = {"error": "invalid_request", "error_description": "The request is invalid."}
    return JSONResponse(body, status_code=400, headers=NO_STORE)


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    """Log the traceback of an unexpected error and return 500 ``server_error``."""
    log.error(
        "request failed with an unexpected error",
        exc_info=exc,
        extra=_request_fields(request, error="server_error"),
    )
    body = {
        "error": "server_error",
        "error_description": "The server encountered an unexpected error.",
    }
    return JSONResponse(body, status_code=500, headers=NO_STORE)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Convert Starlette's HTTP errors (404, 405, ...) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    code, description = _HTTP_ERRORS.get(
        exc.status_code, ("invalid_request", "The request is invalid.")
    )
    headers = dict(exc.headers or {})
    headers.update(NO_STORE)
    body = {"error": code, "error_description": description}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def exception_handlers() -> Mapping[Any, Any]:
    """Return the handlers to pass to ``Starlette(exception_handlers=...)``."""
    return {
        HTTPException: handle_http_exception,
        OAuthError: handle_oauth_error,
        AgentIAMError: handle_agentiam_error,
        Exception: handle_unexpected_error,
    }


class UnexpectedErrorMiddleware:
    """Send the 500 ``server_error`` response for an unexpected exception.

    Starlette's outermost middleware re-raises an exception after its handler has
    sent the response, so uvicorn logs the traceback a second time and closes the
    connection. This middleware sits inside it and re-raises only when the
    response had already started, because then no error response can be sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            if started:
                raise
            response = await handle_unexpected_error(Request(scope), exc)
            await response(scope, receive, send)


def _request_fields(request: Request, **fields: Any) -> dict[str, Any]:
    return {"method": request.method, "path": request.url.path, **fields}
