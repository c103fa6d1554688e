"""Revocation over HTTP: /revoke, task close, and the feed with its ETag."""

from __future__ import annotations

import httpx
import pytest
from test_exchange_http import Seeded, seeded

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
