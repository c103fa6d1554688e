"""The OCSF mapping of every audit event type."""

from __future__ import annotations

import json

import pytest

from agentiam import __version__
from agentiam.audit.chain import b64url
from agentiam.audit.events import KNOWN_TYPES, AuditEvent
from agentiam.audit.log import StoredEvent
from agentiam.audit.queries import event_to_json
from agentiam.audit.siem.ocsf import EVENT_CLASSES, OCSF_VERSION, to_ocsf

HUMAN = "alice"
WORKER = "spiffe://agentiam.local/agent/refund-worker/i-2"
ORCHESTRATOR = "spiffe://agentiam.local/agent/orchestrator/i-1"

# (event type, decision) -> (class_uid, activity_id, status_id)
CASES = [
    ("session.created", "allow", 3002, 1, 1),
    ("session.refused", "deny", 3002, 1, 2),
    ("agent.attested", "allow", 3002, 1, 1),
    ("agent.spawned", "allow", 3002, 1, 1),
    ("agent.attest_refused", "deny", 3002, 1, 2),
    ("agent.renewed", "allow", 3002, 1, 1),
    ("agent.renew_refused", "deny", 3002, 1, 2),
    ("agent.spawn_refused", "deny", 3002, 1, 2),
    ("session.revoked", "none", 3002, 2, 1),
    ("grant.approved", "allow", 3003, 1, 1),
    ("approval.denied", "deny", 3003, 1, 2),
    ("token.issued", "allow", 3003, 1, 1),
    ("token.exchanged", "allow", 3003, 1, 1),
    ("token.exchange_refused", "deny", 3003, 1, 2),
    ("approval.requested", "none", 3003, 99, 1),
    ("grant.revoked", "none", 3003, 99, 1),
    ("instance.revoked", "none", 3003, 99, 1),
    ("task.opened", "allow", 3003, 99, 1),
    ("task.closed", "none", 3003, 99, 1),
    ("token.introspected", "none", 3003, 99, 1),
    ("token.revoked", "none", 3003, 99, 1),
    ("key.rotated", "none", 0, 99, 1),
    ("decision", "allow", 6003, 1, 1),
    ("decision", "deny", 6003, 1, 2),
    ("billing.charged", "none", 0, 99, 1),
]
CATEGORIES = {0: 0, 3002: 3, 3003: 3, 6003: 6}


def _stored(event: AuditEvent, seq: int = 7) -> StoredEvent:
    return StoredEvent(
        seq=seq,
        leaf_hash=bytes(range(32)),
        chain_hash=bytes(32),
        canonical=event.canonical(),
        event=event,
    )


def _event(event_type: str, decision: str, **fields: object) -> AuditEvent:
    request = {"method": "POST", "path": "/refunds", "status": 201}
    defaults: dict[str, object] = {
        "outcome": "refused" if decision == "deny" else "done",
        "human": HUMAN,
        "grant_id": "g-1",
        "actors": [WORKER, ORCHESTRATOR],
        "task_path": ["t-root", "t-refund"],
        "request": request if event_type == "decision" else {},
        "trace_id": "trace-1",
    }
    defaults.update(fields)
    return AuditEvent(event_type, decision, time=1_750_000_000.25, **defaults)  # type: ignore[arg-type]


def test_cases_cover_known_types() -> None:
    assert {case[0] for case in CASES} >= KNOWN_TYPES
    assert set(EVENT_CLASSES) | {"decision", "key.rotated"} == KNOWN_TYPES


@pytest.mark.parametrize(
    ("event_type", "decision", "class_uid", "activity_id", "status_id"),
    CASES,
    ids=[f"{case[0]}-{case[1]}" for case in CASES],
)
def test_ocsf_class_activity_status(
    event_type: str, decision: str, class_uid: int, activity_id: int, status_id: int
) -> None:
    record = to_ocsf(_stored(_event(event_type, decision)))

    assert record["class_uid"] == class_uid
    assert record["category_uid"] == CATEGORIES[class_uid]
    assert record["activity_id"] == activity_id
    assert record["type_uid"] == class_uid * 100 + activity_id
    assert record["status_id"] == status_id
    assert record["status"] == ("Success" if status_id == 1 else "Failure")
    assert record["severity_id"] == (1 if status_id == 1 else 3)


def test_ocsf_common_fields() -> None:
    event = _event("token.exchanged", "allow", details={"scope": "refund:create read"})
    stored = _stored(event, seq=42)

    record = to_ocsf(stored)

    assert record["time"] == 1_750_000_000_250
    assert record["metadata"] == {
        "version": OCSF_VERSION,
        "product": {
            "name": "agentiam",
            "vendor_name": "agentiam",
            "version": __version__,
        },
        "uid": b64url(bytes(range(32))),
        "sequence": 42,
        "log_name": "audit",
        "correlation_uid": "trace-1",
    }
    assert record["actor"]["user"]["uid"] == HUMAN
    assert record["actor"]["app_uid"] == WORKER
    assert record["actor"]["authorizations"] == [
        {"decision": "allow", "policy": {"uid": "g-1", "name": "grant"}}
    ]
    assert record["privileges"] == ["refund:create", "read"]
    assert record["unmapped"] == event_to_json(stored)
    assert record["unmapped"]["event"]["actors"] == [WORKER, ORCHESTRATOR]


def test_ocsf_is_json() -> None:
    record = to_ocsf(_stored(_event("decision", "deny", reason="over limit")))

    assert json.loads(json.dumps(record)) == record
    assert record["status_code"] == "refused"
    assert record["status_detail"] == "over limit"


@pytest.mark.parametrize(
    ("method", "activity_id"),
    [("POST", 1), ("GET", 2), ("HEAD", 2), ("PUT", 3), ("PATCH", 3),
     ("DELETE", 4), ("OPTIONS", 99)],
)  # fmt: skip
def test_ocsf_decision_activity_from_method(method: str, activity_id: int) -> None:
    request = {"method": method, "path": "/refunds/9", "status": 403}
    event = _event("decision", "deny", request=request)

    record = to_ocsf(_stored(event))

    assert record["activity_id"] == activity_id
    assert record["type_uid"] == 600300 + activity_id
    assert record["api"]["operation"] == f"{method} /refunds/9"
    assert record["api"]["response"] == {"code": 403}
    assert record["http_request"] == {
        "http_method": method,
        "url": {"path": "/refunds/9"},
    }
    assert record["http_response"] == {"code": 403}


def test_ocsf_attestation_user_is_agent() -> None:
    event = _event("agent.attested", "allow", human=None)

    record = to_ocsf(_stored(event))

    assert record["user"] == {
        "uid": WORKER,
        "name": WORKER,
        "type_id": 99,
        "type": "Agent",
    }
    assert "user" not in record["actor"]


def test_ocsf_session_user_is_human() -> None:
    record = to_ocsf(_stored(_event("session.created", "allow", actors=[])))

    assert record["user"]["uid"] == HUMAN
    assert record["user"]["type_id"] == 1
    assert "app_uid" not in record["actor"]
