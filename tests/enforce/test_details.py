"""authorize_detail against RFC 9396 objects, without the middleware."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentiam.enforce import ForbiddenError, Principal, authorize_detail
from agentiam.enforce.details import STATE_KEY, RequestState


def scope_with(*details: dict) -> dict:
    principal = Principal(
        human="alice",
        client_id="spiffe://example.org/agent/a/1",
        actors=("spiffe://example.org/agent/a/1",),
        task_id=None,
        task_path=(),
        grant_id="g1",
        receipt_hash="rh",
        scopes=frozenset({"refunds"}),
        authorization_details=details,
        jti="j1",
        exp=0.0,
    )
    return {"agentiam.principal": principal}


REFUND = {
    "type": "refund",
    "actions": ["create"],
    "max_amount": {"amount": "100.00", "currency": "EUR"},
}


def test_detail_covers_equal_amount() -> None:
    detail = authorize_detail(
        scope_with(REFUND),
        type="refund",
        action="create",
        amount=Decimal("100.00"),
        currency="EUR",
    )
    assert detail is REFUND


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"amount": Decimal("120"), "currency": "EUR"},
            "Amount '120' EUR exceeds the 'refund' limit '100.00' EUR.",
        ),
        (
            {"amount": Decimal("80"), "currency": "USD"},
            "Currency 'USD' does not match the 'refund' limit currency 'EUR'.",
        ),
        ({"action": "delete"}, "Action 'delete' is not allowed for 'refund'."),
    ],
    ids=["over", "currency", "action"],
)
def test_detail_rejects(kwargs: dict, message: str) -> None:
    with pytest.raises(ForbiddenError) as caught:
        authorize_detail(scope_with(REFUND), type="refund", **kwargs)
    assert caught.value.hint == message
    assert caught.value.error == "insufficient_scope"
    assert caught.value.status == 403


def test_detail_missing_type() -> None:
    with pytest.raises(ForbiddenError, match="No authorization_details of type"):
        authorize_detail(scope_with(REFUND), type="payout")


@pytest.mark.parametrize("limit", [100.0, 100, "1e2", "-5", " 10"])
def test_detail_limit_not_plain_decimal(limit: object) -> None:
    detail = {"type": "refund", "max_amount": {"amount": limit, "currency": "EUR"}}
    with pytest.raises(ForbiddenError, match="not a decimal number"):
        authorize_detail(
            scope_with(detail), type="refund", amount=Decimal("1"), currency="EUR"
        )


def test_detail_without_principal() -> None:
    with pytest.raises(ForbiddenError):
        authorize_detail({}, type="refund")


def test_detail_amount_needs_currency() -> None:
    with pytest.raises(ValueError, match="currency"):
        authorize_detail(scope_with(REFUND), type="refund", amount=Decimal("1"))


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-1", "Amount '-1' is not a non-negative number."),
        ("-0.01", "Amount '-0.01' is not a non-negative number."),
        ("NaN", "Amount 'NaN' is not a non-negative number."),
        ("sNaN", "Amount 'sNaN' is not a non-negative number."),
        ("Infinity", "Amount 'Infinity' is not a non-negative number."),
        ("-Infinity", "Amount '-Infinity' is not a non-negative number."),
        ("-" + "1" * 60, f"Amount '-{'1' * 36}...' is not a non-negative number."),
    ],
    ids=["negative", "negative-cent", "nan", "snan", "inf", "minus-inf", "long"],
)
def test_detail_rejects_bad_amount(amount: str, message: str) -> None:
    scope = scope_with(REFUND)
    state = RequestState()
    scope[STATE_KEY] = state

    with pytest.raises(ForbiddenError) as caught:
        authorize_detail(scope, type="refund", amount=Decimal(amount), currency="EUR")

    assert caught.value.hint == message
    assert caught.value.status == 403
    assert state.forbidden is caught.value


def test_detail_amount_must_be_decimal() -> None:
    with pytest.raises(TypeError, match="needs a Decimal amount, not 'str'"):
        authorize_detail(
            scope_with(REFUND),
            type="refund",
            amount="1",  # type: ignore[arg-type]
            currency="EUR",
        )
