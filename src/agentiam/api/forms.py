"""The strict ``application/x-www-form-urlencoded`` parser of every form endpoint.

It checks the content type, stops reading once the body exceeds the limit
(64 KiB by default), decodes strict UTF-8 and rejects a repeated parameter with
``invalid_request`` naming it, unless the endpoint lets that name repeat (the
``audience`` and ``resource`` of a token request, ``TARGET_PARAMETERS``).  It
returns an immutable mapping.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, overload
from urllib.parse import unquote

from starlette.requests import Request

from agentiam.errors import InvalidRequestError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_MAX_BYTES = 65536
# RFC 8693 section 2.1 and RFC 8707 section 2 let these appear more than once.
TARGET_PARAMETERS = frozenset({"audience", "resource"})
_T = TypeVar("_T")
# Encoded names and values up to this length are decoded through a cache. Names,
# token types, scopes, audiences and authorization details repeat from request to
# request, and a JWT has no escapes, so it never reaches the cache.
_CACHED_TEXT_LENGTH = 512
_CACHED_TEXTS = 4096


class Form(Mapping[str, str]):
    """The parameters of one form body.

    A name appears once unless the parser let it repeat. ``get_all`` returns every
    value of a name; indexing returns its values joined by one space.
    """

    __slots__ = ("_items", "_joined")

    def __init__(self, items: Mapping[str, str | Sequence[str]]) -> None:
        self._items = MappingProxyType(
            {
                name: (value,) if isinstance(value, str) else tuple(value)
                for name, value in items.items()
            }
        )
        # Handlers read the same names many times, so each value is joined once.
        self._joined = {name: " ".join(values) for name, values in self._items.items()}

    def __getitem__(self, name: str) -> str:
        return self._joined[name]

    def __contains__(self, name: object) -> bool:
        return name in self._joined

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, default: str | _T, /) -> str | _T: ...

    def get(self, name: str, default: Any = None, /) -> Any:
        """Return the value of ``name``, or ``default`` when it was not sent."""
        return self._joined.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Values can be tokens or secrets, so only the names are shown.
        return f"Form({sorted(self._items)!r})"

    def get_all(self, name: str) -> tuple[str, ...]:
        """Return every value of ``name`` in the order sent, or an empty tuple."""
        return self._items.get(name, ())

    def require(self, name: str) -> str:
        """Return the non-empty value of ``name`` or raise ``InvalidRequestError``."""
        value = self.get(name)
        if not value:
            raise InvalidRequestError(f"The parameter {name!r} is missing.")
        return value

    def optional(self, name: str) -> str | None:
        """Return the value of ``name``, or ``None`` when absent or empty."""
        return self.get(name) or None


async def parse_form(
    request: Request,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    repeatable: frozenset[str] = frozenset(),
) -> Form:
    """Read and parse the body as a strict form; raise ``InvalidRequestError``.

    Args:
        repeatable: the parameter names that may appear more than once.
    """
    _check_content_type(request.headers.get("content-type"))
    body = await _read_body(request, max_bytes)
    return parse_form_body(body, repeatable=repeatable)


def parse_form_body(body: bytes, *, repeatable: frozenset[str] = frozenset()) -> Form:
    """Parse a form-encoded body: strict UTF-8, no repeats outside ``repeatable``."""
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body is not valid UTF-8.") from None

    # The fields split as in urllib.parse.parse_qsl with keep_blank_values. Only
    # "&" separates, empty fields are skipped, and a field without "=" has an
    # empty value.
    items: dict[str, list[str]] = {}
    try:
        for field in text.split("&"):
            if not field:
                continue
            encoded_name, _, encoded_value = field.partition("=")
            name = _decode(encoded_name)
            values = items.setdefault(name, [])
            if values and name not in repeatable:
                raise InvalidRequestError(f"The parameter {name[:64]!r} is repeated.")
            values.append(_decode(encoded_value))
    except UnicodeDecodeError:
        raise InvalidRequestError("A form parameter is not valid UTF-8.") from None
    return Form(items)


def _decode(text: str) -> str:
    """Decode one encoded name or value: ``+`` is a space, escapes strict UTF-8."""
    if "%" not in text and "+" not in text:
        return text
    if len(text) > _CACHED_TEXT_LENGTH:
        return _decode_uncached(text)
    return _decode_cached(text)


def _decode_uncached(text: str) -> str:
    return unquote(text.replace("+", " "), encoding="utf-8", errors="strict")


# Decoding is a pure function of the text. An invalid escape raises, and
# lru_cache keeps no entry for a call that raised.
_decode_cached = functools.lru_cache(maxsize=_CACHED_TEXTS)(_decode_uncached)


def _check_content_type(header: str | None) -> None:
    media_type = (header or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise InvalidRequestError(f"The content type must be {FORM_CONTENT_TYPE}.")

    # A charset other than UTF-8 would change how the bytes decode, so reject it.
    for parameter in (header or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip(
            '"'
        ).lower() not in (
            "utf-8",
            "utf8",
        ):
            raise InvalidRequestError("The form charset must be UTF-8.")


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)

    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> InvalidRequestError:
    return InvalidRequestError(f"The request body exceeds {max_bytes} bytes.")
