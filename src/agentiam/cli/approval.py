"""``agentiam approval list|approve|deny``: decide CIBA requests on the data directory.

The command acts directly on the database, as the user named by ``--user``, after
checking that user's password. The password comes from ``--password-file``, else
the ``AGENTIAM_PASSWORD`` environment variable, else a prompt on the terminal, or
standard input when it is not a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.approvals.decisions import DecisionContext, approve_work, deny_work
from agentiam.approvals.store import CIBARequestStore
from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    require_database,
)
from agentiam.cli.output import emit
from agentiam.cli.passwords import (
    check_utf8,
    prompt_password,
    read_password_file,
)
from agentiam.config import Settings, load_settings
from agentiam.errors import AgentIAMError
from agentiam.identity.passwords import burn_password_check, verify_password
from agentiam.identity.users import User, UserStore

PASSWORD_ENV = "AGENTIAM_PASSWORD"  # noqa: S105 - the variable's name, not a secret

_LIST_COLUMNS = ("id", "agent_class", "scope", "audiences", "binding_message")


class CLIAuthenticationError(AgentIAMError):
    """The user is unknown or disabled, or the password is wrong (one message)."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``approval`` noun and its verbs to the top-level subparsers.

    Each verb parser sets ``func`` to ``run``.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "approval", help="list, approve or deny pending CIBA approval requests"
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    for verb, text in (
        ("list", "list the user's pending approval requests"),
        ("approve", "approve a request, creating the grant and its consent receipt"),
        ("deny", "deny a request"),
    ):
        verb_parser = verbs.add_parser(verb, help=text)
        if verb != "list":
            verb_parser.add_argument("id", help="approval request id (apr_...)")
        _add_verb_arguments(verb_parser)
        verb_parser.set_defaults(func=run)

    return parser


def _add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user", required=True, metavar="LOGIN", help="login of the deciding user"
    )
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help=f"file whose one line is the password (default: ${PASSWORD_ENV}, "
        "else a prompt)",
    )
    add_common_arguments(parser)
    add_output_argument(parser)


def read_password(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str],
    prompt: Callable[[str], str] | None = None,
) -> str:
    """Read the password from the file, else the environment, else a prompt.

    ``prompt`` replaces the terminal prompt.  Without it, a standard input that
    is not a terminal is read as the password, with no prompt.
    """
    if args.password_file:
        return read_password_file(args.password_file)

    value = environ.get(PASSWORD_ENV)
    if value is not None:
        return check_utf8(value, f"in ${PASSWORD_ENV}")

    return prompt_password(f"Password for {args.user}: ", prompt)


def authenticate_user(ctx: ServerContext, login: str, password: str) -> User:
    """Check a user's password, with one message for every kind of failure.

    Raises:
        CLIAuthenticationError: unknown or disabled user, or wrong password.
    """
    found = UserStore(ctx.engine).password_hash(login)

    # An unknown login costs the same time as a wrong password.
    if found is None:
        burn_password_check(password)
        raise CLIAuthenticationError("Invalid user or password.")

    user, encoded = found
    if not verify_password(password, encoded) or user.disabled:
        raise CLIAuthenticationError("Invalid user or password.")

    return user


def run(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> int:
    """Run one ``approval`` verb and return the exit code (0 success, 1 failure)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    output = getattr(args, "output", "text")

    try:
        # The database first: a wrong --data-dir must not ask for a password.
        settings = _settings(args)
        require_database(settings)
        password = read_password(
            args, environ=os.environ if environ is None else environ, prompt=prompt
        )
        ctx = open_context(settings)
        try:
            user = authenticate_user(ctx, args.user, password)
            result = _run_verb(ctx, args, user)
        finally:
            close_context(ctx)
    except (AgentIAMError, OSError) as error:
        err.write(f"agentiam: error: {error}\n")
        return 1

    columns = _LIST_COLUMNS if args.verb == "list" else None
    emit(result, output=output, columns=columns, stream=out)
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    # The settings loader rejects unknown AGENTIAM_* variables, and the password
    # variable is not a setting, so it is left out of the environment it reads.
    environ = {
        name: value for name, value in os.environ.items() if name != PASSWORD_ENV
    }
    flags = {"data_dir": args.data_dir, "database_url": args.database_url}
    return load_settings(config_file=args.config, environ=environ, overrides=flags)


def _run_verb(
    ctx: ServerContext, args: argparse.Namespace, user: User
) -> list[dict[str, Any]] | dict[str, Any]:
    if args.verb == "list":
        pending = CIBARequestStore(ctx.engine).list_pending(user.id, now=ctx.clock())
        return [item.to_public_dict() for item in pending]

    dctx = DecisionContext.from_server(ctx)

    if args.verb == "approve":
        grant = ctx.writer.run_sync(
            approve_work(dctx, args.id, user_id=user.id, channel="cli")
        )
        return {
            "id": args.id,
            "status": "approved",
            "grant_id": grant.id,
            "receipt_hash": grant.receipt_hash,
            "grant_expires_at": grant.expires_at,
        }

    ctx.writer.run_sync(deny_work(dctx, args.id, user_id=user.id, channel="cli"))
    return {"id": args.id, "status": "denied"}
