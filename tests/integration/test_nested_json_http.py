"""Hostile JSON over HTTP against ``agentiam serve``: deep nesting and NaN.

Every route that parses JSON, as a body or as a form field, answers 400 and never
500. The seeded world is the one of the token exchange tests, plus an admin.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest
from test_exchange_http import Seeded, seeded

from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.jose import SigningKey

__all__ = ["seeded"]

ADMIN_PASSWORD = "correct horse battery staple"
CIBA_SCOPE = "refunds"
NESTED = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
NAN = '{"a": NaN}'
HUGE = '{"a": 1e400}'


def _admin(seeded: Seeded) -> dict[str, str]:
    ctx = seeded.ctx
    password_hash = hash_password(ADMIN_PASSWORD)
    ctx.writer.run_sync(
        lambda conn: UserStore(ctx.engine).add_in(
            conn,
            login="root-admin",
            password_hash=password_hash,
            now=ctx.clock(),
            admin=True,
        )
    )
    response = httpx.post(
        f"{seeded.base_url}/v1/sessions",
        json={"login": "root-admin", "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['session_token']}"}


def _delegate(seeded: Seeded, path: str) -> dict[str, str]:
    root = seeded.root_token()
    proof = seeded.proof(seeded.orchestrator_key, path, token=root)
    return {"Authorization": f"DPoP {root}", "DPoP": proof}


def _root_svid(seeded: Seeded, key: SigningKey) -> str:
    now = int(seeded.ctx.clock())
    return seeded.sign(
        {
            "ver": 1,
            "iss": seeded.base_url,
            "aud": [seeded.base_url],
            "sub": seeded.spiffe("support-orchestrator", secrets.token_hex(4)),
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "cnf": {"jkt": key.thumbprint()},
        },
        "JWT",
    )


Headers = Callable[[Seeded], dict[str, str]]

BODY_ROUTES: list[tuple[str, Headers]] = [
    ("/v1/sessions", lambda seeded: {}),
    (
        "/v1/agents/attest",
        lambda seeded: {
            "DPoP": seeded.proof(SigningKey.generate("ES256"), "/v1/agents/attest")
        },
    ),
    ("/v1/agents/spawn", lambda seeded: _delegate(seeded, "/v1/agents/spawn")),
    ("/v1/tasks", lambda seeded: _delegate(seeded, "/v1/tasks")),
    ("/v1/users", _admin),
    ("/v1/agent-classes", _admin),
    ("/v1/agent-classes/refund-worker/keys", _admin),
    ("/v1/join-tokens", _admin),
    ("/v1/clients", _admin),
    ("/v1/revocations", _admin),
]
BODY_IDS = [path.removeprefix("/v1/") for path, _ in BODY_ROUTES]


def _post_json(
    seeded: Seeded, path: str, headers: dict[str, str], text: str
) -> httpx.Response:
    return httpx.post(
        f"{seeded.base_url}{path}",
        content=text,
        headers={**headers, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(("path", "headers"), BODY_ROUTES, ids=BODY_IDS)
def test_json_body_http_rejects_deep_nesting(
    seeded: Seeded, path: str, headers: Headers
) -> None:
    response = _post_json(seeded, path, headers(seeded), NESTED)

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. The body nests too deeply.",
    }


@pytest.mark.parametrize(("path", "headers"), BODY_ROUTES, ids=BODY_IDS)
def test_json_body_http_rejects_nan(
    seeded: Seeded, path: str, headers: Headers
) -> None:
    response = _post_json(seeded, path, headers(seeded), NAN)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "JSON constant 'NaN' is not allowed" in response.json()["error_description"]


@pytest.mark.parametrize(("path", "headers"), BODY_ROUTES, ids=BODY_IDS)
def test_json_body_http_rejects_infinite_number(
    seeded: Seeded, path: str, headers: Headers
) -> None:
    response = _post_json(seeded, path, headers(seeded), HUGE)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert (
        "JSON number '1e400' is out of range" in (response.json()["error_description"])
    )


@pytest.mark.parametrize(("path", "headers"), BODY_ROUTES, ids=BODY_IDS)
def test_json_body_http_rejects_unknown_member(
    seeded: Seeded, path: str, headers: Headers
) -> None:
    response = _post_json(seeded, path, headers(seeded), '{"extra": 1}')

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. "
        "The member 'extra' is not allowed.",
    }


@pytest.mark.parametrize("text", [NESTED, NAN, HUGE], ids=["nested", "nan", "huge"])
def test_audit_decisions_http_rejects_bad_json(seeded: Seeded, text: str) -> None:
    response = httpx.post(
        f"{seeded.base_url}/v1/audit/decisions",
        content=text,
        headers={"Content-Type": "application/json"},
        auth=(seeded.client_id, seeded.client_secret),
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("text", [NESTED, NAN, HUGE], ids=["nested", "nan", "huge"])
def test_bc_authorize_http_rejects_bad_details(seeded: Seeded, text: str) -> None:
    key = SigningKey.generate("ES256")
    svid = _root_svid(seeded, key)
    proof = seeded.proof(key, "/bc-authorize", token=svid)

    response = httpx.post(
        f"{seeded.base_url}/bc-authorize",
        data={
            "login_hint": "alice",
            "scope": CIBA_SCOPE,
            "audience": "https://support.example/api",
            "binding_message": "Work ticket T-1",
            "authorization_details": f"[{text}]",
        },
        headers={"Authorization": f"DPoP {svid}", "DPoP": proof},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_authorization_details"


@pytest.mark.parametrize("text", [NESTED, NAN, HUGE], ids=["nested", "nan", "huge"])
def test_token_http_rejects_bad_details(seeded: Seeded, text: str) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(
        seeded.root_token(),
        key,
        svid,
        scope="refunds",
        authorization_details=f"[{text}]",
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_authorization_details"
