from __future__ import annotations

import asyncio
import logging

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from agentiam.api.errors import (
    UnexpectedErrorMiddleware,
    exception_handlers,
    www_authenticate,
)
from agentiam.errors import (
    AgentIAMError,
    InvalidClientError,
    InvalidGrantError,
    InvalidTokenError,
    TemporarilyUnavailableError,
)


def raiser(exc):
    async def endpoint(request):
        raise exc

    return endpoint


@pytest.fixture
def client(asgi_client):
    routes = [
        Route("/grant", raiser(InvalidGrantError("Expired.", reason="exp 5 < now 9"))),
        Route("/client", raiser(InvalidClientError())),
        Route("/token", raiser(InvalidTokenError())),
        Route("/busy", raiser(TemporarilyUnavailableError())),
        Route("/plain", raiser(AgentIAMError("internal detail"))),
        Route("/bug", raiser(RuntimeError("secret internals"))),
    ]
    app = Starlette(routes=routes, exception_handlers=dict(exception_handlers()))
    return asgi_client(app)


def test_oauth_error_body(client):
    response = client.get("/grant")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. Expired.",
    }
    assert response.headers["cache-control"] == "no-store"
    assert "exp 5" not in response.text


def test_401_basic_challenge(client):
    response = client.get("/client")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="agentiam"')


def test_401_dpop_challenge(client):
    response = client.get("/token")
    assert response.headers["www-authenticate"].startswith(
        'DPoP realm="agentiam", error="invalid_token"'
    )


def test_503(client):
    response = client.get("/busy")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_plain_agentiam_error(client):
    response = client.get("/plain")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "internal detail" not in response.text


def test_unexpected_error_logged_not_sent(client, caplog):
    with caplog.at_level(logging.ERROR, logger="agentiam.api"):
        response = client.get("/bug")
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text


def test_not_found_json(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_method_not_allowed_json(client):
    response = client.post("/grant")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_hint_with_lone_surrogate_is_encodable():
    error = InvalidGrantError("Unknown login '\udfff'.")
    assert error.wire_description == (
        "The grant or token presented is invalid. Unknown login '\\udfff'."
    )
    error.to_dict()["error_description"].encode("utf-8")


def test_challenge_is_printable_ascii():
    challenge = www_authenticate(InvalidTokenError("Bad '\u20ac\n\udfff'."))
    assert challenge == (
        'DPoP realm="agentiam", error="invalid_token", error_description="The '
        "access token is invalid. Bad '\\u20ac\\n\\\\udfff'.\""
    )
    challenge.encode("ascii")


def _run_asgi(app, path: str) -> tuple[list[dict], BaseException | None]:
    """Call ``app`` for one GET and return the messages it sent and what it raised."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def call() -> BaseException | None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            return exc
        return None

    raised = asyncio.run(call())
    return sent, raised


def test_unexpected_error_not_reraised(caplog):
    # Built as agentiam.api.app builds the server's app.
    app = Starlette(
        routes=[Route("/bug", raiser(RuntimeError("secret internals")))],
        exception_handlers=dict(exception_handlers()),
        middleware=[Middleware(UnexpectedErrorMiddleware)],
    )

    with caplog.at_level(logging.ERROR, logger="agentiam.api"):
        sent, raised = _run_asgi(app, "/bug")

    assert raised is None
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 500
    assert b"server_error" in sent[1]["body"]
    assert b"secret internals" not in sent[1]["body"]
    assert "secret internals" in caplog.text


def test_error_after_start_reraised():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("failed mid-response")

    sent, raised = _run_asgi(UnexpectedErrorMiddleware(app), "/stream")

    assert isinstance(raised, RuntimeError)
    assert [message["type"] for message in sent] == ["http.response.start"]
