"""Identity over HTTP against ``agentiam serve``: login, attestation and spawn."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.config import Settings
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.jose import SigningKey, create_dpop_proof, sign_jws
from agentiam.tokens import AccessTokenClaims, Actor, GrantRef, TaskRef

PASSWORD = "correct horse battery staple"
AUDIENCE = "https://support.example/api"
# The KEK the live_server fixture starts the server with (tests/conftest.py).
TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"


@pytest.fixture
def server_ctx(live_server_settings: Settings) -> Iterator[ServerContext]:
    """Open the live server's data dir in-process, with its issuer."""
    context = open_context(live_server_settings, environ={"AGENTIAM_KEK": TEST_KEK})
    try:
        yield context
    finally:
        close_context(context)


@pytest.fixture
def seeded(server_ctx: ServerContext) -> dict[str, str]:
    """Add an admin, an orchestrator class that may spawn a worker, and the worker."""
    users = UserStore(server_ctx.engine)
    classes = AgentClassStore(server_ctx.engine)
    password_hash = hash_password(PASSWORD)

    def seed(conn: Any) -> str:
        admin = users.add_in(
            conn,
            login="alice",
            password_hash=password_hash,
            now=time.time(),
            admin=True,
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
            classes.add_in(conn, agent_class, now=time.time())
        # The grant the tokens of delegated_token name; spawn checks its max_depth.
        grant = Grant(
            id="grant-1",
            user_id=admin.id,
            agent_class="orchestrator",
            scopes=("tickets",),
            audiences=(AUDIENCE,),
            authorization_details=(),
            max_depth=2,
            expires_at=time.time() + 3600,
            receipt="receipt",
            receipt_hash="r" * 43,
            created_at=time.time(),
        )
        GrantStore(server_ctx.engine).insert_in(conn, grant)
        return admin.id

    return {"admin_id": server_ctx.writer.run_sync(seed)}


def login(base: str, password: str = PASSWORD, user: str = "alice") -> httpx.Response:
    return httpx.post(f"{base}/v1/sessions", json={"login": user, "password": password})


def admin_headers(base: str) -> dict[str, str]:
    response = login(base)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['session_token']}"}


def proof(key: SigningKey, base: str, path: str, token: str | None = None) -> str:
    return create_dpop_proof(
        key, htm="POST", htu=base + path, now=time.time(), access_token=token
    )


def join_token(base: str, agent_class: str) -> str:
    response = httpx.post(
        f"{base}/v1/join-tokens",
        json={"agent_class": agent_class},
        headers=admin_headers(base),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["join_token"])


def attest(base: str, key: SigningKey, body: dict[str, str]) -> httpx.Response:
    headers = {"DPoP": proof(key, base, "/v1/agents/attest")}
    return httpx.post(f"{base}/v1/agents/attest", json=body, headers=headers)


def test_login(live_server: str, seeded: dict[str, str]) -> None:
    response = login(live_server)
    body = response.json()

    assert response.status_code == 201
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong password here"), ("nobody", PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)
def test_login_fails_alike(
    live_server: str, seeded: dict[str, str], user: str, password: str
) -> None:
    response = login(live_server, password, user)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The login or password is wrong.",
    }


