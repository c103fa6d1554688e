"""Introspection (RFC 7662), revocation (RFC 7009) and cascades through the chain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from exchange_world import API, CRM, ISSUER, WORKER, Agent, World
from starlette.requests import Request

from agentiam.delegation.introspect import introspect
from agentiam.delegation.revoke import revoke_endpoint
from agentiam.errors import InvalidClientError
from agentiam.identity.clients import Client
from agentiam.jose import SigningKey
from agentiam.jose.dpop import create_dpop_proof
from agentiam.tasks import task_store

SUPPORT_API = Client("support-api", frozenset({API}))


def _chain(world: World) -> tuple[str, str]:
    """Return a root token and a worker token exchanged from it."""
    root, child, _worker = _chain_with_worker(world)
    return root, child


def _chain_with_worker(world: World) -> tuple[str, str, Agent]:
    root = world.root_token()
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    child = world.exchange(root, worker, scope="refunds", audience=API)
    return root, child["access_token"], worker


def _revoke_as_holder(world: World, token: str, key: SigningKey) -> int:
    proof = create_dpop_proof(
        key, htm="POST", htu=f"{ISSUER}/revoke", now=world.clock(), access_token=token
    )
    body = f"token={token}&token_type_hint=bogus".encode()
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/revoke",
        "headers": [
            (b"dpop", proof.encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def go() -> int:
        response = await revoke_endpoint(Request(scope, receive), world.ctx)
        return response.status_code

    return asyncio.run(go())


def test_introspect_active_token(world: World) -> None:
    _root, child = _chain(world)

    result = introspect(child, SUPPORT_API, world.ctx)

    claims = world.verify(child)
    assert result["active"] is True
    assert result["token_type"] == "DPoP"
    for name in ("sub", "client_id", "scope", "exp", "jti", "act", "grant", "task"):
        assert result[name] == claims[name]
    assert result["cnf"] == {"jkt": claims["cnf"]["jkt"]}


def test_introspect_other_audience_inactive(world: World) -> None:
    _root, child = _chain(world)
    crm = Client("crm", frozenset({CRM}))

    assert introspect(child, crm, world.ctx) == {"active": False}


def test_introspect_invalid_token_inactive(world: World) -> None:
    assert introspect("not-a-token", SUPPORT_API, world.ctx) == {"active": False}


def test_introspect_expired_token_inactive(world: World) -> None:
    _root, child = _chain(world)
    world.clock.advance(3600)

    assert introspect(child, SUPPORT_API, world.ctx) == {"active": False}


def test_task_close_kills_subtree_tokens(world: World) -> None:
    root, child = _chain(world)
    store = task_store(world.ctx.engine, world.ctx.revocations)

    world.run(
        lambda conn: store.close_in(
            conn, world.root_task.id, closed_by="test", now=world.clock()
        )
    )

    assert introspect(root, SUPPORT_API, world.ctx) == {"active": False}
    assert introspect(child, SUPPORT_API, world.ctx) == {"active": False}


def test_child_task_close_spares_parent(world: World) -> None:
    root, child = _chain(world)
    child_task = world.verify(child)["task"]["id"]
    store = task_store(world.ctx.engine, world.ctx.revocations)

    world.run(
        lambda conn: store.close_in(
            conn, child_task, closed_by="test", now=world.clock()
        )
    )

    assert introspect(root, SUPPORT_API, world.ctx)["active"] is True
    assert introspect(child, SUPPORT_API, world.ctx) == {"active": False}


def test_revoke_kills_derived_tokens(world: World) -> None:
    root, child = _chain(world)

    status = _revoke_as_holder(world, root, world.orchestrator.key)

    assert status == 200
    assert introspect(root, SUPPORT_API, world.ctx) == {"active": False}
    assert introspect(child, SUPPORT_API, world.ctx) == {"active": False}
    assert world.audit.types()[-1] == "token.revoked"


def test_revoke_child_spares_parent(world: World) -> None:
    root, child, worker = _chain_with_worker(world)

    _revoke_as_holder(world, child, worker.key)

    assert introspect(root, SUPPORT_API, world.ctx)["active"] is True
    assert introspect(child, SUPPORT_API, world.ctx) == {"active": False}


def test_revoke_invalid_token_is_ok(world: World) -> None:
    status = _revoke_as_holder(world, "not-a-token", world.orchestrator.key)

    assert status == 200
    assert world.audit.types() == []


def test_revoke_rejects_other_key(world: World) -> None:
    root = world.root_token()

    with pytest.raises(InvalidClientError):
        _revoke_as_holder(world, root, SigningKey.generate("ES256"))
    assert introspect(root, SUPPORT_API, world.ctx)["active"] is True
