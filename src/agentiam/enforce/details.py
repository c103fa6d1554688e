"""authorize_detail, the check of a request against the token's RAR limits."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NoReturn

from agentiam.enforce.errors import ForbiddenError
from agentiam.enforce.principal import Principal
from agentiam.tokens.amounts import parse_amount
from agentiam.tokens.errors import InvalidAmountError

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
    Amounts are compared as Decimal, never as float. A negative, NaN or infinite
    amount is covered by no grant. Once this raises under the middleware, the
    middleware sends 403 even if the handler catches the error.

    Args:
        request: a Starlette or FastAPI request, or the ASGI scope itself.
        amount: the amount the request is for, already parsed from the request.

    Returns:
        The first covering object.

    Raises:
        ForbiddenError: no object covers the request, the amount is negative or
            not finite, or the middleware did not run.
        ValueError: ``amount`` is given without ``currency``, a mistake in the
            calling code rather than in the request.
        TypeError: ``amount`` is not a Decimal.
    """
    if amount is not None:
        if not isinstance(amount, Decimal):
            raise TypeError(
                "authorize_detail needs a Decimal amount, not "
                f"'{builtins.type(amount).__name__}'."
            )
        if currency is None:
            raise ValueError("authorize_detail needs a currency with an amount.")

    scope: Mapping[str, Any] = getattr(request, "scope", request)
    principal = scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise ForbiddenError(reason="authorize_detail ran without a verified principal")

    # is_finite comes first: ordering a NaN Decimal raises InvalidOperation.
    if amount is not None and (not amount.is_finite() or amount < 0):
        _deny(scope, f"Amount '{_short(amount)}' is not a non-negative number.")

    candidates = [d for d in principal.authorization_details if d.get("type") == type]
    reasons: list[str] = []
    for detail in candidates:
        reason = _uncovered_reason(detail, action, amount, currency)
        if reason is None:
            return detail
        reasons.append(reason)

    _deny(
        scope, reasons[0] if reasons else f"No authorization_details of type '{type}'."
    )


def _deny(scope: Mapping[str, Any], hint: str) -> NoReturn:
    """Raise ForbiddenError, and mark the request denied for the middleware."""
    error = ForbiddenError(hint)
    state = scope.get(STATE_KEY)
    if isinstance(state, RequestState):
        state.forbidden = error
    raise error


def _short(amount: Decimal) -> str:
    # The amount comes from the request, so its text is bounded in the hint.
    text = str(amount)
    return text if len(text) <= 40 else text[:37] + "..."


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
    # The server issues limits as plain decimal strings, so a float, an integer
    # or an exponent such as "1e2" in a token's limit is no valid limit.
    try:
        return parse_amount(value)
    except InvalidAmountError:
        return None
