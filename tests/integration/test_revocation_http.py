"""Revocation over HTTP: /revoke, task close, and the feed with its ETag."""

from __future__ import annotations

import json

import httpx
import pytest
from test_exchange_http import Seeded, seeded

from agentiam.jose import SigningKey
from agentiam.jose._base64url import b64url_decode

__all__ = ["seeded"]


def _worker_token(seeded: Seeded, root: str) -> str:
    key, svid = seeded.worker()
    response = seeded.exchange(root, key, svid, scope="refunds")
    assert response.status_code == 200
    return str(response.json()["access_token"])


def _feed(seeded: Seeded, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{seeded.base_url}/v1/revocations",
        params={"since": "0"},
        headers=headers,
        auth=(seeded.client_id, seeded.client_secret),
    )


def test_revoke_http_kills_derived_tokens(seeded: Seeded) -> None:
    root = seeded.root_token()
    child = _worker_token(seeded, root)

    response = httpx.post(
        f"{seeded.base_url}/revoke",
        data={"token": root, "token_type_hint": "access_token"},
        auth=(seeded.client_id, seeded.client_secret),
    )

    assert response.status_code == 200
    assert seeded.introspect(root) == {"active": False}
    assert seeded.introspect(child) == {"active": False}


def test_revoke_http_by_holder_proof(seeded: Seeded) -> None:
    root = seeded.root_token()
    proof = seeded.proof(seeded.orchestrator_key, "/revoke", token=root)

    response = httpx.post(
        f"{seeded.base_url}/revoke", data={"token": root}, headers={"DPoP": proof}
    )

    assert response.status_code == 200
    assert seeded.introspect(root) == {"active": False}


def test_revoke_http_invalid_token_is_ok(seeded: Seeded) -> None:
    response = httpx.post(
        f"{seeded.base_url}/revoke",
        data={"token": "not-a-token", "token_type_hint": "unknown_hint"},
        auth=(seeded.client_id, seeded.client_secret),
    )

    assert response.status_code == 200


