"""Spawn depth, ancestors in child SVIDs, repeated targets and revoked grants.

Runs against ``agentiam serve`` with the seeded world of ``test_exchange_http``.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import httpx
from test_exchange_http import API, ORCHESTRATOR, WORKER, Seeded, seeded
from test_revocation_by_id_http import _events, _renew, _revoke

from agentiam.client.tokens import decode_unverified_claims
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.jose import SigningKey

__all__ = ["seeded"]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _grant(seeded: Seeded, max_depth: int) -> Grant:
    grant = replace(
        seeded.grant,
        id="grt_" + secrets.token_hex(8),
        max_depth=max_depth,
        receipt_hash=secrets.token_urlsafe(32),
    )
    seeded.ctx.writer.run_sync(
        lambda conn: GrantStore(seeded.ctx.engine).insert_in(conn, grant)
    )
    return grant


def _middle_token(seeded: Seeded, key: SigningKey, grant: Grant) -> tuple[str, str]:
    """Sign a depth-2 token for a second orchestrator below the seeded one."""
    middle = seeded.spiffe(ORCHESTRATOR, "o-2")
    claims: dict[str, Any] = decode_unverified_claims(seeded.root_token())
    claims.update(
        client_id=middle,
        act={"sub": middle, "act": {"sub": seeded.orchestrator}},
        depth=2,
        grant={"id": grant.id, "receipt_hash": grant.receipt_hash},
        cnf={"jkt": key.thumbprint()},
    )
    return middle, seeded.sign(claims, "at+jwt")


def _spawn(
    seeded: Seeded, key: SigningKey, token: str, child_key: SigningKey
) -> httpx.Response:
    return httpx.post(
        f"{seeded.base_url}/v1/agents/spawn",
        json={"agent_class": WORKER, "public_jwk": child_key.public_jwk()},
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": seeded.proof(key, "/v1/agents/spawn", token=token),
        },
    )


def test_spawn_http_child_names_ancestors(seeded: Seeded) -> None:
    key = SigningKey.generate("ES256")
    middle, token = _middle_token(seeded, key, _grant(seeded, max_depth=3))
    child_key = SigningKey.generate("ES256")

    response = _spawn(seeded, key, token, child_key)

    assert response.status_code == 201, response.text
    claims = decode_unverified_claims(response.json()["svid"])
    assert claims["parent"] == middle
    assert claims["ancestors"] == [seeded.orchestrator, middle]


def test_revoked_root_kills_grandchild_svid(seeded: Seeded) -> None:
    key = SigningKey.generate("ES256")
    _middle, token = _middle_token(seeded, key, _grant(seeded, max_depth=3))
    child_key = SigningKey.generate("ES256")
    svid = _spawn(seeded, key, token, child_key).json()["svid"]
    # A sub-agent may not renew, so the server rejects that first.
    assert _renew(seeded, child_key, svid).json()["error"] == "unauthorized_client"

    revoked = _revoke(
        seeded, seeded.admin_session(), {"kind": "instance", "id": seeded.orchestrator}
    )
    response = _renew(seeded, child_key, svid)

    assert revoked.status_code == 200
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "The access token is invalid. The token has been revoked.",
    }


def test_spawn_http_rejects_depth_over_grant(seeded: Seeded) -> None:
    key = SigningKey.generate("ES256")
    _middle, token = _middle_token(seeded, key, seeded.grant)

    response = _spawn(seeded, key, token, SigningKey.generate("ES256"))

    assert response.status_code == 403
    assert response.json() == {
        "error": "access_denied",
        "error_description": "Access was denied. The delegation depth 3 exceeds "
        "the grant's maximum of 2.",
    }
    [event] = _events(seeded, "agent.spawn_refused")
    assert event.details["error"] == "access_denied"
    assert event.grant_id == seeded.grant.id


def _exchange_body(seeded: Seeded, svid: str, targets: str) -> str:
    form = httpx.QueryParams(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": seeded.root_token(),
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "actor_token": svid,
            "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "scope": "refunds",
        }
    )
    return f"{form}&{targets}"


def _post_exchange(seeded: Seeded, key: SigningKey, body: str) -> httpx.Response:
    return httpx.post(
        f"{seeded.base_url}/token",
        content=body,
        headers={**FORM, "DPoP": seeded.proof(key, "/token")},
    )


def test_exchange_http_accepts_repeated_targets(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    targets = f"audience={API}&audience={API}&resource={API}"

    response = _post_exchange(seeded, key, _exchange_body(seeded, svid, targets))

    assert response.status_code == 200, response.text
    claims = decode_unverified_claims(response.json()["access_token"])
    assert claims["aud"] == [API]


def test_exchange_http_checks_each_audience(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    targets = f"audience={API}&audience=https://evil.example/api"

    response = _post_exchange(seeded, key, _exchange_body(seeded, svid, targets))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert "https://evil.example/api" in response.json()["error_description"]


def test_exchange_http_rejects_empty_audience(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    targets = f"audience={API}&audience="

    response = _post_exchange(seeded, key, _exchange_body(seeded, svid, targets))

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. The parameter 'audience' "
        "has an empty value.",
    }


def test_exchange_http_rejects_resource_fragment(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = _post_exchange(
        seeded, key, _exchange_body(seeded, svid, f"resource={API}%23x")
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


def test_exchange_http_rejects_revoked_grant(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    subject = seeded.root_token()
    assert seeded.exchange(subject, key, svid, scope="refunds").status_code == 200

    revoked = _revoke(
        seeded, seeded.admin_session(), {"kind": "grant", "id": seeded.grant.id}
    )
    key, svid = seeded.worker()
    response = seeded.exchange(subject, key, svid, scope="refunds")

    assert revoked.status_code == 200
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
