"""``agentiam agent-class add|list|show``: agent class blueprints."""

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
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.users import UserStore

_COLUMNS = ("name", "owner", "scopes", "audiences", "may_spawn", "max_depth")


def register(subparsers: Any) -> None:
    """Add the ``agent-class`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("agent-class", help="manage agent classes")
    verbs = parser.add_subparsers(dest="verb", required=True)

    add = verbs.add_parser("add", help="add an agent class")
    add.add_argument("name", help="class name, one SPIFFE ID path segment")
    add.add_argument("--owner", required=True, metavar="LOGIN", help="owner's login")
    add.add_argument(
        "--scopes", nargs="+", required=True, metavar="SCOPE", help="scope ceiling"
    )
    add.add_argument(
        "--audiences",
        nargs="+",
        required=True,
        metavar="URL",
        help="resource servers the class may get tokens for",
    )
    add.add_argument(
        "--may-spawn",
        nargs="*",
        default=[],
        metavar="CLASS",
        help="classes its instances may spawn (default: none)",
    )
    add.add_argument(
        "--max-depth", type=int, default=1, help="maximum agent hops (default: 1)"
    )
    add.add_argument(
        "--default-ttl",
        type=int,
        default=300,
        help="default token lifetime in seconds (default: 300)",
    )
    add.add_argument(
        "--max-ttl",
        type=int,
        default=3600,
        help="maximum token lifetime in seconds (default: 3600)",
    )
    add.add_argument(
        "--allow-impersonation",
        action="store_true",
        help="allow token exchange without an actor (default: off)",
    )
    _common(add)
    add.set_defaults(func=add_class)

    listing = verbs.add_parser("list", help="list the agent classes")
    _common(listing)
    listing.set_defaults(func=list_classes)

    show = verbs.add_parser("show", help="show one agent class")
    show.add_argument("name", help="class name")
    _common(show)
    show.set_defaults(func=show_class)


def _common(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_output_argument(parser)


def add_class(args: argparse.Namespace) -> int:
    """Add an agent class owned by an existing user."""
    try:
        with open_cli_context(args) as ctx:
            owner = UserStore(ctx.engine).require_by_login(args.owner)
            agent_class = AgentClass(
                name=args.name,
                owner=owner.id,
                scopes=frozenset(args.scopes),
                audiences=frozenset(args.audiences),
                may_spawn=frozenset(args.may_spawn),
                max_depth=args.max_depth,
                default_ttl=args.default_ttl,
                max_ttl=args.max_ttl,
                allow_impersonation=args.allow_impersonation,
            )
            store = AgentClassStore(ctx.engine)
            ctx.writer.run_sync(
                lambda conn: store.add_in(conn, agent_class, now=ctx.clock())
            )
    except AgentIAMError as err:
        error(str(err))
        return 1

    emit(agent_class.to_dict(), output=args.output)
    return 0


def list_classes(args: argparse.Namespace) -> int:
    """List every agent class, ordered by name."""
    with open_cli_context(args) as ctx:
        classes = [item.to_dict() for item in AgentClassStore(ctx.engine).list()]
    emit(classes, output=args.output, columns=_COLUMNS)
    return 0


def show_class(args: argparse.Namespace) -> int:
    """Show one agent class and the kids of its registered keys."""
    try:
        with open_cli_context(args) as ctx:
            store = AgentClassStore(ctx.engine)
            agent_class = store.require(args.name)
            kids = store.keys(args.name)
    except AgentIAMError as err:
        error(str(err))
        return 1

    emit({**agent_class.to_dict(), "keys": kids}, output=args.output)
    return 0
