"""Amounts in authorization_details, such as the ``max_amount`` of a refund.

RFC 9396 leaves the form of an amount to each type, and agentiam fixes one: a
JSON string in plain decimal notation, digits with an optional fraction (``"12.50"``).
Exponents, signs, spaces, underscores and non-ASCII digits are rejected, although
``Decimal`` accepts them, so that an amount means what it shows: ``Decimal("1e2")``
is 100 but prints as ``1E+2``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

from agentiam.tokens.errors import InvalidAmountError

# Every member with this name, at any depth of an authorization_details entry.
AMOUNT_MEMBER: Final = "amount"

_PLAIN_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_amount(value: object, *, where: str = "amount") -> Decimal:
    """Return the amount ``value`` as a Decimal.

    Args:
        value: the JSON value of the amount.
        where: the member path, for the message.

    Raises:
        InvalidAmountError: ``value`` is not a string in plain decimal notation.
    """
    if isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value):
        return Decimal(value)

    shown = repr(value[:64]) if isinstance(value, str) else repr(value)[:64]
    raise InvalidAmountError(
        f"Invalid amount {shown} in {where[:128]!r}: expected a string of digits "
        "with an optional fraction, such as '12.50'"
    )


def require_plain_amounts(
    details: Sequence[Any], *, name: str = "authorization_details"
) -> None:
    """Check every ``amount`` member of ``details`` with ``parse_amount``.

    Raises:
        InvalidAmountError: naming the first bad amount and its member path, such
            as ``authorization_details[0].max_amount.amount``.
    """
    # Most details hold only good amounts, so a walk without member paths checks
    # them, and only a bad amount pays for the walk that names its path.
    if _amounts_plain(details):
        return
    _raise_first_bad_amount(details, name)


def _amounts_plain(details: Sequence[Any]) -> bool:
    stack: list[Any] = [list(details)]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if AMOUNT_MEMBER in item:
                amount = item[AMOUNT_MEMBER]
                if not isinstance(amount, str) or not _PLAIN_DECIMAL.fullmatch(amount):
                    return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _raise_first_bad_amount(details: Sequence[Any], name: str) -> None:
    # Children are pushed in reverse, so the walk meets amounts in document order.
    stack: list[tuple[Any, str]] = [(list(details), name)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            children = [(child, f"{path}.{member}") for member, child in item.items()]
            if AMOUNT_MEMBER in item:
                parse_amount(item[AMOUNT_MEMBER], where=f"{path}.{AMOUNT_MEMBER}")
        elif isinstance(item, list):
            children = [(child, f"{path}[{i}]") for i, child in enumerate(item)]
        else:
            continue
        stack.extend(reversed(children))
    # Both walks use the same test, so this line is never reached, and if they ever
    # differ the details still fail closed.
    raise InvalidAmountError(f"Invalid amount in {name[:128]!r}")
