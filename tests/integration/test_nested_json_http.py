"""Hostile JSON over HTTP against ``agentiam serve``: deep nesting, NaN, huge
integers and lone surrogates, in bodies, form fields, DPoP proofs and tokens.

Every route that parses JSON, as a body or as a form field, returns 400 and never
500. The seeded world is the one of the token exchange tests, plus an admin.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable

import httpx
import pytest
from test_exchange_http import Seeded, seeded

from agentiam.jose import SigningKey
from agentiam.jose.jws import sign_jws_with_header

__all__ = ["seeded"]

CIBA_SCOPE = "refunds"
NESTED = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
NAN = '{"a": NaN}'
HUGE = '{"a": 1e400}'
LONG_INTEGER = '{"a": 1' + "0" * 5000 + "}"
RANGE = "integers must be between -(2**53 - 1) and 2**53 - 1"


def _admin(seeded: Seeded) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.admin_session()}"}


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


@pytest.mark.parametrize(("path", "headers"), BODY_ROUTES, ids=BODY_IDS)
def test_json_body_http_rejects_long_integer(
    seeded: Seeded, path: str, headers: Headers
) -> None:
    response = _post_json(seeded, path, headers(seeded), LONG_INTEGER)

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. JSON number "
        f"'10000000000000000000...' (5001 digits) in member 'a' is out of range: "
        f"{RANGE}.",
    }


@pytest.mark.parametrize(
    ("body", "member", "code"),
    [
        (b'{"login": "alice", "password": "x\\udfff"}', "password", "DFFF"),
        (b'{"login": "\\ud800", "password": "x"}', "login", "D800"),
    ],
    ids=["password", "login"],
)
def test_sessions_http_rejects_lone_surrogate(
    seeded: Seeded, body: bytes, member: str, code: str
) -> None:
    response = httpx.post(
        f"{seeded.base_url}/v1/sessions",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error_description"] == (
        f"The request is invalid. JSON string in member '{member}' has the lone "
        f"surrogate U+{code}: strings must be valid Unicode."
    )


@pytest.mark.parametrize("member", ["login", "display_name"])
def test_users_http_rejects_lone_surrogate(seeded: Seeded, member: str) -> None:
    values = {"login": '"bob"', "display_name": '"Bob"', member: '"x\\ud800"'}
    body = ", ".join(f'"{name}": {value}' for name, value in values.items())

    response = _post_json(seeded, "/v1/users", _admin(seeded), f"{{{body}}}")

    assert response.status_code == 400, response.text
    assert (
        f"member '{member}' has the lone surrogate U+D800"
        in (response.json()["error_description"])
    )


def _huge_iat_proof(seeded: Seeded, key: SigningKey, path: str) -> str:
    claims = {
        "jti": secrets.token_urlsafe(12),
        "htm": "POST",
        "htu": f"{seeded.base_url}{path}",
        "iat": 10**400,
    }
    header = {"typ": "dpop+jwt", "jwk": key.public_jwk()}
    return sign_jws_with_header(claims, key, header)


def test_token_http_rejects_huge_proof_iat(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": seeded.root_token(),
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "actor_token": svid,
        "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
    }

    response = httpx.post(
        f"{seeded.base_url}/token",
        data=form,
        headers={"DPoP": _huge_iat_proof(seeded, key, "/token")},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_dpop_proof"


def test_tasks_http_rejects_huge_proof_iat(seeded: Seeded) -> None:
    root = seeded.root_token()
    proof = _huge_iat_proof(seeded, seeded.orchestrator_key, "/v1/tasks")

    response = _post_json(
        seeded,
        "/v1/tasks",
        {"Authorization": f"DPoP {root}", "DPoP": proof},
        '{"purpose": "x"}',
    )

    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_dpop_proof", "invalid_token")


def _huge_exp_token(seeded: Seeded) -> str:
    payload = seeded.root_token().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = 10**400
    return seeded.sign(claims, "at+jwt")


def test_token_http_rejects_huge_subject_exp(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(_huge_exp_token(seeded), key, svid)

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The subject_token is invalid.",
    }


def test_tasks_http_rejects_huge_token_exp(seeded: Seeded) -> None:
    token = _huge_exp_token(seeded)
    proof = seeded.proof(seeded.orchestrator_key, "/v1/tasks", token=token)

    response = _post_json(
        seeded,
        "/v1/tasks",
        {"Authorization": f"DPoP {token}", "DPoP": proof},
        '{"purpose": "x"}',
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize("scope", ["refunds\ttickets", "refunds\ntickets"])
def test_token_http_rejects_scope_whitespace(seeded: Seeded, scope: str) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(seeded.root_token(), key, svid, scope=scope)

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "The requested scope is not allowed. Invalid scope "
        f"value {scope!r}: the character {scope[7]!r} is not allowed in a scope "
        "token.",
    }


EXPONENT_DETAILS = (
    '[{"type": "refund", "max_amount": {"amount": "1e2", "currency": "EUR"}}]'
)
EXPONENT_HINT = (
    "Invalid amount '1e2' in 'authorization_details[0].max_amount.amount': expected "
    "a string of digits with an optional fraction, such as '12.50'."
)


def test_token_http_rejects_exponent_amount(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(
        seeded.root_token(), key, svid, authorization_details=EXPONENT_DETAILS
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_authorization_details"
    assert response.json()["error_description"].endswith(EXPONENT_HINT)


def test_bc_authorize_http_rejects_exponent_amount(seeded: Seeded) -> None:
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
            "authorization_details": EXPONENT_DETAILS,
        },
        headers={"Authorization": f"DPoP {svid}", "DPoP": proof},
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_authorization_details"
    assert response.json()["error_description"].endswith(EXPONENT_HINT)
