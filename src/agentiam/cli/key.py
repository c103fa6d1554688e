"""``agentiam key list`` and ``agentiam key rotate``: the signing key ring."""

from __future__ import annotations

import argparse
from typing import Any

from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.output import emit
from agentiam.keys import KeyInfo

COLUMNS = ("kid", "alg", "state", "created_at", "retired_at", "drop_after")


def register(subparsers: Any) -> None:
    """Add the ``key`` noun and its verbs."""
    parser = subparsers.add_parser("key", help="list and rotate the signing keys")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)

    listing = verbs.add_parser(
        "list", help="list the stored signing keys, newest first"
    )
    add_common_arguments(listing)
    add_output_argument(listing)
    listing.set_defaults(func=list_keys)

    rotate = verbs.add_parser(
        "rotate",
        help="make a new signing key active; the previous one stays published "
        "for key_rotation_overlap seconds",
    )
    add_common_arguments(rotate)
    add_output_argument(rotate)
    rotate.set_defaults(func=rotate_key)


def list_keys(args: argparse.Namespace) -> int:
    """Print every stored signing key."""
    with open_cli_context(args) as ctx:
        now = ctx.clock()
        rows = [describe(info, now) for info in ctx.keyring.entries()]
    emit(rows, output=args.output, columns=COLUMNS)
    return 0


def rotate_key(args: argparse.Namespace) -> int:
    """Rotate the signing key and print the new active key."""
    with open_cli_context(args) as ctx:
        now = ctx.clock()
        key = ctx.keyring.rotate(now)
        info = next(info for info in ctx.keyring.entries() if info.kid == key.kid)
    emit(describe(info, now), output=args.output)
    return 0


def describe(info: KeyInfo, now: float) -> dict[str, Any]:
    """Return the printable fields of a key, with its state at ``now``."""
    if info.active:
        state = "active"
    elif info.drop_after is not None and now < info.drop_after:
        state = "retired"
    else:
        state = "dropped"
    return {
        "kid": info.kid,
        "alg": info.alg,
        "state": state,
        "created_at": info.created_at,
        "retired_at": info.retired_at,
        "drop_after": info.drop_after,
    }