def test_login_disabled_user(live_server: str, seeded: dict[str, str]) -> None:
    headers = admin_headers(live_server)
    created = httpx.post(
        f"{live_server}/v1/users",
        json={"login": "bob", "password": PASSWORD},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert login(live_server, user="bob").status_code == 201

    disabled = httpx.post(f"{live_server}/v1/users/{user_id}/disable", headers=headers)
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert login(live_server, user="bob").json()["error"] == "invalid_grant"


def test_admin_api_needs_session(live_server: str, seeded: dict[str, str]) -> None:
    response = httpx.get(f"{live_server}/v1/users")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_attest_join_token(live_server: str, seeded: dict[str, str]) -> None:
    key = SigningKey.generate()
    token = join_token(live_server, "orchestrator")

    first = attest(
        live_server, key, {"agent_class": "orchestrator", "join_token": token}
    )
    body = first.json()
    assert first.status_code == 201, first.text
    assert body["spiffe_id"].startswith("spiffe://agentiam.local/agent/orchestrator/")
    assert body["expires_in"] == 300

    again = attest(
        live_server, key, {"agent_class": "orchestrator", "join_token": token}
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_attest_assertion(live_server: str, seeded: dict[str, str]) -> None:
    class_key = SigningKey.generate()
    registered = httpx.post(
        f"{live_server}/v1/agent-classes/orchestrator/keys",
        json={"jwk": class_key.public_jwk()},
        headers=admin_headers(live_server),
    )
    assert registered.status_code == 201, registered.text
    kid = registered.json()["kid"]

    now = int(time.time())
    claims = {
        "iss": "orchestrator",
        "sub": "orchestrator",
        "aud": live_server,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(8),
    }
    signer = SigningKey(kid, class_key.alg, class_key.private_key)
    assertion = sign_jws(claims, signer, typ="JWT")
    body = {"agent_class": "orchestrator", "assertion": assertion}

    first = attest(live_server, SigningKey.generate(), body)
    assert first.status_code == 201, first.text
    replayed = attest(live_server, SigningKey.generate(), body)
    assert replayed.json()["error"] == "invalid_grant"


def test_attest_bad_proof(live_server: str, seeded: dict[str, str]) -> None:
    key = SigningKey.generate()
    token = join_token(live_server, "orchestrator")
    wrong_htu = create_dpop_proof(
        key, htm="POST", htu=live_server + "/v1/other", now=time.time()
    )
    response = httpx.post(
        f"{live_server}/v1/agents/attest",
        json={"agent_class": "orchestrator", "join_token": token},
        headers={"DPoP": wrong_htu},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"

    missing = httpx.post(
        f"{live_server}/v1/agents/attest",
        json={"agent_class": "orchestrator", "join_token": token},
    )
    assert missing.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "The DPoP proof is invalid. Missing DPoP header.",
    }


def delegated_token(ctx: ServerContext, spiffe_id: str, key: SigningKey) -> str:
    """Sign a delegated access token for a parent, as the token endpoint would."""
    now = time.time()
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
        depth=1,
        grant=GrantRef(id="grant-1", receipt_hash="r" * 43),
        cnf_jkt=key.thumbprint(),
        act=Actor(sub=spiffe_id),
        task=TaskRef(id="task-1", path=("task-1",)),
    )
    return sign_jws(claims.to_dict(), ctx.keyring.active(), typ="at+jwt")


def spawn(
    base: str, parent_key: SigningKey, token: str, agent_class: str
) -> httpx.Response:
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": proof(parent_key, base, "/v1/agents/spawn", token),
    }
    body = {
        "agent_class": agent_class,
        "public_jwk": SigningKey.generate().public_jwk(),
    }
    return httpx.post(f"{base}/v1/agents/spawn", json=body, headers=headers)


def attested_parent(base: str, agent_class: str) -> tuple[SigningKey, str]:
    key = SigningKey.generate()
    body = {"agent_class": agent_class, "join_token": join_token(base, agent_class)}
    response = attest(base, key, body)
    assert response.status_code == 201, response.text
    return key, str(response.json()["spiffe_id"])


def test_spawn_allowed(
    live_server: str, seeded: dict[str, str], server_ctx: ServerContext
) -> None:
    key, spiffe_id = attested_parent(live_server, "orchestrator")
    token = delegated_token(server_ctx, spiffe_id, key)

    response = spawn(live_server, key, token, "worker")
    assert response.status_code == 201, response.text
    assert response.json()["spiffe_id"].startswith(
        "spiffe://agentiam.local/agent/worker/"
    )


def test_spawn_refused(
    live_server: str, seeded: dict[str, str], server_ctx: ServerContext
) -> None:
    key, spiffe_id = attested_parent(live_server, "worker")
    token = delegated_token(server_ctx, spiffe_id, key)

    response = spawn(live_server, key, token, "orchestrator")
    assert response.status_code == 400
    assert response.json() == {
        "error": "unauthorized_client",
        "error_description": "The client is not allowed to make this request. "
        "Agent class 'worker' may not spawn agent class 'orchestrator'.",
    }


def test_spawn_proof_of_other_key(
    live_server: str, seeded: dict[str, str], server_ctx: ServerContext
) -> None:
    key, spiffe_id = attested_parent(live_server, "orchestrator")
    token = delegated_token(server_ctx, spiffe_id, key)

    response = spawn(live_server, SigningKey.generate(), token, "worker")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
