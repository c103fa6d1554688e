"""The OpenAPI 3.1 document of the ``/v1`` routes, built from route metadata.

A ``/v1`` endpoint declares its summary and JSON schemas with ``@operation``.  An
endpoint without it still appears, with its docstring's first line as summary and
no schemas, so the document lists every route the app serves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

F = TypeVar("F", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
ATTRIBUTE = "__agentiam_operation__"

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
    },
}


@dataclass(frozen=True, slots=True)
class Operation:
    """The OpenAPI description of one endpoint."""

    summary: str
    request_schema: Mapping[str, Any] | None = None
    response_schema: Mapping[str, Any] | None = None
    status: int = 200
    request_content_type: str = "application/json"
    tags: tuple[str, ...] = field(default=())


def operation(
    summary: str,
    *,
    request: Mapping[str, Any] | None = None,
    response: Mapping[str, Any] | None = None,
    status: int = 200,
    request_content_type: str = "application/json",
    tags: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Attach OpenAPI metadata (summary, JSON schemas, status) to an endpoint."""

    def decorate(endpoint: F) -> F:
        described = Operation(
            summary, request, response, status, request_content_type, tags
        )
        setattr(endpoint, ATTRIBUTE, described)
        return endpoint

    return decorate


def build_document(
    routes: Iterable[BaseRoute], *, title: str, version: str
) -> dict[str, Any]:
    """Build the OpenAPI document of every route under ``/v1``."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods, endpoint in _flatten(routes, ""):
        if not path.startswith("/v1/"):
            continue

        item = paths.setdefault(_openapi_path(path), {})
        for method in sorted(methods - {"HEAD"}):
            item[method.lower()] = _operation_object(path, method, endpoint)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Error": _ERROR_SCHEMA}},
    }


def route(document: Callable[[], dict[str, Any]]) -> Route:
    """Return the ``GET /v1/openapi.json`` route serving ``document()``."""

    @operation("The OpenAPI document of the /v1 API", response={"type": "object"})
    async def serve(request: Request) -> Response:
        return JSONResponse(document())

    return Route("/v1/openapi.json", serve, methods=["GET"])


def _flatten(
    routes: Iterable[BaseRoute], prefix: str
) -> Iterable[tuple[str, set[str], Any]]:
    for item in routes:
        if isinstance(item, Route):
            yield prefix + item.path, set(item.methods or {"GET"}), item.endpoint
        elif isinstance(item, Mount):
            yield from _flatten(item.routes, prefix + item.path)


def _openapi_path(path: str) -> str:
    # Starlette's "{id:str}" convertor syntax becomes OpenAPI's "{id}".
    return re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)


def _operation_object(path: str, method: str, endpoint: Any) -> dict[str, Any]:
    described = getattr(endpoint, ATTRIBUTE, None)
    if not isinstance(described, Operation):
        doc = (getattr(endpoint, "__doc__", None) or "").strip().splitlines()
        described = Operation(summary=doc[0] if doc else f"{method} {path}")

    result: dict[str, Any] = {
        "summary": described.summary,
        "operationId": _operation_id(method, path),
        "responses": _responses(described),
    }
    if described.tags:
        result["tags"] = list(described.tags)

    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)(?::\w+)?\}", path)
    ]
    if parameters:
        result["parameters"] = parameters
    if described.request_schema is not None:
        result["requestBody"] = {
            "required": True,
            "content": {
                described.request_content_type: {
                    "schema": dict(described.request_schema)
                }
            },
        }
    return result


def _responses(described: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": described.summary}
    if described.response_schema is not None:
        success["content"] = {
            "application/json": {"schema": dict(described.response_schema)}
        }

    error = {
        "description": "An error in the RFC 6749 section 5.2 shape",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
        },
    }
    return {str(described.status): success, "default": error}


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", path)
    return method.lower() + "".join(word.capitalize() for word in words)
