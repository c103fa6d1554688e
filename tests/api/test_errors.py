from __future__ import annotations

import logging

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from agentiam.api.errors import exception_handlers, www_authenticate
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
