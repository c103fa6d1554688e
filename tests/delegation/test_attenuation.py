"""Attenuation rules: each hop only narrows, and a request for more raises."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentiam.delegation.attenuation import (
    is_within_authorization_details,
    narrow_audiences,
    narrow_authorization_details,
    narrow_expiry,
    narrow_scopes,
)
from agentiam.errors import (
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
)

SCOPE = st.text(alphabet="abcdefgh:", min_size=1, max_size=6)
AMOUNT = st.decimals(min_value=0, max_value=10_000, places=2).map(str)
CURRENCY = st.sampled_from(["EUR", "USD"])
TYPES = st.sampled_from(["refund", "ticket", "payment"])

DETAIL = st.fixed_dictionaries(
    {"type": TYPES},
    optional={
        "limit": st.fixed_dictionaries({"amount": AMOUNT, "currency": CURRENCY}),
        "actions": st.lists(st.sampled_from(["read", "write", "close"]), unique=True),
        "account": st.sampled_from(["a-1", "a-2"]),
        "note": st.text(max_size=4),
    },
)


@given(st.sets(SCOPE, max_size=6), st.sets(SCOPE, min_size=1, max_size=6))
def test_narrow_scopes_result_within_parent(
    parent: set[str], requested: set[str]
) -> None:
    try:
        result = narrow_scopes(parent, requested)
    except InvalidScopeError:
        assert not requested <= parent
        return
    assert set(result) <= parent
    assert set(result) == requested


@given(st.sets(SCOPE, max_size=6), st.sets(SCOPE, min_size=1, max_size=6))
def test_narrow_audiences_result_within_parent(
    parent: set[str], requested: set[str]
) -> None:
    try:
        result = narrow_audiences(parent, requested)
    except InvalidTargetError:
        assert not requested <= parent
        return
    assert set(result) <= parent


@given(
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=1, max_value=1e5),
    st.one_of(st.none(), st.integers(min_value=-10, max_value=2e5)),
)
def test_narrow_expiry_never_beyond_parent(
    parent_offset: float, default_ttl: float, requested: int | None
) -> None:
    now = 1_000_000.0
    parent_exp = now + parent_offset
    try:
        exp = narrow_expiry(
            now=now,
            parent_exp=parent_exp,
            default_ttl=default_ttl,
            requested_ttl=requested,
        )
    except InvalidRequestError:
        assert requested is not None
        assert requested <= 0 or now + requested > parent_exp
        return
    assert exp <= parent_exp


def _within(parent: dict[str, Any], child: dict[str, Any]) -> bool:
    """An independent statement of the rule, to check the function against."""
    if parent["type"] != child["type"]:
        return False
    for name, value in parent.items():
        if name not in child:
            return False
        other = child[name]
        if isinstance(value, list):
            if not isinstance(other, list) or not set(other) <= set(value):
                return False
        elif isinstance(value, dict):
            if (
                not isinstance(other, dict)
                or other.get("currency") != value["currency"]
            ):
                return False
            if set(other) != set(value):
                return False
            if Decimal(other["amount"]) > Decimal(value["amount"]):
                return False
        elif other != value:
            return False
    return True


@given(st.lists(DETAIL, max_size=3), st.lists(DETAIL, min_size=1, max_size=3))
def test_narrow_details_result_within_parent(
    parent: list[dict[str, Any]], requested: list[dict[str, Any]]
) -> None:
    try:
        result = narrow_authorization_details(parent, requested)
    except InvalidAuthorizationDetailsError:
        assert not all(any(_within(p, r) for p in parent) for r in requested)
        return
    for item in result:
        assert any(_within(p, item) for p in parent)


@given(st.lists(DETAIL, min_size=1, max_size=3))
def test_narrow_details_accepts_parent_itself(parent: list[dict[str, Any]]) -> None:
    assert narrow_authorization_details(parent, parent) == parent


def test_narrow_scopes_rejects_wider() -> None:
    with pytest.raises(InvalidScopeError, match="'admin'"):
        narrow_scopes(["refunds"], ["refunds", "admin"])


def test_narrow_scopes_rejects_empty() -> None:
    with pytest.raises(InvalidScopeError):
        narrow_scopes(["refunds"], [])


def test_narrow_scopes_defaults_to_parent() -> None:
    assert narrow_scopes(["b", "a"], None) == ("a", "b")


def test_narrow_expiry_caps_default_at_parent() -> None:
    assert (
        narrow_expiry(now=100, parent_exp=150, default_ttl=300, requested_ttl=None)
        == 150
    )


@pytest.mark.parametrize(
    ("requested", "allowed"),
    [
        pytest.param(
            {"type": "refund", "limit": {"amount": "80", "currency": "EUR"}},
            True,
            id="lower-amount",
        ),
        pytest.param(
            {"type": "refund", "limit": {"amount": "100.00", "currency": "EUR"}},
            True,
            id="equal-amount",
        ),
        pytest.param(
            {"type": "refund", "limit": {"amount": "100.01", "currency": "EUR"}},
            False,
            id="higher-amount",
        ),
        pytest.param(
            {"type": "refund", "limit": {"amount": "80", "currency": "USD"}},
            False,
            id="other-currency",
        ),
        pytest.param(
            {"type": "refund", "limit": {"amount": "NaN", "currency": "EUR"}},
            False,
            id="nan-amount",
        ),
        pytest.param(
            {"type": "refund", "limit": {"amount": "-1", "currency": "EUR"}},
            False,
            id="negative-amount",
        ),
        pytest.param(
            {
                "type": "refund",
                "limit": {"amount": "80", "currency": "EUR"},
                "actions": ["read"],
            },
            True,
            id="member-added",
        ),
        pytest.param({"type": "refund"}, False, id="member-dropped"),
        pytest.param(
            {"type": "payment", "limit": {"amount": "1", "currency": "EUR"}},
            False,
            id="other-type",
        ),
        pytest.param(
            {
                "type": "refund",
                "limit": {"amount": "5", "currency": "EUR"},
                "ticket": "T-1",
            },
            True,
            id="extra-member",
        ),
    ],
)
def test_narrow_details_cases(requested: dict[str, Any], allowed: bool) -> None:
    parent = [{"type": "refund", "limit": {"amount": "100", "currency": "EUR"}}]

    assert is_within_authorization_details(parent, [requested]) is allowed


def test_narrow_details_arrays_subset() -> None:
    parent = [{"type": "ticket", "actions": ["read", "write"]}]

    assert is_within_authorization_details(
        parent, [{"type": "ticket", "actions": ["read"]}]
    )
    assert not is_within_authorization_details(
        parent, [{"type": "ticket", "actions": ["read", "close"]}]
    )


def test_narrow_details_true_is_not_one() -> None:
    parent = [{"type": "ticket", "urgent": 1}]

    assert not is_within_authorization_details(
        parent, [{"type": "ticket", "urgent": True}]
    )


def test_narrow_details_rejects_non_object() -> None:
    with pytest.raises(InvalidAuthorizationDetailsError, match="Entry 0"):
        narrow_authorization_details([], ["refund"])  # type: ignore[list-item]
