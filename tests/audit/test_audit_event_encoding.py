"""AuditEvent.canonical: its shortcut to the C encoder gives the reference bytes.

``canonical`` decides on its own whether the event may skip the walk that
``canonicalize`` makes before it uses the C encoder.  Whichever way it goes, the
bytes must be those of ``canonicalize_reference``, the pure-Python encoder.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentiam.audit._rfc8785 import canonicalize_reference
from agentiam.audit.errors import AuditEventError, CanonicalizationError
from agentiam.audit.events import AuditEvent

# Text without the token shape that validation rejects.
TEXT = st.text(max_size=12).filter(lambda text: "eyJ" not in text)
KEYS = st.sampled_from(["note", "count", "ratio", "caf\u00e9", "\U0001f600", "n"])
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
TIMES = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=1e18, allow_nan=False),
    st.integers(min_value=0, max_value=2**40),
)


class Decision(StrEnum):
    ALLOW = "allow"


def _expected(event: AuditEvent) -> bytes:
    return canonicalize_reference(event.to_dict())


@given(
    outcome=TEXT,
    human=st.one_of(st.none(), TEXT),
    actors=st.lists(TEXT.filter(bool), max_size=3),
    details=st.dictionaries(KEYS, JSON, max_size=4),
    time=TIMES,
)
def test_canonical_matches_reference(
    outcome: str,
    human: str | None,
    actors: list[str],
    details: dict[str, Any],
    time: float | None,
) -> None:
    event = AuditEvent(
        "decision",
        "deny",
        outcome,
        human=human,
        actors=actors,
        request={"method": "POST", "path": "/v1/x", "status": 403},
        details=details,
        time=time,
    )
    try:
        expected = _expected(event)
    except CanonicalizationError:
        # An integer beyond 2**53 that no double equals has no canonical form.
        with pytest.raises(AuditEventError, match="cannot be encoded"):
            event.canonical()
        return
    assert event.canonical() == expected


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"time": 1_750_000_000.0}, id="integral-time"),
        pytest.param({"time": 1e-7}, id="tiny-time"),
        pytest.param({"details": {"big": 2**53}}, id="integer-at-limit"),
        pytest.param({"details": {"ratio": 1e21}}, id="exponent-float"),
        pytest.param({"details": {"\U0001f600": 1, "\uffff": 2}}, id="non-bmp-key"),
        pytest.param({"decision": Decision.ALLOW}, id="str-subclass"),
        pytest.param({"human": "caf\u00e9 \u2713"}, id="non-ascii"),
    ],
)
def test_canonical_edge_cases_match_reference(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"type": "decision", "time": 1_750_000_000.25}
    fields.update(changes)
    event = AuditEvent(**fields)
    assert event.canonical() == _expected(event)


def test_canonical_rejects_lone_surrogate() -> None:
    event = AuditEvent("decision", human="\ud800", time=1.5)
    with pytest.raises(AuditEventError, match="lone surrogate U\\+D800"):
        event.canonical()
