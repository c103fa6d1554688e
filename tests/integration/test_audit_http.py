"""The /v1/audit/ routes on the real app: auth, decisions, queries, proofs, heads."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from agentiam.api.app import create_app
from agentiam.audit.chain import hash_from_b64url
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import verify_consistency, verify_inclusion
from agentiam.audit.routes import MAX_DECISION_ID_LENGTH
from agentiam.audit.tables import audit_decision_ids
from agentiam.audit.tree_head import verify_tree_head
from agentiam.identity.clients import ClientStore
from agentiam.identity.issuance import issue_session
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore

AUDIENCE = "https://support.example/api"
AGENT = "spiffe://agentiam.local/agent/refund-worker/i-2"


@pytest.fixture
def world(ctx, asgi_client) -> dict[str, Any]:
    now = ctx.clock()

    def setup(conn):
        admin = UserStore(ctx.engine).add_in(
            conn, login="root", password_hash=hash_password("correct horse"),
            now=now, admin=True,
        )  # fmt: skip
        human = UserStore(ctx.engine).add_in(
            conn, login="alice", password_hash=hash_password("battery staple"),
            now=now,
        )  # fmt: skip
        client = ClientStore(ctx.engine).add_in(
            conn, "support-api", [AUDIENCE], now=now
        )
        return admin, human, client

    admin, human, client = ctx.writer.run_sync(setup)
    admin_session = issue_session(ctx, user_id=admin.id, admin=True, now=now)
    human_session = issue_session(ctx, user_id=human.id, admin=False, now=now)
    basic = base64.b64encode(f"support-api:{client.client_secret}".encode()).decode()
    if ctx.audit.keyring is None:
        ctx.audit.keyring = ctx.keyring
    return {
        "client": asgi_client(create_app(ctx)),
        "admin": {"Authorization": f"Bearer {admin_session.token}"},
        "human": {"Authorization": f"Bearer {human_session.token}"},
        "basic": {"Authorization": f"Basic {basic}"},
        "ctx": ctx,
    }


def _decision(number: int, **changes: Any) -> dict[str, Any]:
    record = {
        "ver": 1,
        "id": f"d-{number}",
        "time": 1_750_000_000.5,
        "audience": AUDIENCE,
        "decision": "allow" if number % 2 else "deny",
        "reason": None if number % 2 else "missing scope refunds",
        "method": "POST",
        "path": "/refunds",
        "status": 200 if number % 2 else 403,
        "human": "alice",
        "actors": [AGENT],
        "task_path": ["t-root", "t-refund"],
        "grant_id": "g-1",
        "receipt_hash": "x" * 43,
        "jti": f"jti-{number}",
    }
    record.update(changes)
    return record


def _post_decisions(world, decisions, headers=None):
    return world["client"].post(
        "/v1/audit/decisions",
        json={"ver": 1, "decisions": decisions},
        headers=headers or world["basic"],
    )


def test_decisions_are_committed_before_response(world) -> None:
    response = _post_decisions(world, [_decision(1), _decision(2)])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0}

    stored = world["ctx"].audit.stored_size()
    assert stored >= 2
    last = world["ctx"].audit.get(stored - 1)
    assert last.event.type == "decision"
    assert last.event.details["client_id"] == "support-api"
    assert last.event.request["path"] == "/refunds"


def test_decisions_record_outcome(world) -> None:
    failed = _decision(1, status=500, reason="application raised RuntimeError")
    failed["outcome"] = "error"
    response = _post_decisions(world, [_decision(2), failed, _decision(3)])
    assert response.json() == {"accepted": 3, "duplicates": 0}

    audit = world["ctx"].audit
    stored = [audit.get(audit.stored_size() - n).event for n in (3, 2, 1)]
    assert [(e.decision, e.outcome) for e in stored] == [
        ("deny", "refused"),
        ("allow", "error"),
        ("allow", "granted"),
    ]
    assert stored[1].reason == "application raised RuntimeError"
    assert stored[1].request["status"] == 500


def test_decisions_deduplicate_retried_ids(world) -> None:
    assert _post_decisions(world, [_decision(1)]).json()["accepted"] == 1
    again = _post_decisions(world, [_decision(1), _decision(3)])
    assert again.json() == {"accepted": 1, "duplicates": 1}


def test_decisions_require_client(world) -> None:
    response = _post_decisions(world, [_decision(1)], headers=world["admin"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("record", "hint"),
    [
        pytest.param(_decision(1, extra=1), "unknown member 'extra'", id="extra"),
        pytest.param(_decision(1, decision="maybe"), "'allow' or 'deny'", id="value"),
        pytest.param(
            _decision(1, decision="error"), "'allow' or 'deny'", id="error-decision"
        ),
        pytest.param(
            _decision(2, outcome="error"),
            "'decisions[1].outcome' must be 'refused' when the decision is 'deny'.",
            id="deny-error",
        ),
        pytest.param(
            _decision(1, outcome="maybe"),
            "'decisions[1].outcome' must be 'granted' or 'error' when the decision "
            "is 'allow'.",
            id="outcome",
        ),
        pytest.param(_decision(1, status=99), "HTTP status code", id="status"),
        pytest.param(_decision(1, path="refunds"), "start with '/'", id="path"),
        pytest.param(
            _decision(1, audience="https://other.example"),
            "not an audience of this client",
            id="audience",
        ),
        pytest.param(
            _decision(1, reason="eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
            "shaped like a token",
            id="token-in-reason",
        ),
        pytest.param(
            {k: v for k, v in _decision(1).items() if k != "id"},
            "missing member 'id'",
            id="missing-id",
        ),
    ],
)
def test_decisions_rejects_invalid(world, record, hint: str) -> None:
    before = world["ctx"].audit.stored_size()
    response = _post_decisions(world, [_decision(5), record])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert hint in response.json()["error_description"]
    assert world["ctx"].audit.stored_size() == before


def test_decisions_rejects_duplicate_members(world) -> None:
    response = world["client"].post(
        "/v1/audit/decisions",
        content=b'{"ver": 1, "ver": 1, "decisions": []}',
        headers={**world["basic"], "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON member 'ver' is duplicated." in response.json()["error_description"]


def test_events_query_requires_admin(world) -> None:
    assert world["client"].get("/v1/audit/events").status_code == 401
    response = world["client"].get("/v1/audit/events", headers=world["human"])
    assert response.status_code == 403


def test_events_query_filters(world) -> None:
    _post_decisions(world, [_decision(i) for i in range(1, 5)])
    response = world["client"].get(
        "/v1/audit/events",
        params={"task": "t-root", "decision": "deny"},
        headers=world["admin"],
    )
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert [item["event"]["details"]["decision_id"] for item in events] == [
        "d-2",
        "d-4",
    ]


def test_events_query_rejects_unknown_parameter(world) -> None:
    response = world["client"].get(
        "/v1/audit/events", params={"color": "red"}, headers=world["admin"]
    )
    assert response.status_code == 400
    assert "Parameter 'color' is not supported." in response.json()["error_description"]


def test_trail_returns_task_tree(world) -> None:
    ctx = world["ctx"]
    approval = AuditEvent(
        "grant.approved", "allow", "approved", human="alice", grant_id="g-1",
        receipt_hash="x" * 43, actors=[AGENT],
    )  # fmt: skip
    asyncio.run(ctx.audit.record(approval))
    _post_decisions(world, [_decision(1)])

    response = world["client"].get("/v1/audit/trail/t-root", headers=world["admin"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["event"]["type"] for item in body["approvals"]] == ["grant.approved"]
    assert body["tasks"]["task_id"] == "t-root"
    assert body["tasks"]["children"][0]["task_id"] == "t-refund"


def test_trail_unknown_task_is_not_found(world) -> None:
    response = world["client"].get("/v1/audit/trail/nope", headers=world["admin"])
    assert response.status_code == 404


def test_proofs_and_tree_head_verify(world) -> None:
    ctx = world["ctx"]
    _post_decisions(world, [_decision(i) for i in range(1, 8)])
    signed = world["client"].post("/v1/audit/tree-heads", headers=world["admin"])
    assert signed.status_code == 201, signed.text

    latest = world["client"].get("/v1/audit/tree-heads/latest", headers=world["basic"])
    assert latest.status_code == 200
    head = verify_tree_head(
        latest.json()["signature"], ctx.keyring.lookup, issuer=ctx.settings.issuer
    )
    size = head.size

    inclusion = (
        world["client"]
        .get(
            "/v1/audit/proofs/inclusion",
            params={"seq": 2, "tree_size": size},
            headers=world["basic"],
        )
        .json()
    )
    assert verify_inclusion(
        2,
        size,
        hash_from_b64url(inclusion["leaf_hash"]),
        [hash_from_b64url(value) for value in inclusion["audit_path"]],
        head.root,
    )

    consistency = (
        world["client"]
        .get(
            "/v1/audit/proofs/consistency",
            params={"first": 3, "second": size},
            headers=world["admin"],
        )
        .json()
    )
    assert verify_consistency(
        3,
        size,
        ctx.audit.root(3),
        head.root,
        [hash_from_b64url(value) for value in consistency["consistency_path"]],
    )


@pytest.mark.parametrize(
    ("path", "params", "hint"),
    [
        pytest.param(
            "/v1/audit/proofs/consistency", {"first": 0, "second": 1},
            "from tree size 0 is not defined", id="consistency-zero",
        ),
        pytest.param(
            "/v1/audit/proofs/inclusion", {"seq": 0, "tree_size": 10**6},
            "larger than the log", id="size-beyond-log",
        ),
        pytest.param(
            "/v1/audit/proofs/inclusion", {"seq": "-1", "tree_size": 1},
            "expected a non-negative integer", id="negative-seq",
        ),
        pytest.param(
            "/v1/audit/proofs/inclusion", {"tree_size": 1},
            "Parameter 'seq' is missing.", id="missing-seq",
        ),
    ],
)  # fmt: skip
def test_proofs_reject_bad_parameters(world, path, params, hint) -> None:
    _post_decisions(world, [_decision(1)])
    response = world["client"].get(path, params=params, headers=world["admin"])
    assert response.status_code == 400
    assert hint in response.json()["error_description"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_world(request, asgi_client) -> dict[str, Any]:
    """The ``world`` of this module on SQLite or on PostgreSQL."""
    context = request.getfixturevalue("ctx" if request.param == "sqlite" else "pg_ctx")
    return world.__wrapped__(context, asgi_client)


def test_decision_id_limit_is_the_column_length() -> None:
    assert audit_decision_ids.c.decision_id.type.length == MAX_DECISION_ID_LENGTH
    assert MAX_DECISION_ID_LENGTH == 256


def test_decisions_accept_id_of_column_length(any_world) -> None:
    record = _decision(1, id="i" * MAX_DECISION_ID_LENGTH)

    response = _post_decisions(any_world, [record])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}

    retried = _post_decisions(any_world, [record])
    assert retried.json() == {"accepted": 0, "duplicates": 1}


def test_decisions_reject_id_longer_than_column(any_world) -> None:
    before = any_world["ctx"].audit.stored_size()
    too_long = _decision(3, id="i" * (MAX_DECISION_ID_LENGTH + 1))

    response = _post_decisions(any_world, [_decision(1), too_long])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"] == (
        "The request is invalid. 'decisions[1].id' has 257 characters; "
        "the maximum is 256."
    )
    assert any_world["ctx"].audit.stored_size() == before
