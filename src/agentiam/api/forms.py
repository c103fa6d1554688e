"""The strict ``application/x-www-form-urlencoded`` parser of every form endpoint.

It checks the content type, stops reading once the body exceeds the limit
(64 KiB by default), decodes strict UTF-8 and rejects a repeated parameter with
``invalid_request`` naming it, unless the endpoint lets that name repeat (the
``audience`` and ``resource`` of a token request, ``TARGET_PARAMETERS``).  It
returns an immutable mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from urllib.parse import parse_qsl

from starlette.requests import Request

from agentiam.errors import InvalidRequestError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_MAX_BYTES = 65536
# RFC 8693 section 2.1 and RFC 8707 section 2 let these appear more than once.
TARGET_PARAMETERS = frozenset({"audience", "resource"})


class Form(Mapping[str, str]):
    """The parameters of one form body.

    A name appears once unless the parser let it repeat. ``get_all`` returns every
    value of a name; indexing returns its values joined by one space.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str | Sequence[str]]) -> None:
        self._items = MappingProxyType(
            {
                name: (value,) if isinstance(value, str) else tuple(value)
                for name, value in items.items()
            }
        )

    def __getitem__(self, name: str) -> str:
        return " ".join(self._items[name])

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

    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
        )
    except UnicodeDecodeError:
        raise InvalidRequestError("A form parameter is not valid UTF-8.") from None

    items: dict[str, list[str]] = {}
    for name, value in pairs:
        values = items.setdefault(name, [])
        if values and name not in repeatable:
            raise InvalidRequestError(f"The parameter {name[:64]!r} is repeated.")
        values.append(value)
    return Form(items)


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
