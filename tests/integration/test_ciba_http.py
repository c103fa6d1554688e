"""CIBA over HTTP against ``agentiam serve``: request, approval, poll, first token.

The server runs as a subprocess with the real clock. No test sleeps, so two polls in
a row are always within the 5 s interval, which the slow_down test relies on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.audit.tables import audit_events
from agentiam.config import Settings
from agentiam.delegation.grants import GrantStore
from agentiam.delegation.receipts import verify_receipt
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.jose import SigningKey, create_dpop_proof, verify_jws
from agentiam.tokens import AccessTokenClaims

PASSWORD = "correct horse battery staple"
API = "https://support.example/api"
CIBA = "urn:openid:params:grant-type:ciba"
# The KEK the live_server fixture starts the server with (tests/conftest.py).
TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"


@pytest.fixture
def server_ctx(live_server_settings: Settings) -> Iterator[ServerContext]:
    context = open_context(live_server_settings, environ={"AGENTIAM_KEK": TEST_KEK})
    try:
        yield context
    finally:
        close_context(context)


@pytest.fixture
def seeded(server_ctx: ServerContext) -> None:
    users = UserStore(server_ctx.engine)
    password_hash = hash_password(PASSWORD)

    def seed(conn: Any) -> None:
        alice = users.add_in(
            conn,
            login="alice",
            password_hash=password_hash,
            now=time.time(),
            admin=True,
        )
        users.add_in(conn, login="bob", password_hash=password_hash, now=time.time())
        AgentClassStore(server_ctx.engine).add_in(
            conn,
            AgentClass(
                name="orchestrator",
                owner=alice.id,
                scopes=frozenset({"tickets", "refunds"}),
                audiences=frozenset({API}),
                may_spawn=frozenset(),
                max_depth=2,
                default_ttl=300,
                max_ttl=600,
            ),
            now=time.time(),
        )

    server_ctx.writer.run_sync(seed)


def session(base: str, user: str = "alice") -> dict[str, str]:
    response = httpx.post(
        f"{base}/v1/sessions", json={"login": user, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['session_token']}"}


def attest(base: str) -> tuple[SigningKey, str]:
    tokens = httpx.post(
        f"{base}/v1/join-tokens",
        json={"agent_class": "orchestrator"},
        headers=session(base),
    )
    assert tokens.status_code == 201, tokens.text
    key = SigningKey.generate()
    proof = create_dpop_proof(
        key, htm="POST", htu=f"{base}/v1/agents/attest", now=time.time()
    )
    response = httpx.post(
        f"{base}/v1/agents/attest",
        json={"agent_class": "orchestrator", "join_token": tokens.json()["join_token"]},
        headers={"DPoP": proof},
    )
    assert response.status_code == 201, response.text
    return key, str(response.json()["svid"])


def bc_authorize(
    base: str, key: SigningKey, svid: str, **form: str | list[str]
) -> httpx.Response:
    values: dict[str, str | list[str]] = {
        "login_hint": "alice",
        "scope": "tickets refunds",
        "audience": API,
        "binding_message": "Work ticket T-1",
        "authorization_details": json.dumps([{"type": "refund", "max_amount": "80"}]),
        "max_depth": "2",
        "requested_expiry": "1800",
    }
    values.update(form)
    url = f"{base}/bc-authorize"
    proof = create_dpop_proof(
        key, htm="POST", htu=url, now=time.time(), access_token=svid
    )
    headers = {"Authorization": f"DPoP {svid}", "DPoP": proof}
    return httpx.post(url, data=values, headers=headers)


def poll(base: str, key: SigningKey, auth_req_id: str) -> httpx.Response:
    url = f"{base}/token"
    proof = create_dpop_proof(key, htm="POST", htu=url, now=time.time())
    form = {"grant_type": CIBA, "auth_req_id": auth_req_id}
    return httpx.post(url, data=form, headers={"DPoP": proof})


def pending_ids(base: str, user: str = "alice") -> list[str]:
    response = httpx.get(f"{base}/v1/approvals", headers=session(base, user))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["approvals"]]


def audit_rows(ctx: ServerContext) -> list[tuple[str, str]]:
    """Return (type, decision) of every committed audit event, in order."""
    query = sqlalchemy.select(audit_events.c.type, audit_events.c.decision).order_by(
        audit_events.c.seq
    )
    with ctx.engine.connect() as conn:
        return [(row.type, row.decision) for row in conn.execute(query)]


def test_ciba_approve_and_redeem(
    live_server: str, seeded: None, server_ctx: ServerContext
) -> None:
    key, svid = attest(live_server)

    created = bc_authorize(live_server, key, svid)
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert body["interval"] == 5
    assert created.headers["cache-control"] == "no-store"

    pending = poll(live_server, key, body["auth_req_id"])
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"

    [approval_id] = pending_ids(live_server)
    assert pending_ids(live_server, "bob") == []
    other = httpx.post(
        f"{live_server}/v1/approvals/{approval_id}/approve",
        headers=session(live_server, "bob"),
    )
    assert other.status_code == 404
    assert other.json()["error"] == "not_found"

    approved = httpx.post(
        f"{live_server}/v1/approvals/{approval_id}/approve",
        headers=session(live_server),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    again = httpx.post(
        f"{live_server}/v1/approvals/{approval_id}/deny", headers=session(live_server)
    )
    assert again.status_code == 409

    issued = poll(live_server, key, body["auth_req_id"])
    assert issued.status_code == 200, issued.text
    token = issued.json()
    assert token["token_type"] == "DPoP"
    assert token["scope"] == "refunds tickets"
    assert token["expires_in"] == 300

    _, raw = verify_jws(token["access_token"], server_ctx.keyring.lookup, typ="at+jwt")
    claims = AccessTokenClaims.from_dict(raw)
    assert claims.depth == 1
    assert claims.cnf_jkt == key.thumbprint()
    assert claims.grant.id == approved.json()["grant_id"]
    grant = GrantStore(server_ctx.engine).get(claims.grant.id)
    assert grant is not None
    verify_receipt(
        grant.receipt,
        server_ctx.keyring.lookup,
        expected_hash=claims.grant.receipt_hash,
    )

    redeemed = poll(live_server, key, body["auth_req_id"])
    assert redeemed.status_code == 400
    assert redeemed.json()["error"] == "invalid_grant"

    ciba_events = [
        row
        for row in audit_rows(server_ctx)
        if row[0]
        in {"approval.requested", "grant.approved", "task.opened", "token.issued"}
    ]
    assert ciba_events == [
        ("approval.requested", "none"),
        ("grant.approved", "allow"),
        ("task.opened", "allow"),
        ("token.issued", "allow"),
    ]


def test_ciba_deny(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)
    auth_req_id = bc_authorize(live_server, key, svid).json()["auth_req_id"]
    [approval_id] = pending_ids(live_server)

    denied = httpx.post(
        f"{live_server}/v1/approvals/{approval_id}/deny", headers=session(live_server)
    )
    assert denied.status_code == 200, denied.text

    response = poll(live_server, key, auth_req_id)
    assert response.status_code == 400
    assert response.json() == {
        "error": "access_denied",
        "error_description": "The user denied the authorization request.",
    }


def test_ciba_slow_down(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)
    auth_req_id = bc_authorize(live_server, key, svid).json()["auth_req_id"]

    first = poll(live_server, key, auth_req_id)
    second = poll(live_server, key, auth_req_id)

    assert first.json()["error"] == "authorization_pending"
    assert second.status_code == 400
    assert second.json() == {
        "error": "slow_down",
        "error_description": "The client polled too fast; the interval was "
        "increased by 5 s.",
    }


@pytest.mark.parametrize("live_server_env", [{"AGENTIAM_CIBA_EXPIRES_IN": "1"}])
def test_ciba_expired(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)
    created = bc_authorize(live_server, key, svid)
    assert created.json()["expires_in"] == 1
    time.sleep(1.2)

    response = poll(live_server, key, created.json()["auth_req_id"])

    assert response.status_code == 400
    assert response.json() == {
        "error": "expired_token",
        "error_description": "The auth_req_id has expired.",
    }
    assert pending_ids(live_server) == []


def test_ciba_unknown_user(
    live_server: str, seeded: None, server_ctx: ServerContext
) -> None:
    key, svid = attest(live_server)

    response = bc_authorize(live_server, key, svid, login_hint="nobody")

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown_user_id",
        "error_description": "The login_hint does not name a known user.",
    }
    assert audit_rows(server_ctx)[-1] == ("approval.requested", "deny")
    assert pending_ids(live_server) == []


def test_ciba_other_key_cannot_poll(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)
    auth_req_id = bc_authorize(live_server, key, svid).json()["auth_req_id"]

    response = poll(live_server, SigningKey.generate(), auth_req_id)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"login_hint": "nobody"}, 400, "unknown_user_id"),
        ({"scope": "tickets admin"}, 400, "invalid_scope"),
        ({"audience": "https://evil.example/api"}, 400, "invalid_target"),
        ({"max_depth": "3"}, 400, "invalid_request"),
        (
            {"authorization_details": '[{"amount": 1}]'},
            400,
            "invalid_authorization_details",
        ),
    ],
    ids=["unknown-user", "wider-scope", "wider-audience", "wider-depth", "bad-rar"],
)
def test_bc_authorize_rejects(
    live_server: str,
    seeded: None,
    server_ctx: ServerContext,
    form: dict[str, str],
    status: int,
    error: str,
) -> None:
    key, svid = attest(live_server)

    response = bc_authorize(live_server, key, svid, **form)

    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert pending_ids(live_server) == []
    assert ("approval.requested", "deny") in audit_rows(server_ctx)


def test_bc_authorize_accepts_repeated_audience(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)

    response = bc_authorize(live_server, key, svid, audience=[API, API], resource=API)

    assert response.status_code == 200, response.text
    assert len(pending_ids(live_server)) == 1


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"audience": [API, "https://evil.example/api"]}, "invalid_target"),
        ({"audience": [API, ""]}, "invalid_request"),
        ({"resource": [API, f"{API}#x"]}, "invalid_target"),
        ({"scope": ["tickets", "refunds"]}, "invalid_request"),
    ],
    ids=["one-wider", "one-empty", "fragment", "repeated-scope"],
)
def test_bc_authorize_checks_repeated_parameters(
    live_server: str, seeded: None, form: dict[str, list[str]], error: str
) -> None:
    key, svid = attest(live_server)

    response = bc_authorize(live_server, key, svid, **form)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert pending_ids(live_server) == []


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (
            b"login_hint=alice&login_hint=bob&scope=tickets",
            "The parameter 'login_hint' is repeated.",
        ),
        (b"login_hint=\xff&scope=tickets", "The request body is not valid UTF-8."),
        (b"login_hint=%FF&scope=tickets", "A form parameter is not valid UTF-8."),
        (
            b"login_hint=alice&scope=" + b"a" * 65536,
            "The request body exceeds 65536 bytes.",
        ),
    ],
    ids=["repeated", "raw-not-utf8", "escape-not-utf8", "oversized"],
)
def test_bc_authorize_rejects_bad_body(
    live_server: str,
    seeded: None,
    server_ctx: ServerContext,
    body: bytes,
    hint: str,
) -> None:
    key, svid = attest(live_server)
    rows = audit_rows(server_ctx)
    url = f"{live_server}/bc-authorize"
    proof = create_dpop_proof(
        key, htm="POST", htu=url, now=time.time(), access_token=svid
    )

    response = httpx.post(
        url,
        content=body,
        headers={
            "Authorization": f"DPoP {svid}",
            "DPoP": proof,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"The request is invalid. {hint}",
    }
    # The refusal is audited, and nothing else is written.
    assert audit_rows(server_ctx) == [*rows, ("approval.requested", "deny")]
    assert pending_ids(live_server) == []


def test_bc_authorize_needs_svid(live_server: str, seeded: None) -> None:
    response = httpx.post(
        f"{live_server}/bc-authorize", data={"login_hint": "alice", "scope": "tickets"}
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_cli_approve(
    live_server: str,
    live_server_database_args: list[str],
    seeded: None,
    tmp_path: Path,
) -> None:
    key, svid = attest(live_server)
    auth_req_id = bc_authorize(live_server, key, svid).json()["auth_req_id"]
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIAM_")}
    env["AGENTIAM_KEK"] = TEST_KEK
    common = [
        "--user",
        "alice",
        "--password-file",
        str(password_file),
        *live_server_database_args,
    ]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "agentiam.cli.main",
            "--output",
            "json",
            "approval",
            *args,
            *common,
        ]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)
    approved = cli("approve", item["id"])
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "approved"

    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentiam.cli.main",
            "approval",
            "list",
            "--user",
            "alice",
            *live_server_database_args,
        ],
        env=env | {"AGENTIAM_PASSWORD": "wrong"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1
    assert "Invalid user or password." in wrong.stderr

    issued = poll(live_server, key, auth_req_id)
    assert issued.status_code == 200, issued.text


def test_openapi_lists_approvals(live_server: str) -> None:
    document = httpx.get(f"{live_server}/v1/openapi.json").json()

    assert "get" in document["paths"]["/v1/approvals"]
    assert "post" in document["paths"]["/v1/approvals/{id}/approve"]
    assert "post" in document["paths"]["/v1/approvals/{id}/deny"]
