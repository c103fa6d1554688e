"""``agentiam agent revoke``: revoke an agent instance by its SPIFFE ID.

The ``instance`` entry kills the instance's SVID, every token it holds or acts in,
and the tokens of its sub-agents, whose act chains contain it. The command acts as
the administrator, directly on the database of the data directory.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentiam.cli.context import add_common_arguments, add_output_argument
from agentiam.cli.revoking import run_revoke


def register(subparsers: Any) -> None:
    """Add the ``agent`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("agent", help="revoke agent instances")
    verbs = parser.add_subparsers(dest="verb", required=True)

    revoke = verbs.add_parser(
        "revoke", help="revoke an agent instance and its sub-agents' tokens"
    )
    revoke.add_argument(
        "spiffe_id",
        metavar="SPIFFE_ID",
        help="spiffe://<trust-domain>/agent/<class>/<instance>",
    )
    add_common_arguments(revoke)
    add_output_argument(revoke)
    revoke.set_defaults(func=revoke_agent)


def revoke_agent(args: argparse.Namespace) -> int:
    """Put the instance's SPIFFE ID into the revocation set."""
    return run_revoke(args, "instance", args.spiffe_id)
