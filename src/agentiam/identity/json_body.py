"""Strict JSON request bodies for the identity routes."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from agentiam import strict_json
from agentiam.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext


async def read_json_object(
    request: Request,
    ctx: ServerContext,
    *,
    members: Collection[str],
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Read a strict JSON object body of at most ``form_max_bytes``.

    Args:
        members: the member names the route accepts; any other member is rejected.
        allow_empty: read an empty body, whatever its content type, as ``{}``.

    Raises:
        InvalidRequestError: wrong content type, too large, not strict UTF-8 JSON
            (see ``agentiam.strict_json``), not an object, or an unknown member.
    """
    # Without allow_empty the content type is checked before the body is read.
    if not allow_empty:
        _require_json_content_type(request)

    limit = ctx.settings.form_max_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise InvalidRequestError(f"The body is larger than {limit} bytes.")
    if allow_empty:
        if not body:
            return {}
        _require_json_content_type(request)

    try:
        value = strict_json.loads(bytes(body), what="The body")
    except strict_json.StrictJSONError as err:
        raise InvalidRequestError(f"{err}.") from err
    if not isinstance(value, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    unknown = sorted(set(value) - set(members))
    if unknown:
        raise InvalidRequestError(f"The member {unknown[0][:64]!r} is not allowed.")
    return value


def _require_json_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequestError("Expected the content type application/json.")


def string_member(body: dict[str, Any], name: str) -> str:
    """Return a required non-empty string member.

    Raises:
        InvalidRequestError: naming the member.
    """
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"The member '{name}' must be a non-empty string.")
    return value


def optional_string_member(body: dict[str, Any], name: str) -> str | None:
    """Return an optional non-empty string member, or None when absent."""
    if name not in body:
        return None
    return string_member(body, name)


def string_list_member(
    body: dict[str, Any], name: str, *, default: list[str] | None = None
) -> list[str]:
    """Return a list-of-strings member; absent means ``default`` when one is given.

    Raises:
        InvalidRequestError: naming the member.
    """
    if name not in body and default is not None:
        return default
    value = body.get(name)
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise InvalidRequestError(
            f"The member '{name}' must be a list of non-empty strings."
        )
    return value


def int_member(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    """Return an integer member; absent means ``default`` when one is given.

    Raises:
        InvalidRequestError: naming the member.
    """
    if name not in body and default is not None:
        return default
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"The member '{name}' must be an integer.")
    return value


def bool_member(body: dict[str, Any], name: str, *, default: bool) -> bool:
    """Return a boolean member, or ``default`` when absent.

    Raises:
        InvalidRequestError: naming the member.
    """
    if name not in body:
        return default
    value = body[name]
    if not isinstance(value, bool):
        raise InvalidRequestError(f"The member '{name}' must be true or false.")
    return value


def object_member(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Return a required JSON object member.

    Raises:
        InvalidRequestError: naming the member.
    """
    value = body.get(name)
    if not isinstance(value, dict):
        raise InvalidRequestError(f"The member '{name}' must be a JSON object.")
    return value
