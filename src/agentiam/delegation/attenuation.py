"""Attenuation rules for token exchange: each hop may only narrow what it received.

Pure functions with no I/O. Each raises the OAuth error for its parameter when the
request is for more than the parent has. None of them trims a request to fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from agentiam.errors import (
    InvalidAuthorizationDetailsError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
)
from agentiam.tokens.amounts import parse_amount
from agentiam.tokens.claims import MAX_ACT_DEPTH
from agentiam.tokens.errors import InvalidAmountError


def narrow_scopes(
    parent: Iterable[str], requested: Iterable[str] | None
) -> tuple[str, ...]:
    """Return the requested scopes, or the parent's when none are requested.

    Raises:
        InvalidScopeError: a requested scope is not in the parent's scopes, or the
            request is empty.
    """
    parent_set = set(parent)
    if requested is None:
        return tuple(sorted(parent_set))

    requested_set = set(requested)
    if not requested_set:
        raise InvalidScopeError("The requested scope is empty.")
    extra = sorted(requested_set - parent_set)
    if extra:
        raise InvalidScopeError(f"Scopes {' '.join(extra)!r} are not in the parent.")
    return tuple(sorted(requested_set))


def narrow_audiences(
    parent: Iterable[str], requested: Iterable[str] | None
) -> tuple[str, ...]:
    """Return the requested audiences, or the parent's when none are requested.

    Covers both the RFC 8693 ``audience`` and the RFC 8707 ``resource`` parameters.

    Raises:
        InvalidTargetError: a requested audience is not in the parent's ``aud``.
    """
    parent_set = set(parent)
    if requested is None:
        return tuple(sorted(parent_set))

    requested_set = set(requested)
    if not requested_set:
        raise InvalidTargetError("The requested audience is empty.")
    extra = sorted(requested_set - parent_set)
    if extra:
        raise InvalidTargetError(
            f"Audiences {' '.join(extra)!r} are not in the parent token."
        )
    return tuple(sorted(requested_set))


def require_depth_within(
    depth: int,
    *,
    grant_max_depth: int,
    class_limits: Iterable[tuple[str, int]],
    error: type[OAuthError] = InvalidGrantError,
) -> None:
    """Check the depth of a new hop against the grant's and each class's maximum.

    A token exchange that adds a hop and the spawn of a sub-agent apply this one
    rule at the child's depth (the parent token's depth + 1), with the parent's
    and the child's agent classes, so that spawn never issues an identity that
    the exchange would refuse for its depth.

    Args:
        class_limits: (agent class name, ``max_depth``) of each class to check.
        error: the error to raise, which depends on the endpoint.

    Raises:
        error: the depth is above a maximum; the message names both.
    """
    # Verifiers reject an act chain longer than MAX_ACT_DEPTH, whatever the limits.
    if depth > MAX_ACT_DEPTH:
        raise error(
            f"The delegation depth {depth} exceeds the maximum of {MAX_ACT_DEPTH} "
            "that a token can carry."
        )
    if depth > grant_max_depth:
        raise error(
            f"The delegation depth {depth} exceeds the grant's maximum "
            f"of {grant_max_depth}."
        )
    for name, limit in class_limits:
        if depth > limit:
            raise error(
                f"The delegation depth {depth} exceeds the maximum of "
                f"{limit} for agent class '{name}'."
            )


def narrow_expiry(
    *, now: float, parent_exp: float, default_ttl: float, requested_ttl: float | None
) -> float:
    """Return the new token's ``exp``: never beyond the parent token's ``exp``.

    Without a request, the lifetime is ``default_ttl`` capped at the parent's ``exp``,
    because the cap is the rule and not a wider grant.

    Raises:
        InvalidRequestError: the requested lifetime is not positive or would end
            after the parent's ``exp``.
    """
    if requested_ttl is None:
        return min(now + default_ttl, parent_exp)

    if requested_ttl <= 0:
        raise InvalidRequestError("The requested_expiry must be a positive integer.")
    exp = now + requested_ttl
    if exp > parent_exp:
        raise InvalidRequestError(
            f"The requested_expiry of {int(requested_ttl)} seconds ends after the "
            f"parent token, which expires in {max(0, int(parent_exp - now))} seconds."
        )
    return exp


def narrow_authorization_details(
    parent: Sequence[Mapping[str, Any]], requested: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Return the requested RFC 9396 objects if every one is covered by the parent.

    A parent object of the same ``type`` covers a requested object when the request
    has every member of the parent object with a narrower or equal value. An array
    must be a subset. An ``{amount, currency}`` object must have the same currency
    and an amount not above the parent's. Any other value must be equal. Members the
    parent object lacks are free to add, since they only narrow.

    Raises:
        InvalidAuthorizationDetailsError: an object is malformed or not covered.
    """
    if requested is None:
        return [dict(item) for item in parent]

    result: list[dict[str, Any]] = []
    for index, item in enumerate(requested):
        if not isinstance(item, Mapping):
            raise InvalidAuthorizationDetailsError(
                f"Entry {index} of authorization_details is not an object."
            )
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidAuthorizationDetailsError(
                f"Entry {index} of authorization_details has no string type."
            )
        candidates = [p for p in parent if p.get("type") == kind]
        if not any(_covers(p, item) for p in candidates):
            raise InvalidAuthorizationDetailsError(
                f"Entry {index} of type {kind!r} is wider than the parent allows."
            )
        result.append(dict(item))
    return result


def is_within_authorization_details(
    parent: Sequence[Mapping[str, Any]], requested: Sequence[Mapping[str, Any]]
) -> bool:
    """Return whether every requested object is covered by a parent object."""
    try:
        narrow_authorization_details(parent, requested)
    except InvalidAuthorizationDetailsError:
        return False
    return True


def _covers(parent: Mapping[str, Any], requested: Mapping[str, Any]) -> bool:
    for name, parent_value in parent.items():
        if name not in requested:
            return False
        if not _value_within(parent_value, requested[name]):
            return False
    return True


def _value_within(parent: Any, requested: Any) -> bool:
    if isinstance(parent, list):
        if not isinstance(requested, list):
            return False
        return all(any(_same(item, p) for p in parent) for item in requested)

    if _is_amount(parent):
        if not _is_amount(requested) or requested.keys() != parent.keys():
            return False
        for name in parent:
            if name != "amount" and not _same(parent[name], requested[name]):
                return False
        requested_amount = _decimal(requested["amount"])
        parent_amount = _decimal(parent["amount"])
        if requested_amount is None or parent_amount is None:
            return False
        return requested_amount <= parent_amount

    return _same(parent, requested)


def _same(left: Any, right: Any) -> bool:
    # JSON equality: true and 1 differ, though Python's == treats them as equal.
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict):
        if left.keys() != right.keys():
            return False
        return all(_same(left[key], right[key]) for key in left)
    return bool(left == right)


def _is_amount(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and "amount" in value
        and "currency" in value
        and isinstance(value.get("currency"), str)
        and isinstance(value.get("amount"), str)
    )


def _decimal(text: str) -> Decimal | None:
    # Plain notation only, so "1e2" never covers or is covered by "100".
    try:
        return parse_amount(text)
    except InvalidAmountError:
        return None
