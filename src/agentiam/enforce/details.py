"""authorize_detail, the check of a request against the token's RAR limits."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from agentiam.enforce.errors import ForbiddenError
from agentiam.enforce.principal import Principal

PRINCIPAL_KEY = "agentiam.principal"
STATE_KEY = "agentiam.enforcement"


class RequestState:
    """Per-request state shared by the middleware and ``authorize_detail``.

    It is an object, not a scope entry, so it survives frameworks that copy the
    scope dict on the way to the handler.
    """

    __slots__ = ("forbidden",)

    def __init__(self) -> None:
        self.forbidden: ForbiddenError | None = None


def authorize_detail(
    request: Any,
    *,
    type: str,
    action: str | None = None,
    amount: Decimal | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """Check that the token carries an authorization_details object covering this.

    An object covers the request when its ``type`` matches, its ``actions`` contain
    ``action`` (when one is given) and, when ``amount`` is given, its ``max_amount``
    has the same currency and an amount at least as large (RFC 9396 section 2).
    Amounts are compared as Decimal, never as float. Once this raises under the
    middleware, the middleware sends 403 even if the handler catches the error.

    Args:
        request: a Starlette or FastAPI request, or the ASGI scope itself.

    Returns:
        The first covering object.

    Raises:
        ForbiddenError: no object covers the request, or the middleware did not run.
        ValueError: ``amount`` is given without ``currency`` or is negative.
    """
    if amount is not None and (
        currency is None or amount < 0 or not amount.is_finite()
    ):
        raise ValueError("authorize_detail needs a non-negative amount and a currency.")

    scope: Mapping[str, Any] = getattr(request, "scope", request)
    principal = scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise ForbiddenError(reason="authorize_detail ran without a verified principal")

    candidates = [d for d in principal.authorization_details if d.get("type") == type]
    reasons: list[str] = []
    for detail in candidates:
        reason = _uncovered_reason(detail, action, amount, currency)
        if reason is None:
            return detail
        reasons.append(reason)

    hint = reasons[0] if reasons else f"No authorization_details of type '{type}'."
    error = ForbiddenError(hint)
    state = scope.get(STATE_KEY)
    if isinstance(state, RequestState):
        state.forbidden = error
    raise error


def _uncovered_reason(
    detail: Mapping[str, Any],
    action: str | None,
    amount: Decimal | None,
    currency: str | None,
) -> str | None:
    """Return why ``detail`` does not cover the request, or None if it does."""
    kind = detail.get("type")
    if action is not None:
        actions = detail.get("actions")
        if not isinstance(actions, list) or action not in actions:
            return f"Action '{action}' is not allowed for '{kind}'."

    if amount is None or currency is None:
        return None

    limit = detail.get("max_amount")
    if not isinstance(limit, Mapping):
        return f"The '{kind}' authorization has no max_amount."
    limit_currency = limit.get("currency")
    if (
        not isinstance(limit_currency, str)
        or limit_currency.upper() != currency.upper()
    ):
        return (
            f"Currency '{currency}' does not match the '{kind}' limit currency "
            f"'{limit_currency}'."
        )

    limit_amount = _decimal(limit.get("amount"))
    if limit_amount is None:
        return f"The '{kind}' limit amount is not a decimal number."
    if amount > limit_amount:
        return (
            f"Amount '{amount}' {currency} exceeds the '{kind}' limit "
            f"'{limit_amount}' {limit_currency}."
        )
    return None


def _decimal(value: object) -> Decimal | None:
    # Floats are rejected because their binary value is not the decimal the grant
    # was written with.
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
