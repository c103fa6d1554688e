"""Strict JSON request bodies for the identity routes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from agentiam.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise InvalidRequestError(f"The member '{name}' is repeated.")
        result[name] = value
    return result


async def read_json_object(request: Request, ctx: ServerContext) -> dict[str, Any]:
    """Read a JSON object body of at most ``form_max_bytes`` with no repeated member.

    Raises:
        InvalidRequestError: wrong content type, too large, not UTF-8 JSON, not an
            object, or a repeated member.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequestError("Expected the content type application/json.")

    limit = ctx.settings.form_max_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise InvalidRequestError(f"The body is larger than {limit} bytes.")

    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError) as err:
        if isinstance(err, InvalidRequestError):
            raise
        raise InvalidRequestError("The body is not valid UTF-8 JSON.") from err
    if not isinstance(value, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    return value


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
