"""The identity routes in-process, on the app of the ``ctx`` fixture."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentiam.api.app import create_app
from agentiam.api.context import ServerContext
from agentiam.client.tokens import decode_unverified_claims
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.jose import SigningKey, create_dpop_proof, sign_jws
from agentiam.tokens import AccessTokenClaims, Actor, GrantRef, TaskRef

PASSWORD = "correct horse battery staple"
AUDIENCE = "https://support.example/api"
# The grants the seed adds, by id, with their max_depth.
GRANT_DEPTHS = {"grant-1": 2, "grant-shallow": 1, "grant-deep": 5}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(ctx: ServerContext) -> AsyncIterator[httpx.AsyncClient]:
    users = UserStore(ctx.engine)
    classes = AgentClassStore(ctx.engine)
    password_hash = hash_password(PASSWORD)

    def seed(conn: Any) -> None:
        admin = users.add_in(
            conn, login="alice", password_hash=password_hash, now=1.0, admin=True
        )
        for name, may_spawn in (("orchestrator", {"worker"}), ("worker", set())):
            agent_class = AgentClass(
                name=name,
                owner=admin.id,
                scopes=frozenset({"tickets"}),
                audiences=frozenset({AUDIENCE}),
                may_spawn=frozenset(may_spawn),
                max_depth=3,
                default_ttl=300,
                max_ttl=600,
            )
            classes.add_in(conn, agent_class, now=1.0)
        for grant_id, max_depth in GRANT_DEPTHS.items():
            grant = Grant(
                id=grant_id,
                user_id=admin.id,
                agent_class="orchestrator",
                scopes=("tickets",),
                audiences=(AUDIENCE,),
                authorization_details=(),
                max_depth=max_depth,
                expires_at=time.time() + 3600,
                receipt="receipt",
                receipt_hash=grant_id.ljust(43, "r"),
                created_at=1.0,
            )
            GrantStore(ctx.engine).insert_in(conn, grant)

    await ctx.writer.submit(seed)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url=ctx.settings.issuer
    ) as http:
        yield http


async def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/v1/sessions", json={"login": "alice", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['session_token']}"}


async def new_join_token(client: httpx.AsyncClient, agent_class: str) -> str:
    response = await client.post(
        "/v1/join-tokens",
        json={"agent_class": agent_class},
        headers=await admin_headers(client),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["join_token"])


def proof(
    ctx: ServerContext, key: SigningKey, path: str, token: str | None = None
) -> str:
    return create_dpop_proof(
        key,
        htm="POST",
        htu=ctx.settings.issuer + path,
        now=time.time(),
        access_token=token,
    )


async def attest(
    client: httpx.AsyncClient, ctx: ServerContext, key: SigningKey, agent_class: str
) -> str:
    body = {
        "agent_class": agent_class,
        "join_token": await new_join_token(client, agent_class),
    }
    headers = {"DPoP": proof(ctx, key, "/v1/agents/attest")}
    response = await client.post("/v1/agents/attest", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["spiffe_id"])


def delegated_token(
    ctx: ServerContext,
    spiffe_id: str,
    key: SigningKey,
    *,
    above: tuple[str, ...] = (),
    grant_id: str = "grant-1",
) -> str:
    """Sign an access token for ``spiffe_id``, acting below ``above`` (root last)."""
    now = time.time()
    # The acting instance is the outer act, the root the innermost.
    chain = (spiffe_id, *above)
    act = Actor(sub=chain[-1])
    for sub in reversed(chain[:-1]):
        act = Actor(sub=sub, act=act)
    claims = AccessTokenClaims(
        iss=ctx.settings.issuer,
        aud=(AUDIENCE,),
        exp=now + 300,
        iat=now,
        nbf=now,
        jti=secrets.token_urlsafe(8),
        sub="usr_someone",
        client_id=spiffe_id,
        scope="tickets",
        depth=len(chain),
        grant=GrantRef(id=grant_id, receipt_hash=grant_id.ljust(43, "r")),
        cnf_jkt=key.thumbprint(),
        act=act,
        task=TaskRef(id="task-1", path=("task-1",)),
    )
    return sign_jws(claims.to_dict(), ctx.keyring.active(), typ="at+jwt")


async def spawn(
    client: httpx.AsyncClient,
    ctx: ServerContext,
    key: SigningKey,
    token: str,
    agent_class: str,
) -> httpx.Response:
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": proof(ctx, key, "/v1/agents/spawn", token),
    }
    body = {
        "agent_class": agent_class,
        "public_jwk": SigningKey.generate().public_jwk(),
    }
    return await client.post("/v1/agents/spawn", json=body, headers=headers)


async def test_login_wrong_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/sessions", json={"login": "alice", "password": "wrong password!"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_join_token_reuse(client: httpx.AsyncClient, ctx: ServerContext) -> None:
    token = await new_join_token(client, "orchestrator")
    body = {"agent_class": "orchestrator", "join_token": token}
    statuses = []
    for _ in range(2):
        headers = {"DPoP": proof(ctx, SigningKey.generate(), "/v1/agents/attest")}
        response = await client.post("/v1/agents/attest", json=body, headers=headers)
        statuses.append(response.status_code)

    assert statuses == [201, 400]
    assert response.json()["error"] == "invalid_grant"


async def test_attest_rejects_both_methods(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    body = {"agent_class": "orchestrator", "join_token": "a", "assertion": "b"}
    headers = {"DPoP": proof(ctx, SigningKey.generate(), "/v1/agents/attest")}
    response = await client.post("/v1/agents/attest", json=body, headers=headers)
    assert response.json()["error_description"] == (
        "The request is invalid. Send exactly one of the members 'join_token' and "
        "'assertion'."
    )


async def test_spawn_allowed(client: httpx.AsyncClient, ctx: ServerContext) -> None:
    key = SigningKey.generate()
    parent = await attest(client, ctx, key, "orchestrator")
    token = delegated_token(ctx, parent, key)

    response = await spawn(client, ctx, key, token, "worker")
    assert response.status_code == 201, response.text
    assert response.json()["expires_in"] == 300


async def test_spawn_not_spawnable(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    key = SigningKey.generate()
    parent = await attest(client, ctx, key, "worker")
    token = delegated_token(ctx, parent, key)

    response = await spawn(client, ctx, key, token, "orchestrator")
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "The client is not allowed to make this request. Agent class 'worker' may "
        "not spawn agent class 'orchestrator'."
    )


async def test_spawn_other_key_proof(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    key = SigningKey.generate()
    parent = await attest(client, ctx, key, "orchestrator")
    token = delegated_token(ctx, parent, key)

    response = await spawn(client, ctx, SigningKey.generate(), token, "worker")
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "The DPoP proof is invalid. The proof key does not match the token's cnf.jkt."
    )


async def test_spawn_without_token(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    response = await client.post("/v1/agents/spawn", json={})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "www-authenticate" in response.headers


def _instance(ctx: ServerContext, agent_class: str) -> str:
    return f"spiffe://{ctx.settings.trust_domain}/agent/{agent_class}/i-{secrets.token_hex(4)}"


async def test_spawn_child_names_ancestors(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    key = SigningKey.generate()
    parent = await attest(client, ctx, key, "orchestrator")
    root = _instance(ctx, "orchestrator")
    token = delegated_token(ctx, parent, key, above=(root,), grant_id="grant-deep")

    response = await spawn(client, ctx, key, token, "worker")

    assert response.status_code == 201, response.text
    claims = decode_unverified_claims(response.json()["svid"])
    assert claims["parent"] == parent
    assert claims["ancestors"] == [root, parent]


@pytest.mark.parametrize(
    ("grant_id", "above", "description"),
    [
        pytest.param(
            "grant-shallow",
            0,
            "Access was denied. The delegation depth 2 exceeds the grant's maximum "
            "of 1.",
            id="grant",
        ),
        pytest.param(
            "grant-deep",
            2,
            "Access was denied. The delegation depth 4 exceeds the maximum of 3 for "
            "agent class 'orchestrator'.",
            id="class",
        ),
    ],
)
async def test_spawn_rejects_depth_over_limit(
    client: httpx.AsyncClient,
    ctx: ServerContext,
    grant_id: str,
    above: int,
    description: str,
) -> None:
    key = SigningKey.generate()
    parent = await attest(client, ctx, key, "orchestrator")
    chain = tuple(_instance(ctx, "orchestrator") for _ in range(above))
    token = delegated_token(ctx, parent, key, above=chain, grant_id=grant_id)

    response = await spawn(client, ctx, key, token, "worker")

    assert response.status_code == 403
    assert response.json() == {
        "error": "access_denied",
        "error_description": description,
    }


async def test_spawn_rejects_unknown_grant(
    client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    key = SigningKey.generate()
    parent = await attest(client, ctx, key, "orchestrator")
    token = delegated_token(ctx, parent, key, grant_id="grant-missing")

    response = await spawn(client, ctx, key, token, "worker")

    assert response.status_code == 401
    assert response.json()["error_description"] == (
        "The access token is invalid. The token's grant has expired or been revoked."
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "description"),
    [
        ("POST", "/v1/users/usr_nobody/disable", None,
         "User 'usr_nobody' was not found."),
        ("GET", "/v1/agent-classes/ghost", None, "Agent class 'ghost' was not found."),
        ("POST", "/v1/join-tokens", {"agent_class": "ghost"},
         "Agent class 'ghost' was not found."),
    ],
    ids=["disable-user", "show-class", "join-token"],
)  # fmt: skip
async def test_missing_object_is_not_found(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    description: str,
) -> None:
    headers = await admin_headers(client)

    response = await client.request(method, path, json=body, headers=headers)

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "error_description": description}


async def test_unknown_owner_is_invalid_request(client: httpx.AsyncClient) -> None:
    body = {
        "name": "helper",
        "owner": "nobody",
        "scopes": ["tickets"],
        "audiences": [AUDIENCE],
    }

    response = await client.post(
        "/v1/agent-classes", json=body, headers=await admin_headers(client)
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. User 'nobody' was not found.",
    }
