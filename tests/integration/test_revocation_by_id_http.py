"""Revocation by id, logout, SVID renewal and refusal events against ``agentiam serve``.

Uses the seeded world of ``test_exchange_http`` plus an administrator.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from test_exchange_http import ORCHESTRATOR, Seeded, seeded

from agentiam.audit.log import stored_event_from_row
from agentiam.audit.tables import audit_events
from agentiam.client import Agent
from agentiam.client.tokens import decode_unverified_claims
from agentiam.delegation.grants import GrantStore
from agentiam.jose import SigningKey

__all__ = ["seeded"]


def _revoke(seeded: Seeded, session: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{seeded.base_url}/v1/revocations",
        json=body,
        headers={"Authorization": f"Bearer {session}"},
    )


def _events(seeded: Seeded, event_type: str) -> list[Any]:
    query = select(audit_events).where(audit_events.c.type == event_type)
    with seeded.ctx.engine.connect() as conn:
        return [stored_event_from_row(row).event for row in conn.execute(query)]


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (
            {"kind": "lease", "id": "x"},
            "The request is invalid. The kind 'lease' is not one of grant, "
            "instance, session, task, token.",
        ),
        (
            {"kind": "grant", "id": "nope"},
            "The request is invalid. The id 'nope' is not a valid grant id.",
        ),
        (
            {"kind": "instance", "id": "spiffe://other.example/agent/a/b"},
            "The request is invalid. The id 'spiffe://other.example/agent/a/b' is "
            "not a valid instance id.",
        ),
        ({"kind": "token"}, "The request is invalid. The member 'id' is missing."),
    ],
    ids=["unknown-kind", "malformed-grant", "foreign-instance", "missing-id"],
)
def test_revocations_rejects_bad_target(
    seeded: Seeded, body: dict[str, Any], description: str
) -> None:
    response = _revoke(seeded, seeded.admin_session(), body)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": description,
    }


def test_revocations_needs_admin(seeded: Seeded) -> None:
    session = seeded.login("alice", "alice-pw")

    response = _revoke(seeded, session, {"kind": "token", "id": "a" * 22})

    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"


def test_revocations_grant_is_idempotent(seeded: Seeded) -> None:
    admin = seeded.admin_session()
    root = seeded.root_token()
    body = {"kind": "grant", "id": seeded.grant.id}

    first = _revoke(seeded, admin, body)
    second = _revoke(seeded, admin, body)

    assert first.status_code == 200, first.text
    assert first.json()["already_revoked"] is False
    assert second.json()["already_revoked"] is True
    now = seeded.ctx.clock()
    assert now + 3600 < first.json()["expires_at"] <= now + 3600 + 30 + 5
    stored = GrantStore(seeded.ctx.engine).get(seeded.grant.id)
    assert stored is not None and stored.revoked_at is not None
    assert seeded.introspect(root) == {"active": False}
    assert len(_events(seeded, "grant.revoked")) == 2


def test_revocations_unknown_task_not_found(seeded: Seeded) -> None:
    response = _revoke(
        seeded, seeded.admin_session(), {"kind": "task", "id": "tsk_" + "0" * 32}
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_revocations_instance_kills_children(seeded: Seeded) -> None:
    root = seeded.root_token()
    key, svid = seeded.worker()
    child = seeded.exchange(root, key, svid, scope="refunds").json()["access_token"]

    response = _revoke(
        seeded, seeded.admin_session(), {"kind": "instance", "id": seeded.orchestrator}
    )

    assert response.status_code == 200
    assert seeded.introspect(child) == {"active": False}
    # The worker's SVID names the orchestrator as parent, so it is dead too.
    refused = seeded.exchange(child, key, svid)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_human_revokes_own_grant(seeded: Seeded) -> None:
    session = seeded.login("alice", "alice-pw")
    headers = {"Authorization": f"Bearer {session}"}

    listed = httpx.get(f"{seeded.base_url}/v1/grants", headers=headers)
    response = httpx.post(
        f"{seeded.base_url}/v1/grants/{seeded.grant.id}/revoke", headers=headers
    )

    assert [grant["id"] for grant in listed.json()["grants"]] == [seeded.grant.id]
    assert response.status_code == 200
    assert response.json()["kind"] == "grant"
    assert seeded.introspect(seeded.root_token()) == {"active": False}


def test_human_cannot_revoke_other_grant(seeded: Seeded) -> None:
    session = seeded.admin_session()

    response = httpx.post(
        f"{seeded.base_url}/v1/grants/{seeded.grant.id}/revoke",
        headers={"Authorization": f"Bearer {session}"},
    )

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": f"Grant '{seeded.grant.id}' was not found.",
    }


def test_human_revoke_unknown_grant(seeded: Seeded) -> None:
    session = seeded.login("alice", "alice-pw")

    response = httpx.post(
        f"{seeded.base_url}/v1/grants/grt_missing/revoke",
        headers={"Authorization": f"Bearer {session}"},
    )

    # The same response as for another human's grant, so ids cannot be probed.
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": "Grant 'grt_missing' was not found.",
    }


def test_logout_revokes_session(seeded: Seeded) -> None:
    session = seeded.login("alice", "alice-pw")
    headers = {"Authorization": f"Bearer {session}"}

    response = httpx.delete(f"{seeded.base_url}/v1/sessions/current", headers=headers)
    after = httpx.get(f"{seeded.base_url}/v1/grants", headers=headers)

    assert response.status_code == 204
    assert after.status_code == 401
    assert after.json()["error"] == "invalid_token"
    assert len(_events(seeded, "session.revoked")) == 1


def test_failed_login_is_audited(seeded: Seeded) -> None:
    response = httpx.post(
        f"{seeded.base_url}/v1/sessions",
        json={"login": "alice", "password": "wrong-password"},
    )

    assert response.status_code == 400
    [event] = _events(seeded, "session.refused")
    assert event.reason == "unknown or wrong credentials"
    assert "wrong-password" not in str(event.to_dict())


def test_introspection_is_audited(seeded: Seeded) -> None:
    root = seeded.root_token()

    seeded.introspect(root)
    seeded.introspect("not-a-token")

    events = _events(seeded, "token.introspected")
    assert [event.details["active"] for event in events] == [True, False]
    assert events[0].details["client_id"] == seeded.client_id
    assert events[0].details["jti"] is not None
    assert events[1].details["jti"] is None


def _svid(seeded: Seeded, key: SigningKey, *, exp_in: int, **extra: Any) -> str:
    now = int(seeded.ctx.clock())
    claims = {
        "ver": 1,
        "iss": seeded.base_url,
        "aud": [seeded.base_url],
        "sub": seeded.orchestrator,
        "iat": now - 10,
        "exp": now + exp_in,
        "jti": secrets.token_urlsafe(12),
        "cnf": {"jkt": key.thumbprint()},
        **extra,
    }
    return seeded.sign(claims, "JWT")


def _renew(seeded: Seeded, key: SigningKey, svid: str) -> httpx.Response:
    proof = seeded.proof(key, "/v1/agents/renew", token=svid)
    return httpx.post(
        f"{seeded.base_url}/v1/agents/renew",
        json={},
        headers={"Authorization": f"DPoP {svid}", "DPoP": proof},
    )


def test_renew_keeps_spiffe_id_and_key(seeded: Seeded) -> None:
    key = seeded.orchestrator_key

    response = _renew(seeded, key, _svid(seeded, key, exp_in=20))

    assert response.status_code == 200
    body = response.json()
    assert body["spiffe_id"] == seeded.orchestrator
    assert body["expires_in"] == 300
    again = _renew(seeded, key, body["svid"])
    assert again.status_code == 200
    assert len(_events(seeded, "agent.renewed")) == 2


def test_renew_rejects_expired_svid(seeded: Seeded) -> None:
    key = seeded.orchestrator_key

    response = _renew(seeded, key, _svid(seeded, key, exp_in=-60))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert len(_events(seeded, "agent.renew_refused")) == 1


def test_renew_rejects_revoked_instance(seeded: Seeded) -> None:
    key = seeded.orchestrator_key
    _revoke(
        seeded, seeded.admin_session(), {"kind": "instance", "id": seeded.orchestrator}
    )

    response = _renew(seeded, key, _svid(seeded, key, exp_in=100))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_renew_rejects_sub_agent(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = _renew(seeded, key, svid)

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_renew_rejects_other_key(seeded: Seeded) -> None:
    svid = _svid(seeded, seeded.orchestrator_key, exp_in=100)

    response = _renew(seeded, SigningKey.generate("ES256"), svid)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"


def _spawn(seeded: Seeded, token: str, agent_class: str) -> httpx.Response:
    proof = seeded.proof(seeded.orchestrator_key, "/v1/agents/spawn", token=token)
    return httpx.post(
        f"{seeded.base_url}/v1/agents/spawn",
        json={
            "agent_class": agent_class,
            "public_jwk": SigningKey.generate("ES256").public_jwk(),
        },
        headers={"Authorization": f"DPoP {token}", "DPoP": proof},
    )


def test_spawn_caps_child_svid_at_parent_token(seeded: Seeded) -> None:
    token = seeded.root_token()
    short = seeded.root_token()
    claims = decode_unverified_claims(short)
    claims["exp"] = int(seeded.ctx.clock()) + 40
    short = seeded.sign(claims, "at+jwt")

    response = _spawn(seeded, short, "refund-worker")

    assert response.status_code == 201
    assert response.json()["expires_in"] <= 40
    child = decode_unverified_claims(response.json()["svid"])
    assert child["exp"] == claims["exp"]
    # The full-length token leaves svid_ttl in force, give or take a clock tick.
    assert 290 <= _spawn(seeded, token, "refund-worker").json()["expires_in"] <= 300


def test_spawn_refusal_is_audited(seeded: Seeded) -> None:
    response = _spawn(seeded, seeded.root_token(), ORCHESTRATOR)

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    [event] = _events(seeded, "agent.spawn_refused")
    assert event.details["agent_class"] == ORCHESTRATOR
    assert event.grant_id == seeded.grant.id


def test_attest_refusal_is_audited(seeded: Seeded) -> None:
    key = SigningKey.generate("ES256")
    proof = seeded.proof(key, "/v1/agents/attest")

    response = httpx.post(
        f"{seeded.base_url}/v1/agents/attest",
        json={"agent_class": ORCHESTRATOR, "join_token": "not-a-join-token"},
        headers={"DPoP": proof},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    [event] = _events(seeded, "agent.attest_refused")
    assert event.details["method"] == "join_token"
    assert event.details["jkt"] == key.thumbprint()
    assert "not-a-join-token" not in str(event.to_dict())


def test_exchange_without_actor_rejected(seeded: Seeded) -> None:
    response = httpx.post(
        f"{seeded.base_url}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": seeded.root_token(),
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        },
        headers={"DPoP": seeded.proof(seeded.orchestrator_key, "/token")},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_sdk_join_token_agent_renews(seeded: Seeded) -> None:
    admin = seeded.admin_session()
    issued = httpx.post(
        f"{seeded.base_url}/v1/join-tokens",
        json={"agent_class": ORCHESTRATOR},
        headers={"Authorization": f"Bearer {admin}"},
    ).json()

    async def run() -> tuple[str, str, str]:
        async with httpx.AsyncClient() as http:
            agent = await Agent.attest(
                seeded.base_url,
                ORCHESTRATOR,
                http=http,
                join_token=issued["join_token"],
            )
            first = await agent.current_svid()
            # Put the SVID inside its renewal window without waiting for it.
            agent.svid_expires_at = seeded.ctx.clock() + 5
            renewed = await agent.current_svid()
            return first, renewed, agent.spiffe_id

    first, renewed, spiffe_id = asyncio.run(run())

    assert renewed != first
    assert spiffe_id.startswith(f"spiffe://{seeded.trust_domain}/agent/{ORCHESTRATOR}/")
    [event] = _events(seeded, "agent.renewed")
    assert event.actors == (spiffe_id,)
