"""AuditEvent's append shortcuts give the bytes and events of the plain code.

``canonical`` first writes the canonical text member by member with
``_plain_text``.  That text must equal the C encoder's output over ``to_dict()``
and the bytes of the pure-Python reference encoder.  Otherwise it is ``None``,
and the event takes the general path.  ``stamped`` copies every field through
the slots' setters, and known event types skip the type pattern, which each of
them matches.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentiam.audit._rfc8785 import _fast_encode, canonicalize_reference
from agentiam.audit.errors import AuditEventError, CanonicalizationError
from agentiam.audit.events import (
    _MAX_TYPE_LENGTH,
    _TYPE_PATTERN,
    KNOWN_TYPES,
    AuditEvent,
)

# Text of every plane, without the token shape that validation rejects.  Lone
# surrogates are left out here and tested on their own below.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10).filter(
    lambda text: "eyJ" not in text
)
NAMES = st.one_of(st.none(), TEXT)
KEYS = st.sampled_from(["note", "count", "caf\u00e9", "\U0001f600", "\uffff", "a"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=8,
)
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["GET", "POST"]),
        "path": TEXT,
        "endpoint": TEXT,
        "status": st.integers(min_value=100, max_value=599),
        "audience": TEXT,
        "parameters": st.dictionaries(KEYS, JSON, max_size=3),
    },
)
TIMES = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=1e18, allow_nan=False),
    st.integers(min_value=0, max_value=2**40),
)


class Decision(StrEnum):
    ALLOW = "allow"


def _check_bytes(event: AuditEvent) -> None:
    """Assert that ``canonical`` and ``_plain_text`` agree with both encoders."""
    try:
        expected = canonicalize_reference(event.to_dict())
    except CanonicalizationError:
        with pytest.raises(AuditEventError, match="cannot be encoded"):
            event.canonical()
        return

    assert event.canonical() == expected
    text = event._plain_text()
    if text is not None:
        assert text == _fast_encode(event.to_dict())
        assert text.encode("utf-8") == expected


@given(
    event_type=st.sampled_from(["decision", "token.exchanged", "x.custom_type"]),
    decision=st.sampled_from(["allow", "deny", "none"]),
    outcome=TEXT,
    reason=NAMES,
    human=NAMES,
    receipt_hash=NAMES,
    grant_id=NAMES,
    actors=st.lists(TEXT.filter(bool), max_size=3),
    task_path=st.lists(TEXT.filter(bool), max_size=3),
    request=REQUESTS,
    details=st.dictionaries(KEYS, JSON, max_size=4),
    trace_id=NAMES,
    time=TIMES,
)
def test_member_text_matches_both_encoders(
    event_type: str,
    decision: str,
    outcome: str,
    reason: str | None,
    human: str | None,
    receipt_hash: str | None,
    grant_id: str | None,
    actors: list[str],
    task_path: list[str],
    request: dict[str, Any],
    details: dict[str, Any],
    trace_id: str | None,
    time: float | None,
) -> None:
    event = AuditEvent(
        event_type,
        decision,
        outcome,
        reason,
        human,
        receipt_hash,
        grant_id,
        actors,
        task_path,
        request,
        details,
        trace_id,
        time=time,
    )
    _check_bytes(event)
    _check_bytes(event.stamped(1_750_000_000.125))


def test_member_text_covers_a_usual_event() -> None:
    event = AuditEvent(
        "session.created",
        "allow",
        "issued",
        human="h-1",
        actors=["spiffe://agentiam.local/agent/a/i-1"],
        task_path=["t-root", "t-1"],
        request={"method": "POST", "path": "/v1/sessions", "status": 201},
        details={"session_jti": "jti-1", "ttl": 300, "ratio": 0.5},
        time=1_750_000_000.25,
    )
    text = event._plain_text()
    assert text is not None
    assert text.encode("utf-8") == canonicalize_reference(event.to_dict())


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"time": 1_750_000_000}, id="integer-time"),
        pytest.param({"time": 1_750_000_000.0}, id="integral-float-time"),
        pytest.param({"time": 1e-7}, id="tiny-time"),
        pytest.param({"details": {"nested": {"a": 1}}}, id="nested-object"),
        pytest.param({"details": {"big": 2**53 + 2}}, id="integer-beyond-limit"),
        pytest.param({"details": {"ratio": 1e21}}, id="exponent-float"),
        pytest.param({"details": {"\U0001f600": 1, "\uffff": 2}}, id="non-bmp-key"),
        pytest.param({"decision": Decision.ALLOW}, id="str-subclass"),
    ],
)
def test_member_text_none_for_other_events(
    changes: dict[str, Any],
) -> None:
    fields: dict[str, Any] = {"type": "decision", "time": 1_750_000_000.25}
    fields.update(changes)
    event = AuditEvent(**fields)
    assert event._plain_text() is None
    assert event.canonical() == canonicalize_reference(event.to_dict())


def test_member_text_lone_surrogate_keeps_its_error() -> None:
    event = AuditEvent("decision", details={"note": "\udc00"}, time=1.5)
    assert event._plain_text() is not None
    with pytest.raises(AuditEventError, match="lone surrogate U\\+DC00"):
        event.canonical()


def test_stamped_copies_every_field() -> None:
    event = AuditEvent(
        "grant.approved",
        "allow",
        "approved",
        "why",
        "h-1",
        "receipt",
        "g-1",
        ["spiffe://agentiam.local/agent/a/i-1"],
        ["t-1"],
        {"method": "POST"},
        {"n": 1},
        "trace-1",
    )
    stamped = event.stamped(12.5)
    assert stamped == dataclasses.replace(event, time=12.5)
    for field in dataclasses.fields(AuditEvent):
        if field.name != "time":
            assert getattr(stamped, field.name) is getattr(event, field.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stamped.time = 1.0  # type: ignore[misc]


def test_stamped_still_checks_the_new_time() -> None:
    with pytest.raises(AuditEventError, match="expected Unix seconds"):
        AuditEvent("decision").stamped(-1.0)


@pytest.mark.parametrize("event_type", sorted(KNOWN_TYPES))
def test_known_types_pass_the_type_checks(event_type: str) -> None:
    assert len(event_type) <= _MAX_TYPE_LENGTH
    assert _TYPE_PATTERN.match(event_type)
    assert AuditEvent(event_type).type == event_type
