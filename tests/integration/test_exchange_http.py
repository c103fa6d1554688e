"""Token exchange and introspection over HTTP against ``agentiam serve``.

The test opens its own context on the server's data directory. It seeds a human,
the agent classes, a grant with its root task and a resource-server client. It signs
the root token and the SVIDs with the server's active key, as the CIBA and spawn
steps would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.config import load_settings
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.clients import ClientStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.jose import SigningKey, sign_jws
from agentiam.jose.dpop import create_dpop_proof
from agentiam.tasks import Task, task_store

# The KEK the live_server fixture starts the server with (tests/conftest.py).
TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"

API = "https://support.example/api"
ADMIN_PASSWORD = "root-password-1"
ORCHESTRATOR = "support-orchestrator"
WORKER = "refund-worker"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass
class Seeded:
    """The seeded principals and a way to mint tokens the server accepts."""

    base_url: str
    ctx: ServerContext
    trust_domain: str
    user_id: str
    grant: Grant
    root_task: Task
    client_id: str
    client_secret: str
    orchestrator_key: SigningKey

    def spiffe(self, agent_class: str, instance: str) -> str:
        return f"spiffe://{self.trust_domain}/agent/{agent_class}/{instance}"

    @property
    def orchestrator(self) -> str:
        return self.spiffe(ORCHESTRATOR, "o-1")

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        return sign_jws(claims, self.ctx.keyring.active(), typ=typ)

    def login(self, login: str, password: str) -> str:
        """Log a human in at ``POST /v1/sessions`` and return the session token."""
        response = httpx.post(
            f"{self.base_url}/v1/sessions", json={"login": login, "password": password}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["session_token"])

    def admin_session(self) -> str:
        """Add the administrator ``root`` and return a session token for it."""
        password_hash = hash_password(ADMIN_PASSWORD)
        self.ctx.writer.run_sync(
            lambda conn: UserStore(self.ctx.engine).add_in(
                conn,
                login="root",
                password_hash=password_hash,
                now=self.ctx.clock(),
                admin=True,
            )
        )
        return self.login("root", ADMIN_PASSWORD)

    def root_token(self) -> str:
        now = int(self.ctx.clock())
        return self.sign(
            {
                "ver": 1,
                "iss": self.base_url,
                "aud": [API],
                "exp": now + 300,
                "iat": now,
                "nbf": now,
                "jti": secrets.token_urlsafe(12),
                "sub": self.user_id,
                "client_id": self.orchestrator,
                "scope": "refunds tickets",
                "act": {"sub": self.orchestrator},
                "depth": 1,
                "grant": {
                    "id": self.grant.id,
                    "receipt_hash": self.grant.receipt_hash,
                },
                "task": {"id": self.root_task.id, "path": [self.root_task.id]},
                "cnf": {"jkt": self.orchestrator_key.thumbprint()},
            },
            "at+jwt",
        )

    def worker(self) -> tuple[SigningKey, str]:
        """Return a worker key and its SVID as a sub-agent of the orchestrator."""
        key = SigningKey.generate("ES256")
        now = int(self.ctx.clock())
        svid = self.sign(
            {
                "ver": 1,
                "iss": self.base_url,
                "aud": [self.base_url],
                "sub": self.spiffe(WORKER, secrets.token_hex(4)),
                "iat": now,
                "exp": now + 300,
                "jti": secrets.token_urlsafe(12),
                "cnf": {"jkt": key.thumbprint()},
                "parent": self.orchestrator,
                "ancestors": [self.orchestrator],
            },
            "JWT",
        )
        return key, svid

    def proof(
        self,
        key: SigningKey,
        path: str,
        *,
        method: str = "POST",
        token: str | None = None,
    ) -> str:
        return create_dpop_proof(
            key,
            htm=method,
            htu=f"{self.base_url}{path}",
            now=self.ctx.clock(),
            access_token=token,
        )

    def exchange(
        self, subject: str, key: SigningKey, svid: str, **params: str
    ) -> httpx.Response:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "actor_token": svid,
            "actor_token_type": JWT_TOKEN_TYPE,
            **params,
        }
        return httpx.post(
            f"{self.base_url}/token",
            data=form,
            headers={"DPoP": self.proof(key, "/token")},
        )

    def introspect(self, token: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}/introspect",
            data={"token": token},
            auth=(self.client_id, self.client_secret),
        )
        assert response.status_code == 200
        return dict(response.json())


def _seed(ctx: ServerContext, base_url: str) -> Seeded:
    now = ctx.clock()
    run = ctx.writer.run_sync
    user = run(
        lambda conn: UserStore(ctx.engine).add_in(
            conn, login="alice", password_hash=hash_password("alice-pw"), now=now
        )
    )
    classes = AgentClassStore(ctx.engine)
    for name, may_spawn in ((WORKER, frozenset()), (ORCHESTRATOR, frozenset({WORKER}))):
        agent_class = AgentClass(
            name=name,
            owner=user.id,
            scopes=frozenset({"refunds", "tickets"}),
            audiences=frozenset({API}),
            may_spawn=may_spawn,
            max_depth=3,
            default_ttl=240,
            max_ttl=900,
        )
        run(lambda conn, c=agent_class: classes.add_in(conn, c, now=now))

    grant = Grant(
        id="grt_" + secrets.token_hex(8),
        user_id=user.id,
        agent_class=ORCHESTRATOR,
        scopes=("refunds", "tickets"),
        audiences=(API,),
        authorization_details=(),
        max_depth=2,
        expires_at=now + 3600,
        receipt="receipt",
        receipt_hash=secrets.token_urlsafe(32),
        created_at=now,
    )
    run(lambda conn: GrantStore(ctx.engine).insert_in(conn, grant))
    orchestrator_id = f"spiffe://{ctx.settings.trust_domain}/agent/{ORCHESTRATOR}/o-1"
    root_task = run(
        lambda conn: task_store(ctx.engine, ctx.revocations).open_in(
            conn,
            grant_id=grant.id,
            parent_id=None,
            purpose="Work ticket T-1",
            scopes=grant.scopes,
            audiences=grant.audiences,
            expires_at=grant.expires_at,
            opened_by=orchestrator_id,
            now=now,
        )
    )
    issued = run(
        lambda conn: ClientStore(ctx.engine).add_in(conn, "support-api", [API], now=now)
    )
    return Seeded(
        base_url=base_url,
        ctx=ctx,
        trust_domain=ctx.settings.trust_domain,
        user_id=user.id,
        grant=grant,
        root_task=root_task,
        client_id=issued.client.client_id,
        client_secret=issued.client_secret,
        orchestrator_key=SigningKey.generate("ES256"),
    )


@pytest.fixture
def seeded(live_server: str, live_server_data_dir: Path) -> Iterator[Seeded]:
    settings = load_settings(
        environ={},
        overrides={"data_dir": live_server_data_dir, "issuer": live_server},
    )
    ctx = open_context(settings, environ={"AGENTIAM_KEK": TEST_KEK})
    try:
        yield _seed(ctx, live_server)
    finally:
        close_context(ctx)


def test_exchange_http_issues_token(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(seeded.root_token(), key, svid, scope="refunds")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "DPoP"
    assert body["scope"] == "refunds"
    assert 0 < body["expires_in"] <= 240


def test_exchange_http_token_introspects(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    token = seeded.exchange(seeded.root_token(), key, svid, scope="refunds").json()[
        "access_token"
    ]

    result = seeded.introspect(token)

    assert result["active"] is True
    assert result["scope"] == "refunds"
    assert result["act"]["act"] == {"sub": seeded.orchestrator}
    assert result["cnf"] == {"jkt": key.thumbprint()}


def test_exchange_http_rejects_wider_scope(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(seeded.root_token(), key, svid, scope="refunds admin")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_exchange_http_rejects_other_key(seeded: Seeded) -> None:
    _key, svid = seeded.worker()

    response = seeded.exchange(
        seeded.root_token(), SigningKey.generate("ES256"), svid, scope="refunds"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"


def test_token_http_rejects_unknown_grant_type(seeded: Seeded) -> None:
    response = httpx.post(f"{seeded.base_url}/token", data={"grant_type": "password"})

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_http_rejects_repeated_parameter(seeded: Seeded) -> None:
    response = httpx.post(
        f"{seeded.base_url}/token",
        content=f"grant_type={TOKEN_EXCHANGE}&scope=a&scope=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "'scope'" in response.json()["error_description"]


def test_introspect_http_requires_client(seeded: Seeded) -> None:
    response = httpx.post(f"{seeded.base_url}/introspect", data={"token": "x"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_introspect_http_invalid_token_inactive(seeded: Seeded) -> None:
    assert seeded.introspect("not-a-token") == {"active": False}
