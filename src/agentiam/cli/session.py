"""``agentiam session revoke``: end a human's session by its session id (``sid``).

The command acts as the administrator, directly on the database of the data
directory.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentiam.cli.context import add_common_arguments, add_output_argument
from agentiam.cli.revoking import run_revoke


def register(subparsers: Any) -> None:
    """Add the ``session`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("session", help="revoke human sessions")
    verbs = parser.add_subparsers(dest="verb", required=True)

    revoke = verbs.add_parser("revoke", help="revoke a session so its token stops")
    revoke.add_argument("sid", metavar="SID", help="session id, the token's sid claim")
    add_common_arguments(revoke)
    add_output_argument(revoke)
    revoke.set_defaults(func=revoke_session)


def revoke_session(args: argparse.Namespace) -> int:
    """Put the session id into the revocation set."""
    return run_revoke(args, "session", args.sid)
