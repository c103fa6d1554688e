"""Amounts in authorization_details: plain decimal notation only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agentiam.tokens.amounts import parse_amount, require_plain_amounts
from agentiam.tokens.errors import InvalidAmountError

EXPECTED = "expected a string of digits with an optional fraction, such as '12.50'"


@pytest.mark.parametrize("text", ["0", "100", "12.50", "007.1"])
def test_parse_amount_accepts(text: str) -> None:
    assert parse_amount(text) == Decimal(text)


@pytest.mark.parametrize(
    "value",
    ["1e2", "1E+2", "-5", "+5", " 1", "1.", ".5", "1_000", "\u0661", "NaN", "", 100],
    ids=[
        "exponent",
        "exponent-sign",
        "negative",
        "plus",
        "space",
        "trailing-dot",
        "leading-dot",
        "underscore",
        "arabic-digit",
        "nan",
        "empty",
        "number",
    ],
)
def test_parse_amount_rejects(value: Any) -> None:
    with pytest.raises(InvalidAmountError) as caught:
        parse_amount(value, where="max_amount.amount")
    assert str(caught.value) == (
        f"Invalid amount {value!r} in 'max_amount.amount': {EXPECTED}"
    )


def test_require_plain_amounts_names_path() -> None:
    details = [
        {"type": "refund", "max_amount": {"amount": "10.00", "currency": "EUR"}},
        {"type": "refund", "limits": [{"amount": "1e2", "currency": "EUR"}]},
    ]
    with pytest.raises(InvalidAmountError) as caught:
        require_plain_amounts(details)
    assert str(caught.value) == (
        f"Invalid amount '1e2' in 'authorization_details[1].limits[0].amount': "
        f"{EXPECTED}"
    )


def test_require_plain_amounts_accepts() -> None:
    require_plain_amounts(
        [{"type": "refund", "max_amount": {"amount": "10.00", "currency": "EUR"}}]
    )
