"""Approve and deny bodies over HTTP against ``agentiam serve``.

The routes take no parameters: an empty body or ``{}`` is accepted, and anything
else is rejected with 400 before the request is decided.
"""

from __future__ import annotations

import httpx
import pytest
from test_ciba_http import (
    attest,
    bc_authorize,
    pending_ids,
    poll,
    seeded,
    server_ctx,
    session,
)

__all__ = ["seeded", "server_ctx"]

JSON = "application/json"
BAD_BODIES = [
    (b"{", JSON),
    (b"[]", JSON),
    (b"null", JSON),
    (b'"approve"', JSON),
    (b'{"x": NaN}', JSON),
    (b'{"a": 1, "a": 2}', JSON),
    (b'{"evil": true}', JSON),
    (b"[" * 10_000 + b"]" * 10_000, JSON),
    (b'{"\xff": 1}', JSON),
    (b"\xff", JSON),
    (b"{}", "text/plain"),
    (b"{}", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("verb", ["approve", "deny"])
def test_decision_rejects_bad_body(live_server: str, seeded: None, verb: str) -> None:
    key, svid = attest(live_server)
    auth_req_id = bc_authorize(live_server, key, svid).json()["auth_req_id"]
    [approval_id] = pending_ids(live_server)
    url = f"{live_server}/v1/approvals/{approval_id}/{verb}"
    headers = session(live_server)

    for body, content_type in BAD_BODIES:
        response = httpx.post(
            url, content=body, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 400, (body[:20], response.text)
        assert response.json()["error"] == "invalid_request", body[:20]

    assert pending_ids(live_server) == [approval_id]
    still = poll(live_server, key, auth_req_id)
    assert still.status_code == 400
    assert still.json()["error"] == "authorization_pending"


def test_decision_accepts_empty_object(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)
    bc_authorize(live_server, key, svid)
    [approval_id] = pending_ids(live_server)

    response = httpx.post(
        f"{live_server}/v1/approvals/{approval_id}/approve",
        json={},
        headers=session(live_server),
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"


def test_decision_accepts_empty_body(live_server: str, seeded: None) -> None:
    key, svid = attest(live_server)
    auth_req_id = bc_authorize(live_server, key, svid).json()["auth_req_id"]
    [approval_id] = pending_ids(live_server)

    response = httpx.post(
        f"{live_server}/v1/approvals/{approval_id}/deny",
        content=b"",
        headers={**session(live_server), "Content-Type": "text/plain"},
    )

    assert response.status_code == 200, response.text
    assert poll(live_server, key, auth_req_id).json()["error"] == "access_denied"
