from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentiam.api import discovery, openapi


@pytest.fixture
def client(ctx, asgi_client):
    return asgi_client(Starlette(routes=discovery.routes(ctx)))


@pytest.mark.parametrize(
    "path",
    ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"],
)
def test_metadata(client, ctx, path):
    body = client.get(path).json()
    issuer = ctx.settings.issuer
    assert body["issuer"] == issuer
    assert body["token_endpoint"] == f"{issuer}/token"
    assert body["jwks_uri"] == f"{issuer}/jwks"
    assert body["backchannel_authentication_endpoint"] == f"{issuer}/bc-authorize"
    assert body["grant_types_supported"] == [
        "urn:openid:params:grant-type:ciba",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert body["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert body["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]


def test_jwks(client, ctx):
    response = client.get("/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    keys = response.json()["keys"]
    assert [key["kid"] for key in keys] == [ctx.keyring.active().kid]
    assert "d" not in keys[0]


def test_openapi_document():
    @openapi.operation(
        "Create a task",
        request={"type": "object", "required": ["purpose"]},
        response={"type": "object"},
        status=201,
    )
    async def create(request):
        return JSONResponse({})

    async def show(request):
        """Show one task."""
        return JSONResponse({})

    routes = [
        Route("/v1/tasks", create, methods=["POST"]),
        Route("/v1/tasks/{task_id}", show, methods=["GET"]),
        Route("/token", create, methods=["POST"]),
    ]
    document = openapi.build_document(routes, title="t", version="1")
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/v1/tasks", "/v1/tasks/{task_id}"}

    post = document["paths"]["/v1/tasks"]["post"]
    assert post["summary"] == "Create a task"
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "purpose"
    ]
    assert "201" in post["responses"]

    get = document["paths"]["/v1/tasks/{task_id}"]["get"]
    assert get["summary"] == "Show one task."
    assert get["parameters"][0]["name"] == "task_id"
    assert "head" not in document["paths"]["/v1/tasks/{task_id}"]
