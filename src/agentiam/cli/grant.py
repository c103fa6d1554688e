"""``agentiam grant list|revoke``: the humans' grants, read and revoked on the data dir.

These commands act as the administrator, directly on the database, so they need
access to the data directory rather than a session.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.output import emit, error
from agentiam.cli.revoking import run_revoke
from agentiam.delegation.grants import GrantStore
from agentiam.delegation.routes import grant_summary
from agentiam.errors import AgentIAMError
from agentiam.identity.users import UserStore

LIST_COLUMNS = ("id", "user_id", "agent_class", "scopes", "expires_at", "revoked_at")


def register(subparsers: Any) -> None:
    """Add the ``grant`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("grant", help="list and revoke grants")
    verbs = parser.add_subparsers(dest="verb", required=True)

    listing = verbs.add_parser("list", help="list grants, newest first")
    listing.add_argument(
        "--user", metavar="LOGIN", help="show only this human's grants (default: all)"
    )
    _common(listing)
    listing.set_defaults(func=list_grants)

    revoke = verbs.add_parser(
        "revoke", help="revoke a grant, killing every token derived from it"
    )
    revoke.add_argument("grant_id", metavar="ID", help="grant id (grt_...)")
    _common(revoke)
    revoke.set_defaults(func=revoke_grant)


def _common(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_output_argument(parser)


def list_grants(args: argparse.Namespace) -> int:
    """Print the grants, all or those of ``--user``."""
    try:
        with open_cli_context(args) as ctx:
            store = GrantStore(ctx.engine)
            if args.user is None:
                found = store.list_all()
            else:
                user = UserStore(ctx.engine).require_by_login(args.user)
                found = store.list_for_user(user.id)
            rows = [grant_summary(grant) for grant in found]
    except AgentIAMError as err:
        error(str(err))
        return 1
    emit(rows, output=args.output, columns=LIST_COLUMNS)
    return 0


def revoke_grant(args: argparse.Namespace) -> int:
    """Mark a grant revoked and put its id into the revocation set."""
    return run_revoke(args, "grant", args.grant_id)
