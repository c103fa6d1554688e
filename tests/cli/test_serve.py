from __future__ import annotations

import gc

import httpx

from agentiam.cli.serve import freeze_startup_heap


def test_live_server_serves_discovery(live_server):
    metadata = httpx.get(f"{live_server}/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    assert metadata.json()["issuer"] == live_server

    jwks = httpx.get(f"{live_server}/jwks").json()
    assert len(jwks["keys"]) == 1


def test_live_server_openapi(live_server):
    document = httpx.get(f"{live_server}/v1/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/openapi.json" in document["paths"]


def test_live_server_unknown_grant(live_server):
    response = httpx.post(f"{live_server}/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_live_server_not_found(live_server):
    response = httpx.get(f"{live_server}/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_freeze_startup_heap_freezes_objects():
    gc.unfreeze()
    try:
        freeze_startup_heap()

        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
