"""ASGI helpers: header lookup, the request URL and JSON error responses."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Return every value of a header; ``name`` must be lower case."""
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


def request_url(scope: Scope, public_url: str) -> str:
    """Return the request URL without query, as the DPoP ``htu`` must name it."""
    path = scope.get("path", "/") or "/"
    if public_url:
        return public_url + path

    scheme = scope.get("scheme", "http")
    hosts = header_values(scope, b"host")
    if hosts:
        host = hosts[0].decode("latin-1")
    else:
        server = scope.get("server") or ("localhost", _DEFAULT_PORTS.get(scheme))
        host = server[0]
        if server[1] is not None and server[1] != _DEFAULT_PORTS.get(scheme):
            host = f"{host}:{server[1]}"
    return f"{scheme}://{host}{path}"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def www_authenticate(
    realm: str,
    algorithms: str,
    error: str | None,
    description: str | None,
    scope: str | None = None,
) -> bytes:
    """Build a DPoP challenge (RFC 9449 section 7.1, RFC 6750 section 3)."""
    params = [f"realm={_quote(realm)}"]
    if error is not None:
        params.append(f"error={_quote(error)}")
    if description is not None:
        params.append(f"error_description={_quote(description)}")
    if scope is not None:
        params.append(f"scope={_quote(scope)}")
    params.append(f"algs={_quote(algorithms)}")
    return ("DPoP " + ", ".join(params)).encode("latin-1", "replace")


async def send_json_error(
    send: Send,
    status: int,
    error: str,
    description: str,
    challenge: bytes | None,
) -> None:
    """Send an RFC 6749 section 5.2 style JSON error response."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
