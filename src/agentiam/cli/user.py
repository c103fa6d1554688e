"""``agentiam user add|list|disable``: humans of the built-in directory."""

from __future__ import annotations

import argparse
import os
from typing import Any

from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.output import emit, error
from agentiam.cli.passwords import (
    check_utf8,
    prompt_password,
    read_password_file,
    read_password_stdin,
    stdin_is_terminal,
)
from agentiam.cli.revoking import CLI_ACTOR
from agentiam.errors import AgentIAMError, NotFoundError
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore, disable_user_in, validate_password

PASSWORD_ENV = "AGENTIAM_PASSWORD"  # noqa: S105 (a variable name)
_COLUMNS = ("id", "login", "display_name", "admin", "disabled")


def register(subparsers: Any) -> None:
    """Add the ``user`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("user", help="manage the humans of the directory")
    verbs = parser.add_subparsers(dest="verb", required=True)

    add = verbs.add_parser("add", help="add a human")
    add.add_argument("login", help="login name (a-z, 0-9, '.', '_', '@', '-')")
    add.add_argument("--display-name", help="name shown to people (default: login)")
    add.add_argument(
        "--admin", action="store_true", help="make the user an administrator"
    )
    add.add_argument(
        "--password-file",
        metavar="FILE",
        help=(
            f"file whose one line is the password (default: ${PASSWORD_ENV}, "
            "else a prompt)"
        ),
    )
    _common(add)
    add.set_defaults(func=add_user)

    listing = verbs.add_parser("list", help="list the humans")
    _common(listing)
    listing.set_defaults(func=list_users)

    disable = verbs.add_parser(
        "disable", help="disable a human's login and revoke their grants"
    )
    disable.add_argument("login", help="login of the user to disable")
    _common(disable)
    disable.set_defaults(func=disable_user)


def _common(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_output_argument(parser)


def read_password(args: argparse.Namespace) -> str:
    """Read the new password from --password-file, $AGENTIAM_PASSWORD or a prompt.

    When standard input is not a terminal, the password is its one line.
    """
    if args.password_file:
        return read_password_file(args.password_file)
    # Popped, because the settings loader rejects unknown AGENTIAM_ variables and
    # the password should not reach the environment of anything started later.
    from_env = os.environ.pop(PASSWORD_ENV, None)
    if from_env:
        return check_utf8(from_env, f"in ${PASSWORD_ENV}")

    if not stdin_is_terminal():
        # A repeat catches typing errors, and input that is not typed has none.
        return read_password_stdin()
    first = prompt_password("Password: ")
    if prompt_password("Repeat password: ") != first:
        raise ValueError("The passwords do not match.")
    return first


def add_user(args: argparse.Namespace) -> int:
    """Add a human; prints the new user."""
    try:
        password = read_password(args)
        validate_password(password)
    except (OSError, ValueError, AgentIAMError) as err:
        error(str(err))
        return 1
    password_hash = hash_password(password)

    try:
        with open_cli_context(args) as ctx:
            user = ctx.writer.run_sync(
                lambda conn: UserStore(ctx.engine).add_in(
                    conn,
                    login=args.login,
                    password_hash=password_hash,
                    now=ctx.clock(),
                    display_name=args.display_name,
                    admin=args.admin,
                )
            )
    except AgentIAMError as err:
        error(str(err))
        return 1

    emit(user.to_dict(), output=args.output)
    return 0


def list_users(args: argparse.Namespace) -> int:
    """List every human, ordered by login."""
    with open_cli_context(args) as ctx:
        users = [user.to_dict() for user in UserStore(ctx.engine).list()]
    emit(users, output=args.output, columns=_COLUMNS)
    return 0


def disable_user(args: argparse.Namespace) -> int:
    """Disable a human by login and revoke every active grant they approved.

    Existing sessions fail their next check; a running server loads the grant
    revocations at its next revocation refresh.
    """
    try:
        with open_cli_context(args) as ctx:
            # Not found, as POST /v1/users/{id}/disable returns for a missing id.
            user = UserStore(ctx.engine).find_by_login(args.login)
            if user is None:
                raise NotFoundError(f"User '{args.login}' was not found.")
            disabled, revoked = ctx.writer.run_sync(
                lambda conn: disable_user_in(
                    conn, ctx, user.id, disabled_by=CLI_ACTOR, now=ctx.clock()
                )
            )
    except AgentIAMError as err:
        error(str(err))
        return 1

    emit(
        {**disabled.to_dict(), "revoked_grants": [item.id for item in revoked]},
        output=args.output,
    )
    return 0
