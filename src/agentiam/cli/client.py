"""``agentiam client add``: resource-server clients for /introspect and the feed."""

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
from agentiam.identity.clients import ClientStore


def register(subparsers: Any) -> None:
    """Add the ``client`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("client", help="manage resource-server clients")
    verbs = parser.add_subparsers(dest="verb", required=True)

    add = verbs.add_parser("add", help="register a client; the secret is printed once")
    add.add_argument("name", help="client id")
    add.add_argument(
        "--audience",
        action="append",
        required=True,
        metavar="URL",
        help="audience the resource server serves (repeat for more)",
    )
    add_common_arguments(add)
    add_output_argument(add)
    add.set_defaults(func=add_client)


def add_client(args: argparse.Namespace) -> int:
    """Register a resource-server client and print its secret once."""
    try:
        with open_cli_context(args) as ctx:
            store = ClientStore(ctx.engine)
            issued = ctx.writer.run_sync(
                lambda conn: store.add_in(
                    conn, args.name, args.audience, now=ctx.clock()
                )
            )
    except AgentIAMError as err:
        error(str(err))
        return 1

    emit(
        {**issued.client.to_dict(), "client_secret": issued.client_secret},
        output=args.output,
    )
    return 0
