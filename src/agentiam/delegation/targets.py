"""The ``audience`` and ``resource`` parameters of a token or CIBA request.

RFC 8693 section 2.1 and RFC 8707 section 2 let both parameters appear more than
once; the values form one set of target audiences. A value may also list several
names separated by spaces, the only form this server accepted before repeated
parameters, which the documentation promised.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from agentiam.api.forms import Form
from agentiam.errors import InvalidRequestError, InvalidTargetError

# Values quoted in error messages are cut to this many characters.
_QUOTED_LENGTH = 80


def requested_targets(form: Mapping[str, str]) -> tuple[str, ...] | None:
    """Return the sorted set of every ``audience`` and ``resource`` value.

    Args:
        form: the parsed form; a plain mapping has one value per name.

    Returns:
        The audiences, or None when neither parameter was sent.

    Raises:
        InvalidRequestError: a value is empty.
        InvalidTargetError: a resource is not an absolute URI (with a host) or
            has a fragment (RFC 8707 section 2).
    """
    sent = False
    targets: set[str] = set()
    for name in ("audience", "resource"):
        for value in _values(form, name):
            sent = True
            names = value.split()
            if not names:
                raise InvalidRequestError(f"The parameter {name!r} has an empty value.")
            if name == "resource":
                for resource in names:
                    _require_resource_uri(resource)
            targets.update(names)
    return tuple(sorted(targets)) if sent else None


def _values(form: Mapping[str, str], name: str) -> tuple[str, ...]:
    if isinstance(form, Form):
        return form.get_all(name)
    value = form.get(name)
    return () if value is None else (value,)


def _require_resource_uri(resource: str) -> None:
    try:
        parts = urlsplit(resource)
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or not parts.netloc or parts.fragment:
        raise InvalidTargetError(
            f"Invalid resource {_quoted(resource)}: expected an absolute URI "
            "without a fragment."
        )


def _quoted(value: str) -> str:
    if len(value) > _QUOTED_LENGTH:
        value = value[:_QUOTED_LENGTH] + "..."
    return repr(value)
