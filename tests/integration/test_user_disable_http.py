"""Disabling a human over HTTP ends their delegations: grants, exchange and feed.

Uses the seeded world of ``test_exchange_http`` plus an administrator.
"""

from __future__ import annotations

import httpx
from sqlalchemy import select
from test_exchange_http import Seeded, seeded

from agentiam.audit.log import stored_event_from_row
from agentiam.audit.tables import audit_events
from agentiam.delegation.grants import GrantStore

__all__ = ["seeded"]


def test_disable_user_revokes_grants(seeded: Seeded) -> None:
    root = seeded.root_token()
    key, svid = seeded.worker()
    before = seeded.exchange(root, key, svid, scope="refunds")
    assert before.status_code == 200, before.text
    child = before.json()["access_token"]
    admin = seeded.admin_session()

    response = httpx.post(
        f"{seeded.base_url}/v1/users/{seeded.user_id}/disable",
        headers={"Authorization": f"Bearer {admin}"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["disabled"] is True
    refused = seeded.exchange(root, key, svid, scope="refunds")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert seeded.introspect(child) == {"active": False}

    feed = httpx.get(
        f"{seeded.base_url}/v1/revocations",
        params={"since": "0"},
        auth=(seeded.client_id, seeded.client_secret),
    )
    assert feed.status_code == 200
    assert {"kind": "grant", "id": seeded.grant.id} in [
        {"kind": entry["kind"], "id": entry["id"]} for entry in feed.json()["entries"]
    ]
    stored = GrantStore(seeded.ctx.engine).get(seeded.grant.id)
    assert stored is not None and stored.revoked_at is not None

    query = select(audit_events).where(audit_events.c.type == "grant.revoked")
    with seeded.ctx.engine.connect() as conn:
        [event] = [stored_event_from_row(row).event for row in conn.execute(query)]
    assert event.grant_id == seeded.grant.id
    assert event.human == seeded.user_id
    assert event.reason == "user disabled"
    assert event.details["revoked_by"].startswith("user:usr_")


def test_disable_user_twice_revokes_once(seeded: Seeded) -> None:
    admin = seeded.admin_session()
    url = f"{seeded.base_url}/v1/users/{seeded.user_id}/disable"
    headers = {"Authorization": f"Bearer {admin}"}

    assert httpx.post(url, headers=headers).status_code == 200
    assert httpx.post(url, headers=headers).status_code == 200

    query = select(audit_events).where(audit_events.c.type == "grant.revoked")
    with seeded.ctx.engine.connect() as conn:
        assert len(conn.execute(query).all()) == 1