def test_revoke_http_requires_authentication(seeded: Seeded) -> None:
    response = httpx.post(f"{seeded.base_url}/revoke", data={"token": "x"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_task_close_http_kills_subtree(seeded: Seeded) -> None:
    root = seeded.root_token()
    child = _worker_token(seeded, root)
    task_id = seeded.root_task.id
    path = f"/v1/tasks/{task_id}/close"

    response = httpx.post(
        f"{seeded.base_url}{path}",
        json={},
        headers={
            "Authorization": f"DPoP {root}",
            "DPoP": seeded.proof(seeded.orchestrator_key, path, token=root),
        },
    )

    assert response.status_code == 200
    assert task_id in response.json()["closed"]
    assert seeded.introspect(child) == {"active": False}
    assert seeded.introspect(root) == {"active": False}


def test_task_open_http_under_token_task(seeded: Seeded) -> None:
    root = seeded.root_token()

    response = httpx.post(
        f"{seeded.base_url}/v1/tasks",
        json={"purpose": "Refund T-1", "scope": "refunds"},
        headers={
            "Authorization": f"DPoP {root}",
            "DPoP": seeded.proof(seeded.orchestrator_key, "/v1/tasks", token=root),
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["parent_id"] == seeded.root_task.id
    assert body["path"] == [seeded.root_task.id, body["id"]]
    assert body["scope"] == "refunds"
    assert body["status"] == "open"


def test_feed_http_lists_entries_with_etag(seeded: Seeded) -> None:
    root = seeded.root_token()
    httpx.post(
        f"{seeded.base_url}/revoke",
        data={"token": root},
        auth=(seeded.client_id, seeded.client_secret),
    )

    response = _feed(seeded)

    assert response.status_code == 200
    body = response.json()
    assert body["seq"] >= 1
    assert response.headers["etag"] == f'"{body["seq"]}"'
    assert [entry["kind"] for entry in body["entries"]] == ["token"]
    assert set(body["entries"][0]) == {"seq", "kind", "id", "expires_at"}


def test_feed_http_not_modified(seeded: Seeded) -> None:
    etag = _feed(seeded).headers["etag"]

    response = _feed(seeded, **{"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize(
    "header", ["W/{etag}", '"x", {etag}', "*"], ids=["weak", "list", "any"]
)
def test_feed_http_not_modified_forms(seeded: Seeded, header: str) -> None:
    etag = _feed(seeded).headers["etag"]

    response = _feed(seeded, **{"If-None-Match": header.format(etag=etag)})

    assert response.status_code == 304


def test_feed_http_other_tag_modified(seeded: Seeded) -> None:
    response = _feed(seeded, **{"If-None-Match": '"999999", W/"999998"'})

    assert response.status_code == 200


def test_feed_http_requires_client_or_admin(seeded: Seeded) -> None:
    response = httpx.get(f"{seeded.base_url}/v1/revocations")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_feed_http_rejects_bad_since(seeded: Seeded) -> None:
    response = httpx.get(
        f"{seeded.base_url}/v1/revocations",
        params={"since": "-1"},
        auth=(seeded.client_id, seeded.client_secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def _claims_of_svid(svid: str) -> dict:
    return dict(json.loads(b64url_decode(svid.split(".")[1]) or b""))


def test_introspect_http_returns_chain(seeded: Seeded) -> None:
    root = seeded.root_token()
    key, svid = seeded.worker()
    worker = _claims_of_svid(svid)["sub"]
    issued = seeded.exchange(root, key, svid, scope="refunds").json()
    token = issued["access_token"]

    result = seeded.introspect(token)

    assert result["active"] is True
    assert result["sub"] == seeded.user_id
    assert result["client_id"] == worker
    assert result["scope"] == "refunds"
    assert result["act"] == {"sub": worker, "act": {"sub": seeded.orchestrator}}
    assert result["grant"] == {
        "id": seeded.grant.id,
        "receipt_hash": seeded.grant.receipt_hash,
    }
    assert result["task"]["path"][0] == seeded.root_task.id
    assert result["task"]["path"][-1] == result["task"]["id"]
    assert len(result["task"]["path"]) == 2
    assert result["exp"] - result["iat"] == issued["expires_in"]
    assert result["token_type"] == "DPoP"


def test_revoke_http_kills_grandchild(seeded: Seeded) -> None:
    # root -> child (the worker's) -> grandchild (the worker's re-exchange).
    root = seeded.root_token()
    key, svid = seeded.worker()
    child = seeded.exchange(root, key, svid, scope="refunds").json()["access_token"]
    grandchild_response = seeded.exchange(child, key, svid, scope="refunds")
    assert grandchild_response.status_code == 200
    grandchild = grandchild_response.json()["access_token"]

    response = httpx.post(
        f"{seeded.base_url}/revoke",
        data={"token": child},
        auth=(seeded.client_id, seeded.client_secret),
    )

    assert response.status_code == 200
    assert seeded.introspect(child) == {"active": False}
    assert seeded.introspect(grandchild) == {"active": False}
    assert seeded.introspect(root)["active"] is True


def test_revoke_http_root_kills_whole_derivation(seeded: Seeded) -> None:
    root = seeded.root_token()
    key, svid = seeded.worker()
    child = seeded.exchange(root, key, svid, scope="refunds").json()["access_token"]
    grandchild = seeded.exchange(child, key, svid).json()["access_token"]

    response = httpx.post(
        f"{seeded.base_url}/revoke",
        data={"token": root},
        auth=(seeded.client_id, seeded.client_secret),
    )

    assert response.status_code == 200
    assert seeded.introspect(grandchild) == {"active": False}
    assert seeded.introspect(child) == {"active": False}


def test_revoke_http_by_other_holder_refused(seeded: Seeded) -> None:
    root = seeded.root_token()
    intruder = SigningKey.generate("ES256")
    proof = seeded.proof(intruder, "/revoke", token=root)

    response = httpx.post(
        f"{seeded.base_url}/revoke", data={"token": root}, headers={"DPoP": proof}
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed. The DPoP proof key "
        "does not match the token.",
    }
    assert seeded.introspect(root)["active"] is True
