"""Strict type checks for claim values, each raising InvalidClaimError by name."""

from __future__ import annotations

from typing import Any

from agentiam.spiffe import SPIFFEID, SPIFFEIDError
from agentiam.strict_json import MAX_INTEGER
from agentiam.tokens.errors import InvalidClaimError


def json_object(
    claims: dict[str, Any], key: str, name: str | None = None
) -> dict[str, Any]:
    value = claims.get(key)
    if not isinstance(value, dict):
        raise _error(claims, key, name, "a JSON object")
    return value


def string(claims: dict[str, Any], key: str, name: str | None = None) -> str:
    value = claims.get(key)
    if not isinstance(value, str) or not value:
        raise _error(claims, key, name, "a non-empty string")
    return value


def optional_string(
    claims: dict[str, Any], key: str, name: str | None = None
) -> str | None:
    if key not in claims:
        return None
    return string(claims, key, name)


def number(claims: dict[str, Any], key: str, name: str | None = None) -> float:
    value = claims.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(claims, key, name, "a number")
    return value


def numeric_date(claims: dict[str, Any], key: str, name: str | None = None) -> float:
    """Return a NumericDate (RFC 7519 section 2): a number within the I-JSON range.

    The range check comes before any float conversion, so a huge integer cannot
    overflow it, and NaN fails the check.
    """
    value = number(claims, key, name)
    if not -MAX_INTEGER <= value <= MAX_INTEGER:
        name = name or key
        shown = repr(value)
        if isinstance(value, int) and value.bit_length() > 64:
            shown = f"(an integer of {value.bit_length()} bits)"
        raise InvalidClaimError(
            name,
            f"Token claim {name!r} {shown} is out of range: a NumericDate must be "
            "between -(2**53 - 1) and 2**53 - 1",
        )
    return value


def integer(claims: dict[str, Any], key: str, name: str | None = None) -> int:
    value = claims.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(claims, key, name, "an integer")
    return value


def boolean(claims: dict[str, Any], key: str, name: str | None = None) -> bool:
    value = claims.get(key)
    if not isinstance(value, bool):
        raise _error(claims, key, name, "a boolean")
    return value


def string_list(
    claims: dict[str, Any], key: str, name: str | None = None
) -> tuple[str, ...]:
    value = claims.get(key)
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise _error(claims, key, name, "a list of non-empty strings")
    return tuple(value)


def audience(claims: dict[str, Any]) -> tuple[str, ...]:
    """Return ``aud`` as a tuple, from a string or a list (RFC 7519 section 4.1.3)."""
    value = claims.get("aud")
    if isinstance(value, str) and value:
        return (value,)
    audiences = string_list(claims, "aud")
    if not audiences:
        raise InvalidClaimError("aud", "Token claim 'aud' must not be empty")
    return audiences


def spiffe_id(claims: dict[str, Any], key: str, name: str | None = None) -> str:
    value = string(claims, key, name)
    try:
        SPIFFEID.parse(value)
    except SPIFFEIDError as err:
        raise InvalidClaimError(
            name or key, f"Token claim {name or key!r}: {err}"
        ) from err
    return value


def _error(
    claims: dict[str, Any], key: str, name: str | None, kind: str
) -> InvalidClaimError:
    name = name or key
    if key not in claims:
        return InvalidClaimError(name, f"Token claim {name!r} is missing")
    return InvalidClaimError(name, f"Token claim {name!r} must be {kind}")
