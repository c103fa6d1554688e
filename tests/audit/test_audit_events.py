"""AuditEvent: schema, validation and the rejection of anything like a secret."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agentiam.audit.errors import AuditEventError
from agentiam.audit.events import EVENT_VERSION, AuditEvent, is_sensitive_key

JWS = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
AGENT = "spiffe://agentiam.local/agent/support/i-1"


def _event(**changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "type": "token.exchanged",
        "decision": "allow",
        "outcome": "issued",
        "human": "alice",
        "grant_id": "g-1",
        "actors": [AGENT],
        "task_path": ["t-root", "t-1"],
        "request": {
            "method": "POST",
            "endpoint": "/token",
            "parameters": {"scope": "refunds", "subject_token_type": "jwt"},
        },
        "details": {"jti": "j-1", "exp": 1_750_000_300},
    }
    fields.update(changes)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_event_constructor_order() -> None:
    names = [field.name for field in dataclasses.fields(AuditEvent)]
    assert names == [
        "type", "decision", "outcome", "reason", "human", "receipt_hash",
        "grant_id", "actors", "task_path", "request", "details", "trace_id", "time",
    ]  # fmt: skip


def test_event_to_dict_has_fixed_schema() -> None:
    data = _event(time=1.5).to_dict()
    assert data["v"] == EVENT_VERSION == 1
    assert sorted(data) == sorted(
        ["v", "type", "time", "decision", "outcome", "reason", "human",
         "receipt_hash", "grant_id", "actors", "task_path", "request", "details",
         "trace_id"]
    )  # fmt: skip
    assert data["actors"] == [AGENT]
    assert data["task_path"] == ["t-root", "t-1"]
    assert data["reason"] is None


def test_event_canonical_bytes_are_pinned() -> None:
    event = AuditEvent("decision", "deny", "refused", time=2.5, actors=["a"])
    assert event.canonical() == (
        b'{"actors":["a"],"decision":"deny","details":{},"grant_id":null,'
        b'"human":null,"outcome":"refused","reason":null,"receipt_hash":null,'
        b'"request":{},"task_path":[],"time":2.5,"trace_id":null,'
        b'"type":"decision","v":1}'
    )


def test_event_round_trips_through_dict() -> None:
    event = _event(time=1_750_000_000.25, trace_id="trace-1")
    assert AuditEvent.from_dict(json.loads(event.canonical())) == event


def test_event_is_immutable() -> None:
    event = _event()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.outcome = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.details["jti"] = "other"  # type: ignore[index]
    assert isinstance(event.actors, tuple)


def test_event_stamped_keeps_existing_time() -> None:
    assert _event().stamped(10.0).time == 10.0
    assert _event(time=3.0).stamped(10.0).time == 3.0


def test_event_task_id_is_last_of_path() -> None:
    assert _event().task_id == "t-1"
    assert _event(task_path=[]).task_id is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"reason": f"bad token {JWS}"}, "'reason' contains", id="reason"),
        pytest.param({"human": JWS}, "'human' contains", id="human"),
        pytest.param({"actors": [JWS]}, "'actors\\[0\\]' contains", id="actor"),
        pytest.param(
            {"task_path": ["t-root", JWS]}, "'task_path\\[1\\]' contains", id="task"
        ),
        pytest.param(
            {"details": {"aud": ["api", JWS]}},
            "'details.aud\\[1\\]' contains",
            id="detail-list-item",
        ),
        pytest.param(
            {"details": {"note": ["x", {"y": "Bearer " + JWS}]}},
            "'details.note\\[1\\].y' contains",
            id="nested-detail",
        ),
        pytest.param(
            {"request": {"method": "POST", "path": "/x", "parameters": {"q": JWS}}},
            "'request.parameters.q' contains",
            id="request-parameter",
        ),
        pytest.param(
            {"details": {"password": "hunter2"}},
            "'details.password' names a secret",
            id="password",
        ),
        pytest.param(
            {"details": {"client_secret": "s"}},
            "'details.client_secret' names",
            id="client-secret",
        ),
        pytest.param(
            {"request": {"parameters": {"subject_token": "opaque"}}},
            "'request.parameters.subject_token' names a secret",
            id="subject-token",
        ),
        pytest.param(
            {"details": {"token": None}}, "'details.token' names", id="bare-token"
        ),
        pytest.param(
            {"details": {"client_assertion": "x"}},
            "'details.client_assertion'",
            id="assertion",
        ),
        pytest.param(
            {"details": {"Authorization": "Basic eA=="}},
            "'details.Authorization'",
            id="authorization",
        ),
        pytest.param(
            {"details": {"private_key": "k"}},
            "'details.private_key'",
            id="private-key",
        ),
        pytest.param(
            {"details": {"join-token": "k"}}, "'details.join-token'", id="join-token"
        ),
    ],
)
def test_event_rejects_secrets(changes: dict[str, object], message: str) -> None:
    with pytest.raises(AuditEventError, match=message):
        _event(**changes)


@pytest.mark.parametrize(
    "key", ["token_type", "subject_token_type", "jti", "svid_jti", "jkt", "kid"]
)
def test_event_allows_safe_keys(key: str) -> None:
    assert not is_sensitive_key(key)
    assert _event(details={key: "value"}).details[key] == "value"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"type": "Token.Exchanged"}, "event type", id="type-case"),
        pytest.param({"type": ""}, "event type", id="type-empty"),
        pytest.param({"decision": "maybe"}, "decision 'maybe'", id="decision"),
        pytest.param({"outcome": 3}, "'outcome' must be a string", id="outcome"),
        pytest.param({"human": 7}, "'human' has type 'int'", id="human-type"),
        pytest.param({"actors": "spiffe://x"}, "list of strings", id="actors-str"),
        pytest.param({"actors": [""]}, "non-empty string", id="actor-empty"),
        pytest.param({"request": {"body": "x"}}, "unknown key 'body'", id="req-key"),
        pytest.param(
            {"request": {"method": "post"}}, "request.method", id="method-case"
        ),
        pytest.param({"details": {"x": float("nan")}}, "not a finite", id="nan"),
        pytest.param({"details": {"x": b"raw"}}, "type 'bytes'", id="bytes"),
        pytest.param({"details": {1: "x"}}, "key that is not text", id="int-key"),
        pytest.param({"time": -1.0}, "'time' is -1.0", id="time-negative"),
        pytest.param({"time": True}, "'time' is True", id="time-bool"),
        pytest.param({"reason": "x" * 5000}, "maximum of 4096", id="long-reason"),
        pytest.param(
            {"details": {"aud": ["api", "x" * 5000]}},
            "'details.aud\\[1\\]' is 5000 characters",
            id="long-list-item",
        ),
        pytest.param(
            {"actors": ["a", "x" * 5000]},
            "'actors\\[1\\]' is 5000 characters",
            id="long-actor",
        ),
    ],
)
def test_event_rejects_invalid_fields(changes: dict[str, object], message: str) -> None:
    with pytest.raises(AuditEventError, match=message):
        _event(**changes)


def _nested_lists(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = [value]
    return value


def test_event_limits_nesting_of_lists() -> None:
    # The details object is level 0 and its member level 1, so eight lists put
    # the string at level 9, one past the limit.
    assert _event(details={"x": _nested_lists(7)}).details["x"] is not None
    with pytest.raises(AuditEventError, match="nests deeper than 8 levels"):
        _event(details={"x": _nested_lists(8)})
    with pytest.raises(AuditEventError, match="nests deeper than 8 levels"):
        _event(details={"x": tuple([_nested_lists(7)])})


def test_event_rejects_unencodable_integer() -> None:
    event = _event(details={"n": 2**53 + 1})
    with pytest.raises(AuditEventError, match="cannot be encoded"):
        event.canonical()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"v": 2}, "version 2 is not supported", id="version"),
        pytest.param({"extra": 1}, "unknown key 'extra'", id="unknown-key"),
    ],
)
def test_from_dict_rejects(change: dict[str, object], message: str) -> None:
    data = _event(time=1.0).to_dict() | change
    with pytest.raises(AuditEventError, match=message):
        AuditEvent.from_dict(data)


def test_from_dict_rejects_missing_key() -> None:
    data = _event(time=1.0).to_dict()
    del data["trace_id"]
    with pytest.raises(AuditEventError, match="missing key 'trace_id'"):
        AuditEvent.from_dict(data)
