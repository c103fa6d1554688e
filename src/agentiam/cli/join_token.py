"""``agentiam join-token create``: one-time join tokens for root attestation."""

from __future__ import annotations

import argparse
from typing import Any

from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.output import emit, error
from agentiam.errors import AgentIAMError
from agentiam.identity.classes import AgentClassStore
from agentiam.identity.join_tokens import create_join_token_in


def register(subparsers: Any) -> None:
    """Add the ``join-token`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("join-token", help="manage join tokens")
    verbs = parser.add_subparsers(dest="verb", required=True)

    create = verbs.add_parser(
        "create", help="create a one-time join token; it is printed once"
    )
    create.add_argument("agent_class", metavar="CLASS", help="agent class name")
    create.add_argument(
        "--ttl",
        type=int,
        help=(
            "lifetime in seconds, 1 to the join_token_ttl setting "
            "(default: that setting, 3600)"
        ),
    )
    add_common_arguments(create)
    add_output_argument(create)
    create.set_defaults(func=create_token)


def create_token(args: argparse.Namespace) -> int:
    """Create a join token on behalf of the class owner and print it once."""
    try:
        with open_cli_context(args) as ctx:
            agent_class = AgentClassStore(ctx.engine).require(args.agent_class)
            ttl = args.ttl if args.ttl is not None else ctx.settings.join_token_ttl
            issued = ctx.writer.run_sync(
                lambda conn: create_join_token_in(
                    conn,
                    agent_class.name,
                    created_by=agent_class.owner,
                    ttl=ttl,
                    max_ttl=ctx.settings.join_token_ttl,
                    now=ctx.clock(),
                )
            )
    except AgentIAMError as err:
        error(str(err))
        return 1

    result = {
        "join_token": issued.token,
        "agent_class": issued.agent_class,
        "expires_at": issued.expires_at,
    }
    emit(result, output=args.output)
    return 0
